"""Image bytes in a shared database, so machines that did not import a dataset can use it.

With PostgreSQL (MIRADA_IMAGES_IN_DATABASE=auto), an import also stores each new image and
thumbnail in `image_blobs`. A worker or dashboard on another machine calls `ensure_local`,
which writes the files it lacks into its own MIRADA_HOME (checked against the sha256 name).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mirada.config import get_settings
from mirada.datasets.paths import image_path, thumbnail_path
from mirada.db import read_session
from mirada.db.models import Base, ImageBlob
from mirada.errors import MiradaError

_CHUNK = 200  # blobs per query: bounded memory however large the dataset


def store_blobs(session: Session, files: Sequence[tuple[str, str, Path]]) -> None:
    """Insert (sha256, kind, file) blobs inside the import's transaction; skip existing ones."""
    for start in range(0, len(files), _CHUNK):
        rows = [
            {"sha256": sha, "kind": kind, "data": path.read_bytes()}
            for sha, kind, path in files[start : start + _CHUNK]
        ]
        session.execute(insert_or_skip(session, ImageBlob), rows)


def insert_or_skip(
    session: Session, model: type[Base], index_elements: list[str] | None = None
) -> postgresql.Insert | sqlite.Insert:
    """INSERT that skips rows whose key exists (both dialects spell it ON CONFLICT DO NOTHING)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=index_elements)
    return sqlite.insert(model).on_conflict_do_nothing(index_elements=index_elements)


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".fetch-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_local(images: Iterable[tuple[str, str]], *, thumbnails: bool = False) -> int:
    """Make sure every (sha256, ext) image (or its thumbnail) exists under MIRADA_HOME.

    Missing files are fetched from the database. Returns how many were fetched; raises a
    MiradaError naming the first image that is neither on disk nor in the database.
    """
    wanted: dict[str, Path] = {}
    for sha, ext in images:
        path = thumbnail_path(sha) if thumbnails else image_path(sha, ext)
        if not path.exists():
            wanted[sha] = path
    if not wanted:
        return 0
    kind = "thumb" if thumbnails else "image"
    shas = list(wanted)
    fetched = 0
    with read_session() as s:
        for start in range(0, len(shas), _CHUNK):
            chunk = shas[start : start + _CHUNK]
            rows = s.execute(
                select(ImageBlob.sha256, ImageBlob.data).where(
                    ImageBlob.kind == kind, ImageBlob.sha256.in_(chunk)
                )
            )
            for sha, data in rows:
                if kind == "image" and hashlib.sha256(data).hexdigest() != sha:
                    raise MiradaError(f"the database copy of image {sha} is corrupt; re-import it")
                _write_atomic(wanted.pop(sha), data)
                fetched += 1
    if wanted and not thumbnails:
        path = next(iter(wanted.values()))
        home = get_settings().home
        raise MiradaError(
            f"image {path.name} is not in this machine's MIRADA_HOME ({home}) and the database "
            "has no copy of it. Share MIRADA_HOME between machines, or import datasets while "
            "MIRADA_DATABASE_URL points at the shared PostgreSQL (images are then kept in it)."
        )
    return fetched
