"""Model registry: id -> capabilities (no loading), id -> loaded adapter, offline availability.

Family facts (adapter module, capabilities, weights layout) come from `mirada.vlm.families`.
Importing this module never imports torch, transformers or open_clip; each family's module is
imported by `load_adapter` only.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mirada.domain import DEFAULT_SEED, Capability, Device, Dtype, Task
from mirada.vlm import hub
from mirada.vlm.catalogue import CATALOGUE, CatalogueEntry, list_catalogue
from mirada.vlm.errors import DeviceUnavailableError, ModelUnavailableError
from mirada.vlm.families import Layout
from mirada.vlm.hub import OPEN_CLIP_WEIGHT_FILES
from mirada.vlm.ids import ModelSpec, parse_model_id
from mirada.vlm.presets import LATENCY_ONLY, gpu_only_refusal

if TYPE_CHECKING:
    from mirada.vlm.base import LoadedModel

__all__ = [
    "CATALOGUE",
    "CatalogueEntry",
    "ModelSpec",
    "available_offline",
    "cached_weights",
    "capabilities_for",
    "device_refusal",
    "latency_only_refusal",
    "list_catalogue",
    "load_adapter",
    "parse_model_id",
    "pull_model",
    "resolve_device",
]

# open_clip tags in the catalogue -> (weights repo, extra HF repo the text tower needs).
# Plain data so `mirada models` can check availability without importing open_clip (torch);
# a test checks it against open_clip's own pretrained table.
OPEN_CLIP_TAG_REPOS: dict[tuple[str, str], tuple[str, str | None]] = {
    ("ViT-B-32", "laion2b_s34b_b79k"): ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None),
    ("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k"): (
        "laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k",
        "xlm-roberta-base",
    ),
}


def capabilities_for(model_id: str) -> frozenset[Capability]:
    """What a model can do, from its id alone (nothing is loaded or imported)."""
    return parse_model_id(model_id).family_entry.capabilities


def latency_only_refusal(model_id: str, task: Task) -> str | None:
    """Why `model_id` may not run `task`: random-weight presets are for benchmarks only."""
    spec = parse_model_id(model_id)
    if not spec.latency_only or task == Task.benchmark:
        return None
    return (
        f"model {spec.model_id} has random weights at a real model's size ({LATENCY_ONLY}): "
        f"its outputs mean nothing, so it runs --task benchmark only, not {str(task)!r}. "
        "Use the real weights (e.g. from `mirada models`) for match and caption runs."
    )


def device_refusal(model_id: str, device: Device) -> str | None:
    """Why `model_id` may not run on `device`: GPU-only presets are refused on the CPU when
    the run asks for it (with auto, the worker that claims the run decides, and its load
    refuses a CPU)."""
    preset = parse_model_id(model_id).preset_entry
    if preset is not None and preset.gpu_only and device is Device.cpu:
        return gpu_only_refusal(preset)
    return None


def resolve_device(device: Device = Device.auto) -> Device:
    """auto -> cuda, then mps, then cpu. An explicit device that is missing is an error."""
    wanted = device
    if wanted is Device.cpu:
        return wanted
    import torch

    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if wanted is Device.auto:
        return Device.cuda if has_cuda else Device.mps if has_mps else Device.cpu
    if wanted is Device.cuda and not has_cuda:
        raise DeviceUnavailableError(
            "device 'cuda' was requested but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "use --device cpu or auto"
        )
    if wanted is Device.mps and not has_mps:
        raise DeviceUnavailableError(
            "device 'mps' was requested but Apple Metal is not available here; "
            "use --device cpu or auto"
        )
    return wanted


def load_adapter(
    model_id: str,
    *,
    device: Device = Device.auto,
    dtype: Dtype = Dtype.fp32,
    seed: int = DEFAULT_SEED,
) -> LoadedModel:
    """Load `model_id` from local files only; raise ModelUnavailableError fast when missing.

    The model is built under torch seed `seed` (the caller's RNG state is kept), so weights
    that do not come from a file (open_clip random init, parameters a checkpoint lacks) are
    the same on every load."""
    spec = parse_model_id(model_id)
    resolved = resolve_device(device)
    _require_local_files(spec)  # before importing torch-heavy modules: missing weights fail fast
    module = importlib.import_module(f"mirada.vlm.{spec.family_entry.module}")
    import torch

    with torch.random.fork_rng(devices=[]):  # weights are built on the CPU, then moved
        torch.manual_seed(seed)
        adapter: LoadedModel = module.load(spec, resolved, dtype)
    return adapter


def cached_weights(spec: ModelSpec) -> Path | None:
    """The directory or file holding `spec`'s weights on this machine, when file checks alone
    can tell; None when they are missing or only loading can tell (random init, open_clip tags
    outside OPEN_CLIP_TAG_REPOS, checkpoint files)."""
    if spec.latency_only:
        return None
    if spec.local_dir is not None:
        return spec.local_dir
    if spec.layout is Layout.transformers:
        return hub.cached_snapshot(spec.source)
    known = OPEN_CLIP_TAG_REPOS.get((spec.source, spec.pretrained or ""))
    return hub.cached_file(known[0], OPEN_CLIP_WEIGHT_FILES) if known else None


def _require_local_files(spec: ModelSpec) -> None:
    """Raise ModelUnavailableError for weights we can tell are missing from file checks alone."""
    if spec.latency_only:
        return  # built from a config; nothing on disk
    if spec.layout is Layout.transformers:
        hub.resolve_hf_dir(spec)
        return
    if spec.local_dir is not None:
        if not (spec.local_dir / "open_clip_config.json").is_file():
            raise hub.unavailable(
                spec, f"local directory {spec.local_dir}", "need open_clip_config.json + weights"
            )
        return
    known = OPEN_CLIP_TAG_REPOS.get((spec.source, spec.pretrained or ""))
    if known is None:
        return  # other tags/paths are resolved by the family module
    repo, text_repo = known
    if hub.cached_file(repo, OPEN_CLIP_WEIGHT_FILES) is None:
        raise hub.unavailable(spec, f"the Hugging Face cache {hub.hf_cache_dir()} (repo {repo})")
    if text_repo is not None and hub.cached_snapshot(text_repo) is None:
        raise hub.unavailable(
            spec,
            f"the Hugging Face cache {hub.hf_cache_dir()}",
            f"its text tower needs the {text_repo} config/tokenizer",
        )


def available_offline(model_id: str) -> bool:
    """Whether the weights are on this machine. Cheap: file checks only, no torch import
    except for open_clip tags outside OPEN_CLIP_TAG_REPOS."""
    spec = parse_model_id(model_id)
    if spec.latency_only:
        return True  # built from a config shipped with the libraries
    if spec.layout is Layout.transformers:
        if spec.local_dir is not None:
            return (spec.local_dir / "config.json").is_file() and hub.has_weights(spec.local_dir)
        snap = hub.cached_snapshot(spec.source)
        return snap is not None and hub.has_weights(snap)
    if spec.local_dir is not None:
        return (spec.local_dir / "open_clip_config.json").is_file()
    if spec.pretrained is None:  # random init; arch validity is checked at load
        from mirada.vlm.open_clip_family import missing_text_repo

        # ...but a text side from the HF Hub (the SigLIP configs' tokenizers) must be cached
        return missing_text_repo(spec.source) is None
    known = OPEN_CLIP_TAG_REPOS.get((spec.source, spec.pretrained))
    if known is not None:
        repo, text_repo = known
        if text_repo is not None and hub.cached_snapshot(text_repo) is None:
            return False
        return hub.cached_file(repo, OPEN_CLIP_WEIGHT_FILES) is not None
    if spec.checkpoint is not None:
        return spec.checkpoint.is_file()
    from mirada.vlm.open_clip_family import tag_weights_location

    try:
        tag_repo, where = tag_weights_location(spec.source, spec.pretrained)
    except (KeyError, TypeError):
        return False
    if tag_repo is None:
        return bool(where) and os.path.isfile(str(where))
    return hub.cached_file(tag_repo, where) is not None  # type: ignore[arg-type]


def pull_model(model_id: str) -> str:
    """Download `model_id`'s weights into the HF cache (needs internet). Returns where they are."""
    spec = parse_model_id(model_id)
    if spec.latency_only:
        return f"{spec.model_id} has random weights ({LATENCY_ONLY}); nothing to download"
    local = spec.local_dir or spec.checkpoint
    if local is not None:
        kind = "directory" if spec.local_dir is not None else "checkpoint file"
        if available_offline(model_id):
            return f"{spec.model_id} is a local {kind}; nothing to download ({local})"
        raise ModelUnavailableError(
            f"{spec.model_id} names a local {kind}, which cannot be downloaded: {local}"
        )
    repos: list[tuple[str, tuple[str, ...] | None]] = []
    if spec.layout is Layout.transformers:
        repos.append((spec.source, None))
    elif spec.pretrained is None:
        return f"{spec.model_id} is random init; nothing to download"
    else:
        from mirada.vlm.open_clip_family import hf_text_repo, tag_weights_location

        try:
            repo, where = tag_weights_location(spec.source, spec.pretrained)
        except (KeyError, TypeError):
            raise ModelUnavailableError(
                f"{spec.model_id}: {spec.pretrained!r} is not a known open_clip tag"
            ) from None
        text_repo = hf_text_repo(spec.source)
        if text_repo:
            repos.append((text_repo, None))
        if repo is None:
            from open_clip.pretrained import download_pretrained_from_url, get_pretrained_url

            try:
                return download_pretrained_from_url(
                    get_pretrained_url(spec.source, spec.pretrained)
                )
            except OSError as exc:
                raise ModelUnavailableError(f"could not download {spec.model_id}: {exc}") from exc
        repos.append((repo, where))  # type: ignore[arg-type]
    from huggingface_hub import snapshot_download

    where_list: list[str] = []
    for repo, files in repos:
        try:
            where_list.append(
                snapshot_download(
                    repo,
                    allow_patterns=[*files, "*.json", "*.txt"] if files else None,
                    etag_timeout=10,
                )
            )
        except Exception as exc:  # network/auth/not-found all mean: could not pull, say why
            raise ModelUnavailableError(
                f"could not download {spec.model_id} (Hugging Face repo {repo}) into "
                f"{hub.hf_cache_dir()}: {type(exc).__name__}: {exc}. Check the internet "
                "connection (and HF_ENDPOINT / HF_TOKEN), or copy the weights to a local "
                "directory and use it as the id."
            ) from exc
    return ", ".join(where_list)
