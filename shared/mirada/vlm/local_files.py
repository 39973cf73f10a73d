"""Local model files are pinned when a run is queued and checked when a worker loads them.

A model id may name weights by a path (`hf-clip:./myclip`, `open-clip:local-dir:dir`,
`open-clip:ViT-B-32/./ckpt.pt`). A relative path means "relative to where I typed it", which
is the queueing process's directory, not the worker's. So at queue time `pin_model` resolves the
path to an absolute one and fingerprints the files there; the run keeps both (in its options).
The worker loads the absolute id and `check_pinned` refuses files that differ from the
fingerprint, or a path the worker would resolve against its own directory.

The fingerprint reads content, not modification times, so an identical copy of the model on
another machine (same path, other mtimes) matches. It hashes small files whole and samples large
ones (head, middle, tail and size): it catches retrained, replaced or truncated weights and any
edited config, at a few MiB of reading even for a multi-GiB model; an edit confined to the
unsampled middle of a large weight file is not seen. It guards against accidents, not tampering.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mirada.errors import MiradaError
from mirada.vlm.ids import ModelSpec, parse_model_id

_CHUNK = 1 << 20  # bytes read at each sampled position
_WHOLE = 3 * _CHUNK  # files up to this size are hashed whole


class ModelFilesChangedError(MiradaError):
    """The files at a run's model path are not the ones it was queued with."""


@dataclass(frozen=True)
class PinnedModel:
    model_id: str  # the canonical id, its local path absolute (what the worker loads)
    path: Path | None  # the local weights (directory or checkpoint file), None when not by path
    files: str | None  # fingerprint of `path` when queued; None when not by path or absent


def _file_digest(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        if size <= _WHOLE:
            digest.update(f.read())
        else:
            for offset in (0, size // 2 - _CHUNK // 2, size - _CHUNK):
                f.seek(offset)
                digest.update(f.read(_CHUNK))
    return digest.hexdigest()


def files_fingerprint(path: Path) -> str | None:
    """'files-<hex>' over the regular files of `path` (a directory's top level, hidden files
    skipped, or one file): names, sizes and (sampled) content. None when there are none."""
    try:
        if path.is_file():
            members = [(path.name, path)]
        elif path.is_dir():
            members = sorted(
                (p.name, p) for p in path.iterdir() if not p.name.startswith(".") and p.is_file()
            )
        else:
            return None
        if not members:
            return None
        digest = hashlib.sha256()
        for name, member in members:
            size = member.stat().st_size
            digest.update(f"{name}\0{size}\0{_file_digest(member, size)}\0".encode())
    except OSError as exc:
        raise MiradaError(f"cannot read the model files at {path}: {exc}") from exc
    return "files-" + digest.hexdigest()[:16]


def _written_path(spec: ModelSpec) -> str | None:
    """The path as the id spells it, when the id names its weights by path."""
    if spec.local_path is None:
        return None
    if spec.checkpoint is not None:
        return spec.pretrained
    return spec.source.removeprefix("local-dir:")


def _written_relative(spec: ModelSpec) -> bool:
    written = _written_path(spec)
    return written is not None and not os.path.isabs(os.path.expanduser(written))


def pin_model(model_id: str) -> PinnedModel:
    """At queue time: the id with its local path made absolute (against this process's current
    directory) and the fingerprint of the files there.

    A relative path with nothing behind it is refused (it was typed here, so here is where it
    must exist); an absolute one may be absent here and present on the worker's machine."""
    spec = parse_model_id(model_id)
    path = spec.local_path
    if path is None:
        return PinnedModel(spec.model_id, None, None)
    if spec.checkpoint is not None and path.exists() and not path.is_file():
        raise MiradaError(f"model {model_id}: the checkpoint {path} is not a file")
    files = files_fingerprint(path)
    if files is None and _written_relative(spec):
        raise MiradaError(
            f"model {model_id}: no model files at {path} (the path {_written_path(spec)!r} is "
            f"read from the current directory, {Path.cwd()}); check the path or give it "
            "absolute"
        )
    return PinnedModel(spec.pinned_id, path, files)


def check_pinned(model_id: str, expected: str | None) -> None:
    """In the worker, before loading: refuse a path resolved against this process's directory,
    and files that differ from the fingerprint recorded when the run was queued."""
    spec = parse_model_id(model_id)
    if _written_relative(spec):
        # Pinned runs store absolute paths, so this is a run queued before paths were pinned,
        # or a Hub repo name that a folder in this worker's directory shadows.
        raise ModelFilesChangedError(
            f"model {model_id}: {_written_path(spec)!r} would be read from this worker's "
            f"current directory ({Path.cwd()}), not from where the run was queued. Re-queue "
            "the run with `mirada queue` (it records the absolute path), or start the worker "
            "from a directory without that name."
        )
    path = spec.local_path
    if path is None or expected is None:
        return
    found = files_fingerprint(path)
    if found != expected:
        what = f"found {found}" if found else "found no files there"
        raise ModelFilesChangedError(
            f"model {model_id}: the files at {path} are not the ones the run was queued with "
            f"(expected {expected}, {what}). Restore them, or re-queue the run with "
            "`mirada queue` to evaluate the files that are there now."
        )
