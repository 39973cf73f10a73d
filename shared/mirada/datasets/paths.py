"""Where stored images and thumbnails live: content-addressed under MIRADA_HOME."""

from __future__ import annotations

import re
from pathlib import Path

from mirada.config import get_settings

_SHA256 = re.compile(r"[0-9a-f]{64}")
THUMBNAIL_EXT = "jpg"


def _check_sha(sha256: str) -> str:
    # The hash becomes a file name: refuse anything that could smuggle a path in.
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
    return sha256


def image_path(sha256: str, ext: str) -> Path:
    """Absolute path of a stored image, e.g. $MIRADA_HOME/images/<sha256>.png."""
    if not ext.isalnum():
        raise ValueError(f"bad image extension: {ext!r}")
    return get_settings().images_dir / f"{_check_sha(sha256)}.{ext.lower()}"


def thumbnail_path(sha256: str) -> Path:
    """Absolute path of the dashboard thumbnail (JPEG, longest side 256 px)."""
    return get_settings().thumbs_dir / f"{_check_sha(sha256)}.{THUMBNAIL_EXT}"
