"""A model's cache identity from files alone, so a fully cached re-run never loads the model.

Loading even a small model costs seconds; reading a snapshot's commit hash or a local
directory's file stamps costs microseconds. When neither is available we fall back to the
loaded adapter's fingerprint.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from mirada.vlm import _hub
from mirada.vlm.ids import OPEN_CLIP, parse_model_id

CACHE_FORMAT = 1  # bump when the meaning of cached vectors changes


def cache_identity(model_id: str, dtype: str) -> dict[str, Any] | None:
    """{"model_id", "revision", "dtype", ...} or None when only loading can tell."""
    spec = parse_model_id(model_id)
    revision: str | None = None
    extra: dict[str, Any] = {}
    if spec.local_dir is not None:
        revision = _hub.revision_of(spec.local_dir)
    elif spec.family == OPEN_CLIP:
        if spec.pretrained is None:
            return None
        from mirada.vlm.registry import _OPEN_CLIP_FILES, OPEN_CLIP_TAG_REPOS

        known = OPEN_CLIP_TAG_REPOS.get((spec.source, spec.pretrained))
        found = _hub.cached_file(known[0], _OPEN_CLIP_FILES) if known else None
        if found is not None:
            revision = _hub.revision_of(found)
            # open_clip's preprocessing comes from its packaged model config
            extra["open_clip"] = metadata.version("open_clip_torch")
    else:
        snapshot = _hub.cached_snapshot(spec.source)
        if snapshot is not None:
            revision = _hub.revision_of(snapshot)
    if revision is None:
        return None
    return {
        "model_id": spec.model_id,
        "revision": revision,
        "dtype": dtype,
        "cache_format": CACHE_FORMAT,
        **extra,
    }
