"""The only writer of dataset rows, and the only code that moves files into or out of the image
store.

Files are moved in place inside the write transaction, after the rows are flushed and before
the commit: once a dataset is visible, its files exist.

Images are shared between datasets, so files are reference-safe by two rules (issue 12 item 1):
- Only `_remove_unused` unlinks a stored file, and only after re-reading, under the store's
  exclusive lock, that no image row needs it. Deletes and failed imports both go through it.
- An import holds the store's shared lock from its first insert until its commit or rollback,
  so that check never runs while an import has placed (or skipped as already there) a file
  that its uncommitted rows rely on. An import that comes later finds the file gone and
  places its own copy.
The lock is flock(2) on the images folder: inter-process, per MIRADA_HOME, and no lock file.
On PostgreSQL the delete also locks the `images` table (see `_drop_unused_images`) so that an
import in flight can never reference a row the delete removes.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from mirada.config import get_settings
from mirada.datasets.blobs import insert_or_skip, store_blobs
from mirada.datasets.paths import image_path, thumbnail_path
from mirada.datasets.problems import fatal
from mirada.db import read_session, write_session
from mirada.db.models import Caption, Dataset, Image, Item
from mirada.errors import MiradaError, NotFoundError

_CHUNK = 500  # keeps IN lists and multi-row VALUES well under SQLite's variable limit


@dataclass(frozen=True)
class NewImage:
    sha256: str
    ext: str
    width: int
    height: int
    original_format: str | None
    size_bytes: int


@dataclass(frozen=True)
class NewItem:
    filename: str
    sha256: str
    category: str | None
    captions: list[str]


def staged_image(staging: Path, sha256: str, ext: str) -> Path:
    return staging / "images" / f"{sha256}.{ext}"


def staged_thumbnail(staging: Path, sha256: str) -> Path:
    return staging / "thumbs" / f"{sha256}.jpg"


def duplicate_name_error(name: str) -> Exception:
    return fatal(
        f"dataset name {name!r}",
        "is already taken; pick another with --name NEW_NAME (see `mirada datasets`)",
        dataset=name,
    )


def save_dataset(
    *,
    name: str,
    source_format: str,
    source_path: str,
    images: Sequence[NewImage],
    items: Sequence[NewItem],
    staging: Path,
    with_files: bool = True,
) -> int:
    """Insert the dataset, its new images, items and captions in one transaction; return its id.

    `staging` holds images/<sha>.<ext> and thumbs/<sha>.jpg for every image in `images`.
    Without `with_files` only the rows are written (a result bundle's dataset whose images
    are not present here, mirada.bundles); a later import of the same images adds the files.
    """
    placed: list[tuple[str, str]] = []  # (sha256, ext) of files this call moved into the store
    try:
        with _store_lock(exclusive=False), write_session() as s:
            if s.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
                raise duplicate_name_error(name)
            dataset = Dataset(name=name, source_format=source_format, source_path=source_path)
            s.add(dataset)
            s.flush()
            _insert_images(s, images)
            if with_files and get_settings().images_in_database:
                store_blobs(
                    s,
                    [
                        (im.sha256, kind, path)
                        for im in images
                        for kind, path in (
                            ("image", staged_image(staging, im.sha256, im.ext)),
                            ("thumb", staged_thumbnail(staging, im.sha256)),
                        )
                    ],
                )
            _insert_items(s, dataset.id, items)
            if with_files:
                _place_files(staging, images, placed)
            dataset_id = dataset.id
    except IntegrityError as exc:
        _remove_unused(placed, quiet=True)
        raise _integrity_error(exc, name) from exc
    except (OSError, DBAPIError) as exc:
        _remove_unused(placed, quiet=True)
        if isinstance(exc, DBAPIError) and not _disk_full(exc):
            raise
        raise _full_disk_error(exc, name) from exc
    except BaseException:
        _remove_unused(placed, quiet=True)
        raise
    return dataset_id


def _integrity_error(exc: IntegrityError, name: str) -> Exception:
    # Lost a race with another import of the same name (SQLite: "datasets.name", PostgreSQL:
    # the constraint "..._datasets_name..."); any other constraint is a different cause.
    if _violates_dataset_name(str(exc.orig)):
        return duplicate_name_error(name)
    return fatal(
        f"dataset {name!r}",
        f"the database changed during the import ({exc.orig}); run the import again",
        dataset=name,
    )


def _disk_full(exc: DBAPIError) -> bool:
    # PostgreSQL: SQLSTATE 53100 disk_full; SQLite: SQLITE_FULL "database or disk is full".
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    text_ = str(exc.orig).lower()
    return code == "53100" or "disk is full" in text_ or "no space left" in text_


def _full_disk_error(exc: OSError | DBAPIError, name: str) -> Exception:
    settings = get_settings()
    if isinstance(exc, DBAPIError):
        where = "the database"
        why = f"its disk is full ({str(exc.orig).strip().splitlines()[0]})"
    else:
        where = f"MIRADA_HOME ({settings.home})"
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "the disk is full" if full else f"cannot write there ({exc.strerror or exc})"
    return fatal(
        f"dataset {name!r}",
        f"could not be stored in {where}: {why}; nothing was imported. Free some space and "
        "import again",
        dataset=name,
    )


def _violates_dataset_name(message: str) -> bool:
    low = message.lower()
    return "unique" in low and ("datasets.name" in low or "datasets_name" in low)


def _insert_images(s: Session, images: Sequence[NewImage]) -> None:
    rows = [
        {
            "sha256": im.sha256,
            "ext": im.ext,
            "width": im.width,
            "height": im.height,
            "original_format": im.original_format,
            "size_bytes": im.size_bytes,
        }
        for im in images
    ]
    # Content-addressed: an image another dataset already stored is simply reused.
    for chunk in _chunks(rows):
        s.execute(insert_or_skip(s, Image, ["sha256"]), chunk)


def _insert_items(s: Session, dataset_id: int, items: Sequence[NewItem]) -> None:
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        rows = [
            {
                "dataset_id": dataset_id,
                "image_sha256": it.sha256,
                "filename": it.filename,
                "category": it.category,
                "position": start + i,
            }
            for i, it in enumerate(chunk)
        ]
        ids = s.scalars(insert(Item).returning(Item.id, sort_by_parameter_order=True), rows).all()
        captions: list[dict[str, Any]] = [
            {"item_id": item_id, "text": text, "position": pos}
            for item_id, it in zip(ids, chunk, strict=True)
            for pos, text in enumerate(it.captions)
        ]
        for cap_chunk in _chunks(captions):
            s.execute(insert(Caption), cap_chunk)


def _place_files(staging: Path, images: Sequence[NewImage], placed: list[tuple[str, str]]) -> None:
    """Move staged files into the store; record in `placed` each image whose files it moved."""
    for im in images:
        moved = False
        for src, dst in (
            (staged_image(staging, im.sha256, im.ext), image_path(im.sha256, im.ext)),
            (staged_thumbnail(staging, im.sha256), thumbnail_path(im.sha256)),
        ):
            # Safe to skip under the shared lock: nothing unlinks a file until we commit.
            if dst.exists():
                continue  # same hash, same bytes: already stored
            if not moved:
                placed.append((im.sha256, im.ext))
                moved = True
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)  # staging is inside MIRADA_HOME: same filesystem, atomic


def delete_dataset(dataset_id: int) -> None:
    """Delete a dataset (items, captions and runs cascade) and files no item uses any more."""
    try:
        with write_session() as s:
            if s.scalar(select(Dataset.id).where(Dataset.id == dataset_id)) is None:
                raise NotFoundError(f"no dataset with id {dataset_id}; see `mirada datasets`")
            s.execute(delete(Dataset).where(Dataset.id == dataset_id))
            orphans = _drop_unused_images(s)
    except IntegrityError as exc:
        # Not expected with the table lock below; still a clear message, never a traceback.
        raise MiradaError(
            f"dataset {dataset_id} could not be deleted: an import changed its images at the "
            f"same time ({exc.orig}); nothing was deleted, run the delete again"
        ) from exc
    # Only after the commit: a rolled-back delete must not lose files.
    _remove_unused(orphans)


def _drop_unused_images(s: Session) -> list[tuple[str, str]]:
    """Delete image rows no item references; return their (sha256, ext)."""
    if s.get_bind().dialect.name == "postgresql":
        # An import inserts into `images` (ROW EXCLUSIVE, even when every row exists) before it
        # references them from `items`. This lock waits for imports in flight and holds new ones
        # at that first insert until we commit: the check below then sees every reference, and
        # no import references a row we delete (which would be a foreign-key error on either
        # side). SQLite needs nothing: BEGIN IMMEDIATE already serialises writers.
        s.execute(text(f"LOCK TABLE {Image.__tablename__} IN SHARE ROW EXCLUSIVE MODE"))
    unused = ~exists().where(Item.image_sha256 == Image.sha256)
    orphans = [(sha, ext) for sha, ext in s.execute(select(Image.sha256, Image.ext).where(unused))]
    for chunk in _chunks([sha for sha, _ in orphans]):
        s.execute(delete(Image).where(Image.sha256.in_(chunk)))
    return orphans


def _remove_unused(images: Sequence[tuple[str, str]], *, quiet: bool = False) -> None:
    """Unlink the files of these images unless an image row needs them now.

    Under the exclusive lock no import of this MIRADA_HOME sits between placing files and its
    commit, so the rows read here are every reference there is. With `quiet` (cleaning up after
    a failure that is already being reported), a failure here leaves the files: garbage, never
    a loss.
    """
    if not images:
        return
    try:
        with _store_lock(exclusive=True):
            kept: set[str] = set()
            with read_session() as s:
                for chunk in _chunks([sha for sha, _ in images]):
                    kept.update(s.scalars(select(Image.sha256).where(Image.sha256.in_(chunk))))
            for sha, ext in images:
                if sha not in kept:
                    image_path(sha, ext).unlink(missing_ok=True)
                    thumbnail_path(sha).unlink(missing_ok=True)
    except (OSError, SQLAlchemyError):
        if not quiet:
            raise


def placing_files() -> AbstractContextManager[None]:
    """The lock an import holds while it places files of images whose rows are committed
    (mirada.bundles.images fills in a dataset's missing files): `_remove_unused` then never
    runs between its check that the rows exist and the files landing."""
    return _store_lock(exclusive=False)


@contextmanager
def _store_lock(*, exclusive: bool) -> Iterator[None]:
    """flock(2) on the images folder: shared for imports, exclusive for removing files."""
    folder = get_settings().images_dir
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _chunks(rows: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]
