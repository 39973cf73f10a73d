"""Small inline thumbnails for tables and galleries: data URLs the browser shows offline.

The store keeps one JPEG thumbnail per image (longest side 256 px); a table cell needs far
less, so each is shrunk to `TABLE_THUMB_PX` before it is base64-encoded (a 200-row table
then carries about 0.6 MB instead of 3 MB).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from PIL import Image as PILImage
from sqlalchemy import select

from mirada.datasets import image_path, thumbnail_path
from mirada.db import read_session
from mirada.db.models import Image, Item
from mirada.queries.datasets import fetch_missing

TABLE_THUMB_PX = 72  # a table row's image cell
GALLERY_THUMB_PX = 256  # the stored thumbnail as is


def _data_url(path_bytes: bytes, px: int) -> str | None:
    try:
        with PILImage.open(io.BytesIO(path_bytes)) as src:
            im = src.convert("RGB")
        if max(im.size) > px:
            im.thumbnail((px, px))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=80)
    except (OSError, ValueError):  # unreadable file: the cell stays empty
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def thumbnail_urls(item_ids: Sequence[int], *, px: int = TABLE_THUMB_PX) -> dict[int, str]:
    """{item id: data URL of a JPEG thumbnail, longest side <= px}; items whose image is on
    neither disk nor in the database are left out. Thumbnails missing locally are fetched from
    the database (shared PostgreSQL), else made from the image file."""
    ids = sorted({int(i) for i in item_ids})
    if not ids:
        return {}
    with read_session() as s:
        rows = s.execute(
            select(Item.id, Item.image_sha256, Image.ext)
            .join(Image, Image.sha256 == Item.image_sha256)
            .where(Item.id.in_(ids))
        ).all()
    fetch_missing([(sha, ext) for _, sha, ext in rows], thumbnails=True)
    out: dict[int, str] = {}
    for item_id, sha, ext in rows:
        src = thumbnail_path(sha)
        if not src.exists():
            src = image_path(sha, ext)
        if not src.exists():
            continue
        url = _data_url(src.read_bytes(), px)
        if url is not None:
            out[int(item_id)] = url
    return out
