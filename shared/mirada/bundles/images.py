"""Image files that arrive after their dataset (issue 22 §2).

A bundle exported without --with-images leaves its dataset here as rows only. A later bundle
that carries the images, of the same run or of another run on the same dataset, fills in the
files this home lacks:
- only images the dataset's rows name, and only the files missing here (an existing file is
  never replaced: same name, same content);
- each one checked against the SHA-256 the dataset stores (the member's manifest checksum is
  the bundle's own claim), then decoded like any imported image (pixel limit, thumbnail);
- staged first, all of them, so a bundle refused for one image places none; then each is
  hard-linked onto its final name (link(2) fails on an existing name, where rename would
  overwrite it), so a reader sees no file or the whole file, and two imports racing on one
  image keep the first;
- under the image store's shared lock, re-reading that each image still has a row, so a
  dataset deleted meanwhile does not get files nobody will remove (mirada.datasets.store);
- with images kept in the database (PostgreSQL), the bytes are added there too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from mirada.bundles.archive import IMAGES_PREFIX, BundleError, BundleReader
from mirada.config import get_settings
from mirada.datasets import store
from mirada.datasets.blobs import store_blobs
from mirada.datasets.images import ImageRejected, normalise
from mirada.datasets.paths import image_path, thumbnail_path
from mirada.db import read_session, write_session
from mirada.db.models import Image, Item

_CHUNK = 500  # IN lists well under SQLite's variable limit


def image_member(sha256: str, ext: str) -> str:
    return f"{IMAGES_PREFIX}{sha256}.{ext}"


def missing_images(dataset_id: int) -> list[tuple[str, str]]:
    """(sha256, ext) of the dataset's images whose file is not in this home, in item order."""
    with read_session() as s:
        rows = s.execute(
            select(Image.sha256, Image.ext)
            .join(Item, Item.image_sha256 == Image.sha256)
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Item.id)
        ).all()
    wanted = dict.fromkeys((sha, ext) for sha, ext in rows)
    return [(sha, ext) for sha, ext in wanted if not image_path(sha, ext).exists()]


def fill_dataset_images(reader: BundleReader, dataset_id: int) -> int:
    """Add the image files of dataset `dataset_id` that this home lacks and the bundle
    carries; return how many images were added (0 when the bundle has none of them)."""
    members = set(reader.names())
    wanted = [(s, e) for s, e in missing_images(dataset_id) if image_member(s, e) in members]
    if not wanted:
        return 0
    return add_images(reader, wanted)


def add_images(reader: BundleReader, images: Iterable[tuple[str, str]]) -> int:
    """Place each (sha256, ext) image of `reader` (and its thumbnail) that has an image row and
    no file here; return how many image files were placed. All are checked and staged first,
    so a bundle refused for one image places none."""
    settings = get_settings()
    images = list(images)
    staging = settings.staging_dir / f"bundle-images-{uuid.uuid4().hex}"
    placed: list[tuple[str, str, Path]] = []  # (sha256, blob kind, file) this call wrote
    try:
        for sha, ext in images:
            data = reader.read(image_member(sha, ext))
            if hashlib.sha256(data).hexdigest() != sha:
                raise BundleError(f"bundle {image_member(sha, ext)} does not match its SHA-256")
            try:
                thumb = normalise(data, max_pixels=settings.max_image_pixels).thumbnail
            except ImageRejected as exc:
                raise BundleError(f"bundle {image_member(sha, ext)}: {exc}") from None
            for path, content in (
                (store.staged_image(staging, sha, ext), data),
                (store.staged_thumbnail(staging, sha), thumb),
            ):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        with store.placing_files():
            known = _with_rows([sha for sha, _ in images])
            for sha, ext in images:
                if sha not in known:
                    continue  # its dataset was deleted meanwhile
                if _place(store.staged_image(staging, sha, ext), image_path(sha, ext)):
                    placed.append((sha, "image", image_path(sha, ext)))
                    if _place(store.staged_thumbnail(staging, sha), thumbnail_path(sha)):
                        placed.append((sha, "thumb", thumbnail_path(sha)))
            if placed and settings.images_in_database:
                with write_session() as s:
                    store_blobs(s, placed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sum(kind == "image" for _, kind, _ in placed)


def _with_rows(shas: list[str]) -> set[str]:
    known: set[str] = set()
    with read_session() as s:
        for start in range(0, len(shas), _CHUNK):
            chunk = shas[start : start + _CHUNK]
            known.update(s.scalars(select(Image.sha256).where(Image.sha256.in_(chunk))))
    return known


def _place(staged: Path, dest: Path) -> bool:
    """Link the staged file onto `dest` unless a file is there; True when this call placed it.
    Staging is inside MIRADA_HOME, so the link is on one filesystem and atomic."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(staged, dest)
    except FileExistsError:
        return False  # there already (or placed by a concurrent import): same hash, same bytes
    return True
