"""The only writer of dataset rows, and the only code that moves files into the image store.

Files are moved in place inside the write transaction, after the rows are flushed and before
the commit: once a dataset is visible, its files exist. If the commit fails, files this call
placed (that did not exist before) are removed again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mirada.config import get_settings
from mirada.datasets.blobs import store_blobs
from mirada.datasets.paths import image_path, thumbnail_path
from mirada.datasets.problems import fatal
from mirada.db import write_session
from mirada.db.models import Caption, Dataset, Image, Item
from mirada.errors import NotFoundError

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
) -> int:
    """Insert the dataset, its new images, items and captions in one transaction; return its id.

    `staging` holds images/<sha>.<ext> and thumbs/<sha>.jpg for every image in `images`.
    """
    placed: list[Path] = []
    try:
        with write_session() as s:
            if s.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
                raise duplicate_name_error(name)
            dataset = Dataset(name=name, source_format=source_format, source_path=source_path)
            s.add(dataset)
            s.flush()
            _insert_images(s, images)
            if get_settings().images_in_database:
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
            placed = _place_files(staging, images)
            dataset_id = dataset.id
    except IntegrityError as exc:
        _unlink(placed)
        # Lost a race with another import of the same name (SQLite: "datasets.name", PostgreSQL:
        # the constraint "..._datasets_name..."); any other constraint is a different cause.
        if _violates_dataset_name(str(exc.orig)):
            raise duplicate_name_error(name) from exc
        # E.g. a concurrent delete removed an image row this import meant to reuse.
        raise fatal(
            f"dataset {name!r}",
            f"the database changed during the import ({exc.orig}); run the import again",
            dataset=name,
        ) from exc
    except BaseException:
        _unlink(placed)
        raise
    return dataset_id


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
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    # Content-addressed: an image another dataset already stored is simply reused.
    for chunk in _chunks(rows):
        s.execute(dialect_insert(Image).on_conflict_do_nothing(index_elements=["sha256"]), chunk)


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


def _place_files(staging: Path, images: Sequence[NewImage]) -> list[Path]:
    placed: list[Path] = []
    for im in images:
        for src, dst in (
            (staged_image(staging, im.sha256, im.ext), image_path(im.sha256, im.ext)),
            (staged_thumbnail(staging, im.sha256), thumbnail_path(im.sha256)),
        ):
            if dst.exists():
                continue  # same hash, same bytes: already stored
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)  # staging is inside MIRADA_HOME: same filesystem, atomic
            placed.append(dst)
    return placed


def delete_dataset(dataset_id: int) -> None:
    """Delete a dataset (items, captions and runs cascade) and files no item uses any more."""
    with write_session() as s:
        if s.scalar(select(Dataset.id).where(Dataset.id == dataset_id)) is None:
            raise NotFoundError(f"no dataset with id {dataset_id}; see `mirada datasets`")
        s.execute(delete(Dataset).where(Dataset.id == dataset_id))
        unused = ~exists().where(Item.image_sha256 == Image.sha256)
        orphans = s.execute(select(Image.sha256, Image.ext).where(unused)).all()
        for chunk in _chunks([sha for sha, _ in orphans]):
            s.execute(delete(Image).where(Image.sha256.in_(chunk)))
    # Only after the commit: a rolled-back delete must not lose files.
    _unlink(p for sha, ext in orphans for p in (image_path(sha, ext), thumbnail_path(sha)))


def _unlink(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _chunks(rows: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]
