"""Hugging Face cache look-ups without network and without importing torch.

Used both by loaders (to fail fast before any from_pretrained call) and by `mirada models`
(to report availability cheaply). Mirrors huggingface_hub's cache layout:
  $HF_HUB_CACHE or $HF_HOME/hub or ~/.cache/huggingface/hub / models--org--name / snapshots/<sha>/
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mirada.vlm.errors import ModelUnavailableError

if TYPE_CHECKING:
    from mirada.vlm.ids import ModelSpec

OPEN_CLIP_URL_CACHE = Path("~/.cache/clip").expanduser()  # open_clip's default for URL weights
# The weight files of an open_clip model in a Hugging Face repo, preferred first.
OPEN_CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _repo_dir(repo_id: str) -> Path:
    return hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_snapshot(repo_id: str, required: tuple[str, ...] = ("config.json",)) -> Path | None:
    """The snapshot dir of `repo_id` holding all `required` files (main ref first), or None."""
    repo = _repo_dir(repo_id)
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates: list[Path] = []
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidates.append(snapshots / ref.read_text().strip())
    candidates += sorted(
        (p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: -p.stat().st_mtime
    )
    for snap in candidates:
        if snap.is_dir() and all((snap / f).exists() for f in required):
            return snap
    return None


def cached_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of `filenames` present in any cached snapshot of `repo_id`."""
    for name in filenames:
        snap = cached_snapshot(repo_id, (name,))
        if snap is not None:
            return snap / name
    return None


def has_weights(directory: Path) -> bool:
    return any(
        (directory / f).exists()
        for f in (
            "model.safetensors",
            "model.safetensors.index.json",
            "pytorch_model.bin",
            "pytorch_model.bin.index.json",
        )
    )


def local_revision(directory: Path) -> str:
    """A cheap identity for a local model dir: name/size/mtime of its files.

    Keys the embedding cache, so retraining into the same directory invalidates old entries.
    """
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.is_file():
            st = path.stat()
            digest.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return "local-" + digest.hexdigest()[:12]


def revision_of(path: Path) -> str | None:
    """The commit hash when `path` lies in an HF cache snapshot, else a local revision."""
    parts = path.parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    directory = path if path.is_dir() else path.parent
    return local_revision(directory) if directory.is_dir() else None


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Force huggingface_hub (and transformers) offline for the block: loading never waits on
    the network, even for files a library fetches by itself (e.g. open_clip's HF text towers)."""
    import huggingface_hub.constants as hf_constants

    previous = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = previous


def pull_hint(model_id: str) -> str:
    return (
        f"Get them with `mirada models pull {model_id}` on a machine with internet (then copy "
        f"{hf_cache_dir()} here), or pass a local directory as the id, e.g. "
        f"`{model_id.split(':', 1)[0]}:/path/to/model`."
    )


def unavailable(spec: ModelSpec, where: str, detail: str = "") -> ModelUnavailableError:
    extra = f" ({detail})" if detail else ""
    return ModelUnavailableError(
        f"model {spec.model_id} is not available offline: no weights in {where}{extra}. "
        + pull_hint(spec.model_id)
    )


def resolve_hf_dir(spec: ModelSpec) -> Path:
    """The local directory with `spec`'s transformers files; raise fast when missing.

    Never touches the network: HF repos are looked up in the cache only.
    """
    if spec.local_dir is not None:
        if spec.is_demo and not spec.local_dir.is_dir():
            raise ModelUnavailableError(
                f"demo model {spec.model_id} is missing: expected a directory {spec.local_dir} "
                "(the demo weights ship with Mirada; reinstall or re-run the demo training)."
            )
        if not (spec.local_dir / "config.json").is_file() or not has_weights(spec.local_dir):
            raise unavailable(
                spec, f"local directory {spec.local_dir}", "need config.json + weights"
            )
        return spec.local_dir
    snap = cached_snapshot(spec.source)
    if snap is None or not has_weights(snap):
        raise unavailable(
            spec, f"the Hugging Face cache {hf_cache_dir()} (set HF_HOME/HF_HUB_CACHE to move it)"
        )
    return snap
