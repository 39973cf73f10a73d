"""Read models of the Datasets page: summaries, categories, the thumbnail gallery."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Select, func, select

from mirada.datasets.blobs import ensure_local
from mirada.db import read_session
from mirada.db.models import Caption, Dataset, Image, Item
from mirada.errors import MiradaError
from mirada.queries.common import NO_CATEGORY

SUMMARY_COLUMNS = ["id", "name", "format", "images", "captions", "categories", "created", "source"]
GALLERY_COLUMNS = ["item_id", "filename", "category", "sha256", "ext", "captions"]


def fetch_missing(images: Iterable[tuple[str, str]], *, thumbnails: bool) -> None:
    """On a machine that did not import the dataset, fetch (sha256, ext) files from the shared
    database; a file that is nowhere is shown as missing by the page.

    Call it after the read session that found the rows is closed: it opens its own."""
    try:
        ensure_local(images, thumbnails=thumbnails)
    except MiradaError:
        pass


def dataset_summaries() -> pd.DataFrame:
    """One row per dataset: id, name, format, images, captions, categories, created, source."""
    with read_session() as s:
        datasets = s.execute(
            select(
                Dataset.id,
                Dataset.name,
                Dataset.source_format,
                Dataset.created,
                Dataset.source_path,
            ).order_by(Dataset.id)
        ).all()
        images = dict(
            s.execute(select(Item.dataset_id, func.count(Item.id)).group_by(Item.dataset_id)).all()
        )
        cats = dict(
            s.execute(
                select(Item.dataset_id, func.count(func.distinct(Item.category))).group_by(
                    Item.dataset_id
                )
            ).all()
        )
        caps = dict(
            s.execute(
                select(Item.dataset_id, func.count(Caption.id))
                .join(Caption, Caption.item_id == Item.id)
                .group_by(Item.dataset_id)
            ).all()
        )
    rows = [
        {
            "id": d.id,
            "name": d.name,
            "format": d.source_format,
            "images": int(images.get(d.id, 0)),
            "captions": int(caps.get(d.id, 0)),
            "categories": int(cats.get(d.id, 0)),
            "created": d.created.isoformat(timespec="seconds") if d.created else None,
            "source": d.source_path,
        }
        for d in datasets
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def dataset_categories(dataset_id: int) -> list[str]:
    """Distinct categories of a dataset, sorted; NO_CATEGORY stands for items without one."""
    with read_session() as s:
        cats = s.scalars(
            select(Item.category).where(Item.dataset_id == dataset_id).distinct()
        ).all()
    return sorted(c if c is not None else NO_CATEGORY for c in cats)


def _in_category(stmt: Select, category: str | None) -> Select:
    if category == NO_CATEGORY:
        return stmt.where(Item.category.is_(None))
    if category is not None:
        return stmt.where(Item.category == category)
    return stmt


def dataset_item_count(dataset_id: int, category: str | None = None) -> int:
    """Items of a dataset (of one category when given; NO_CATEGORY = uncategorised)."""
    stmt = _in_category(select(func.count(Item.id)).where(Item.dataset_id == dataset_id), category)
    with read_session() as s:
        return int(s.scalar(stmt) or 0)


def dataset_gallery(
    dataset_id: int, *, category: str | None = None, limit: int = 48, offset: int = 0
) -> pd.DataFrame:
    """One page of items for a thumbnail gallery, with their thumbnails fetched locally.

    Columns: item_id, filename, category, sha256, ext, captions (list of str).
    """
    stmt = _in_category(
        select(Item.id, Item.filename, Item.category, Item.image_sha256, Image.ext)
        .join(Image, Image.sha256 == Item.image_sha256)
        .where(Item.dataset_id == dataset_id)
        .order_by(Item.position, Item.id)
        .limit(limit)
        .offset(offset),
        category,
    )
    with read_session() as s:
        rows = s.execute(stmt).all()
        ids = [r[0] for r in rows]
        caps = (
            s.execute(
                select(Caption.item_id, Caption.text)
                .where(Caption.item_id.in_(ids))
                .order_by(Caption.item_id, Caption.position)
            ).all()
            if ids
            else []
        )
    by_item: dict[int, list[str]] = {}
    for item_id, text in caps:
        by_item.setdefault(item_id, []).append(text)
    fetch_missing([(r[3], r[4]) for r in rows], thumbnails=True)
    return pd.DataFrame(
        [
            {
                "item_id": r[0],
                "filename": r[1],
                "category": r[2] if r[2] is not None else NO_CATEGORY,
                "sha256": r[3],
                "ext": r[4],
                "captions": by_item.get(r[0], []),
            }
            for r in rows
        ],
        columns=GALLERY_COLUMNS,
    )


def category_counts(dataset_id: int) -> pd.DataFrame:
    """Images and captions per category: category, images, captions."""
    with read_session() as s:
        imgs = s.execute(
            select(Item.category, func.count(Item.id))
            .where(Item.dataset_id == dataset_id)
            .group_by(Item.category)
        ).all()
        caps = dict(
            s.execute(
                select(Item.category, func.count(Caption.id))
                .join(Caption, Caption.item_id == Item.id)
                .where(Item.dataset_id == dataset_id)
                .group_by(Item.category)
            ).all()
        )
    return pd.DataFrame(
        [
            {
                "category": c if c is not None else NO_CATEGORY,
                "images": int(n),
                "captions": int(caps.get(c, 0)),
            }
            for c, n in imgs
        ],
        columns=["category", "images", "captions"],
    )
