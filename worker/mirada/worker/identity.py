"""A model's cache identity from files alone, so a fully cached re-run never loads the model.

Loading even a small model costs seconds; reading a snapshot's commit hash or a local
directory's file stamps costs microseconds. When neither is available we fall back to the
loaded adapter's fingerprint.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from mirada.domain import Dtype
from mirada.vlm.hub import revision_of
from mirada.vlm.ids import parse_model_id
from mirada.vlm.registry import cached_weights

CACHE_FORMAT = 1  # bump when the meaning of cached vectors changes


def cache_identity(model_id: str, dtype: Dtype) -> dict[str, Any] | None:
    """{"model_id", "revision", "dtype", ...} or None when only loading can tell."""
    spec = parse_model_id(model_id)
    weights = cached_weights(spec)
    revision = revision_of(weights) if weights is not None else None
    if revision is None:
        return None
    extra: dict[str, Any] = {}
    package = spec.family_entry.config_package
    if package is not None and spec.local_dir is None:
        # weights named by tag: the package's bundled config decides the preprocessing
        name, distribution = package
        extra[name] = metadata.version(distribution)
    return {
        "model_id": spec.model_id,
        "revision": revision,
        "dtype": dtype.value,  # the stored string: cache keys never change
        "cache_format": CACHE_FORMAT,
        **extra,
    }
