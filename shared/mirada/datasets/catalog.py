"""Read models for datasets: summaries for listings, items for the worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import distinct, func, select

from mirada.datasets.paths import image_path
from mirada.db import read_session
from mirada.db.models import Caption, Dataset, Image, Item
from mirada.domain import parse_id
from mirada.errors import NotFoundError


@dataclass(frozen=True)
class DatasetSummary:
    id: int
    name: str
    format: str
    images: int
    captions: int
    categories: int
    created: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "images": self.images,
            "captions": self.captions,
            "categories": self.categories,
        }


@dataclass(frozen=True)
class ItemRecord:
    item_id: int
    sha256: str
    path: Path  # absolute path of the stored (normalised) image
    filename: str  # relative path in the imported source
    category: str | None
    captions: list[tuple[int, str]]  # (caption_id, text) in position order


def list_datasets() -> list[DatasetSummary]:
    """All datasets, oldest first, with image/caption/category counts."""
    return _summaries(None)


def _summaries(dataset_id: int | None) -> list[DatasetSummary]:
    items = (
        select(
            Item.dataset_id,
            func.count(Item.id).label("images"),
            func.count(distinct(Item.category)).label("categories"),
        )
        .group_by(Item.dataset_id)
        .subquery()
    )
    caps = (
        select(Item.dataset_id, func.count(Caption.id).label("captions"))
        .join(Caption, Caption.item_id == Item.id)
        .group_by(Item.dataset_id)
        .subquery()
    )
    query = (
        select(
            Dataset.id,
            Dataset.name,
            Dataset.source_format,
            Dataset.created,
            func.coalesce(items.c.images, 0),
            func.coalesce(caps.c.captions, 0),
            func.coalesce(items.c.categories, 0),
        )
        .outerjoin(items, items.c.dataset_id == Dataset.id)
        .outerjoin(caps, caps.c.dataset_id == Dataset.id)
        .order_by(Dataset.id)
    )
    if dataset_id is not None:
        query = query.where(Dataset.id == dataset_id)
    with read_session() as s:
        rows = s.execute(query).all()
    return [
        DatasetSummary(
            id=r[0],
            name=r[1],
            format=r[2],
            created=r[3],
            images=int(r[4]),
            captions=int(r[5]),
            categories=int(r[6]),
        )
        for r in rows
    ]


def resolve_dataset(name_or_id: str | int) -> DatasetSummary:
    """Find a dataset by exact name, or by id (an int, or a string of digits no name matches)."""
    with read_session() as s:
        found: int | None = None
        if isinstance(name_or_id, str):
            found = s.scalar(select(Dataset.id).where(Dataset.name == name_or_id))
            number = parse_id(name_or_id)  # "²" or 23 digits name no id (int() would raise)
            if found is None and number is not None:
                found = s.scalar(select(Dataset.id).where(Dataset.id == number))
        else:
            found = s.scalar(select(Dataset.id).where(Dataset.id == int(name_or_id)))
        names = (
            []
            if found is not None
            else s.scalars(select(Dataset.name).order_by(Dataset.id).limit(20)).all()
        )
    if found is None:
        if names:
            hint = "available: " + ", ".join(names)
        else:
            hint = "no datasets yet; import one with `mirada import PATH`"
        raise NotFoundError(f"no dataset {name_or_id!r}; {hint}")
    return _summaries(found)[0]


def load_items(dataset_id: int) -> list[ItemRecord]:
    """Every item of a dataset in import order, with its captions in order."""
    with read_session() as s:
        if s.scalar(select(Dataset.id).where(Dataset.id == dataset_id)) is None:
            raise NotFoundError(f"no dataset with id {dataset_id}; see `mirada datasets`")
        rows = s.execute(
            select(Item.id, Item.image_sha256, Image.ext, Item.filename, Item.category)
            .join(Image, Image.sha256 == Item.image_sha256)
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Item.id)
        ).all()
        caption_rows = s.execute(
            select(Caption.item_id, Caption.id, Caption.text)
            .join(Item, Item.id == Caption.item_id)
            .where(Item.dataset_id == dataset_id)
            .order_by(Caption.item_id, Caption.position, Caption.id)
        ).all()
    captions: dict[int, list[tuple[int, str]]] = {}
    for item_id, caption_id, text in caption_rows:
        captions.setdefault(item_id, []).append((caption_id, text))
    return [
        ItemRecord(
            item_id=item_id,
            sha256=sha,
            path=image_path(sha, ext),
            filename=filename,
            category=category,
            captions=captions.get(item_id, []),
        )
        for item_id, sha, ext, filename, category in rows
    ]
