"""Read models of the Results page's similarity heatmap: stored embeddings, ordered by category.

Only the embeddings a match run stored are read (no model runs here). Large runs get a block
heatmap (mean similarity per pair of categories) and slices instead of every cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import RunEmbedding
from mirada.queries.common import caption_frame, item_frame, run_info

CELL_COLUMNS = [
    "image",
    "caption",
    "score",
    "filename",
    "image_category",
    "caption_text",
    "caption_category",
    "own",
    "item_id",
]


def load_embeddings(run_id: int, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(row_ids int64 [N], vectors float32 [N, D]) of a stored embedding set, or None."""
    with read_session() as s:
        emb = s.scalars(
            select(RunEmbedding).where(RunEmbedding.run_id == run_id, RunEmbedding.kind == kind)
        ).first()
    if emb is None:
        return None
    vectors = np.frombuffer(emb.data, dtype=np.float32).reshape(emb.count, emb.dim)
    ids = np.frombuffer(emb.row_ids, dtype=np.int64)
    return ids, vectors


def embedding_kinds(run_id: int) -> list[str]:
    """The embedding sets a run stored ("image", "text")."""
    with read_session() as s:
        return list(s.scalars(select(RunEmbedding.kind).where(RunEmbedding.run_id == run_id)).all())


def _ordered_matrix_inputs(
    run_id: int,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray] | None:
    """Images and captions ordered by (category, dataset order), with their embeddings."""
    info = run_info(run_id)
    img = load_embeddings(run_id, "image")
    txt = load_embeddings(run_id, "text")
    if info is None or img is None or txt is None:
        return None
    items = item_frame(info.dataset_id)
    caps = caption_frame(info.dataset_id)
    img_pos = pd.Series(np.arange(len(img[0])), index=img[0])
    txt_pos = pd.Series(np.arange(len(txt[0])), index=txt[0])
    items = items[items["item_id"].isin(img_pos.index)].copy()
    items["emb_row"] = img_pos.loc[items["item_id"]].to_numpy()
    items = items.sort_values(["category", "position", "item_id"], kind="stable").reset_index(
        drop=True
    )
    items["order"] = np.arange(len(items))
    caps = caps[caps["caption_id"].isin(txt_pos.index)].copy()
    caps["emb_row"] = txt_pos.loc[caps["caption_id"]].to_numpy()
    caps = caps.merge(
        items[["item_id", "order", "category", "filename"]], on="item_id", how="inner"
    )
    caps = caps.sort_values(["order", "position", "caption_id"], kind="stable").reset_index(
        drop=True
    )
    return items, caps, img[1], txt[1]


def _boundaries(categories: pd.Series) -> pd.DataFrame:
    """Start/end index of each run of equal categories in an ordered Series."""
    values = categories.to_numpy()
    rows = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            rows.append({"category": values[start], "start": start, "end": i})
            start = i
    return pd.DataFrame(rows, columns=["category", "start", "end"])


def _cells(
    items: pd.DataFrame, caps: pd.DataFrame, img: np.ndarray, txt: np.ndarray
) -> pd.DataFrame:
    sims = img[items["emb_row"].to_numpy()] @ txt[caps["emb_row"].to_numpy()].T
    n, m = sims.shape
    rows = np.repeat(np.arange(n), m)
    cols = np.tile(np.arange(m), n)
    own = items["item_id"].to_numpy()[rows] == caps["item_id"].to_numpy()[cols]
    return pd.DataFrame(
        {
            "image": rows,
            "caption": cols,
            "score": sims.ravel().astype(np.float64),
            "filename": items["filename"].to_numpy()[rows],
            "image_category": items["category"].to_numpy()[rows],
            "caption_text": caps["text"].to_numpy()[cols],
            "caption_category": caps["category"].to_numpy()[cols],
            "own": own,
            "item_id": items["item_id"].to_numpy()[rows],  # the image's: cells link to it
        }
    )


def _limit_captions(caps: pd.DataFrame, n_images: int, max_cells: int) -> tuple[pd.DataFrame, str]:
    if n_images * len(caps) <= max_cells:
        return caps, "all captions"
    first = caps.drop_duplicates("item_id", keep="first").reset_index(drop=True)
    return first, "the first caption of each image"


@dataclass(frozen=True)
class SimilarityView:
    """The image x caption similarity heatmap of a run, ordered by category.

    mode "full" (at most max_images images): `cells` (CELL_COLUMNS) has one row per (image,
    caption) with order indices, score, file name, caption text, categories, `own` (the
    caption belongs to the image) and the image's item_id; `caption_note` says whether all
    captions or each image's first are used; `image_bounds` / `caption_bounds` (category,
    start, end) mark category runs.
    mode "blocks" (larger runs): `blocks` has image_category, caption_category, mean_score,
    images, captions, where mean_score = mean(img_A) . mean(txt_B) (exact: the dot product is
    bilinear). mode "none": the run stored no embeddings.
    """

    mode: str  # "full" | "blocks" | "none"
    n_images: int = 0
    n_captions: int = 0
    categories: list[str] = field(default_factory=list)
    cells: pd.DataFrame | None = None
    caption_note: str = ""
    image_bounds: pd.DataFrame | None = None
    caption_bounds: pd.DataFrame | None = None
    blocks: pd.DataFrame | None = None


def similarity_view(
    run_id: int, *, max_images: int = 200, max_cells: int = 20_000
) -> SimilarityView:
    """The heatmap data of a run (see SimilarityView). Above max_cells image x caption cells,
    only each image's first caption is used."""
    inputs = _ordered_matrix_inputs(run_id)
    if inputs is None:
        return SimilarityView("none")
    items, caps, img, txt = inputs
    cats = sorted(items["category"].unique().tolist())
    if len(items) <= max_images:
        caps_used, note = _limit_captions(caps, len(items), max_cells)
        caps_used = caps_used.reset_index(drop=True)
        return SimilarityView(
            "full",
            len(items),
            len(caps),
            cats,
            cells=_cells(items, caps_used, img, txt),
            caption_note=note,
            image_bounds=_boundaries(items["category"]),
            caption_bounds=_boundaries(caps_used["category"]),
        )
    img_means = np.stack(
        [img[items.loc[items["category"] == c, "emb_row"].to_numpy()].mean(axis=0) for c in cats]
    )
    txt_means = np.stack(
        [
            txt[caps.loc[caps["category"] == c, "emb_row"].to_numpy()].mean(axis=0)
            if (caps["category"] == c).any()
            else np.zeros(txt.shape[1], dtype=np.float32)
            for c in cats
        ]
    )
    block = img_means @ txt_means.T
    n_img = items.groupby("category").size()
    n_cap = caps.groupby("category").size()
    blocks = pd.DataFrame(
        [
            {
                "image_category": a,
                "caption_category": b,
                "mean_score": float(block[i, j]),
                "images": int(n_img.get(a, 0)),
                "captions": int(n_cap.get(b, 0)),
            }
            for i, a in enumerate(cats)
            for j, b in enumerate(cats)
        ],
        columns=["image_category", "caption_category", "mean_score", "images", "captions"],
    )
    return SimilarityView("blocks", len(items), len(caps), cats, blocks=blocks)


def similarity_slice(
    run_id: int,
    image_category: str,
    caption_category: str,
    *,
    max_images: int = 60,
    max_cells: int = 6_000,
    offset: int = 0,
) -> pd.DataFrame:
    """Image x caption cells for a slice: up to max_images images of one category against the
    captions of the images of another (first caption per image when too many cells)."""
    inputs = _ordered_matrix_inputs(run_id)
    if inputs is None:
        return pd.DataFrame(columns=CELL_COLUMNS)
    items, caps, img, txt = inputs
    rows = items[items["category"] == image_category].iloc[offset : offset + max_images]
    col_items = items[items["category"] == caption_category].iloc[:max_images]
    cols = caps[caps["item_id"].isin(col_items["item_id"])]
    cols, _ = _limit_captions(cols, len(rows), max_cells)
    if rows.empty or cols.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    return _cells(rows.reset_index(drop=True), cols.reset_index(drop=True), img, txt)
