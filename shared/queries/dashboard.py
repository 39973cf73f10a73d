"""Read models for the dashboard: DataFrames and dicts, never ORM objects, no Streamlit.

Every function reads through `mirada.db.read_session()` (the database named by the
environment), so the dashboard caches them with `st.cache_data` keyed by the database URL.
Metric values are stored as fractions (0..1); the dashboard formats them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from mirada.db import read_session
from mirada.db.models import (
    Caption,
    Dataset,
    GeneratedCaption,
    HardwareProfile,
    Image,
    Item,
    ItemResult,
    Metric,
    Run,
    RunArtifact,
    RunEmbedding,
    Timing,
    Worker,
)
from mirada.queries.runs import list_runs, recent_workers

NO_CATEGORY = "(none)"

# Headline metrics of a match run, in display order: (metric name, label, kind).
# kind "share" is shown in percent, "score" as a plain number.
HEADLINE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("i2t_recall@1", "Image→text R@1", "share"),
    ("i2t_recall@5", "Image→text R@5", "share"),
    ("i2t_recall@10", "Image→text R@10", "share"),
    ("t2i_recall@1", "Text→image R@1", "share"),
    ("t2i_recall@5", "Text→image R@5", "share"),
    ("t2i_recall@10", "Text→image R@10", "share"),
    ("mrr", "MRR", "score"),
    ("category_accuracy", "Category accuracy", "share"),
    ("zeroshot_accuracy", "Zero-shot accuracy", "share"),
    ("zeroshot_balanced_accuracy", "Zero-shot balanced acc.", "share"),
    ("i2t_recall@1_reranked", "Re-ranked R@1 (ITM)", "share"),
    ("i2t_recall@5_reranked", "Re-ranked R@5 (ITM)", "share"),
    ("i2t_recall@10_reranked", "Re-ranked R@10 (ITM)", "share"),
)
CAPTION_METRICS: tuple[str, ...] = (
    "BLEU-1",
    "BLEU-2",
    "BLEU-3",
    "BLEU-4",
    "METEOR",
    "ROUGE-L",
    "CIDEr",
)
# Shown per image on the Captions page (stored per image in GeneratedCaption.scores).
CAPTION_TABLE_METRICS: tuple[str, ...] = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")

TIMING_PATTERN = re.compile(
    r"^(?P<op>image_encode|text_encode|caption)_"
    r"(?P<stat>latency_p50_ms|latency_p95_ms|throughput_per_s|peak_rss_mb|cuda_max_allocated_mb)$"
)


def _norm_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def score_value(scores: dict[str, Any] | None, metric: str) -> float | None:
    """A per-image caption score by name, tolerant of spelling ("BLEU-4", "Bleu_4", "bleu4")."""
    if not scores:
        return None
    want = _norm_key(metric)
    for key, value in scores.items():
        if _norm_key(str(key)) == want:
            return None if value is None else float(value)
    return None


# ---------------------------------------------------------------------------------------------
# datasets


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
    columns = ["id", "name", "format", "images", "captions", "categories", "created", "source"]
    return pd.DataFrame(rows, columns=columns)


def dataset_categories(dataset_id: int) -> list[str]:
    """Distinct categories of a dataset, sorted; NO_CATEGORY stands for items without one."""
    with read_session() as s:
        cats = s.scalars(
            select(Item.category).where(Item.dataset_id == dataset_id).distinct()
        ).all()
    return sorted(c if c is not None else NO_CATEGORY for c in cats)


def dataset_gallery(
    dataset_id: int, *, category: str | None = None, limit: int = 48, offset: int = 0
) -> pd.DataFrame:
    """Items for a thumbnail gallery: item_id, filename, category, sha256, ext, captions (list)."""
    stmt = (
        select(Item.id, Item.filename, Item.category, Item.image_sha256, Image.ext)
        .join(Image, Image.sha256 == Item.image_sha256)
        .where(Item.dataset_id == dataset_id)
        .order_by(Item.position, Item.id)
        .limit(limit)
        .offset(offset)
    )
    if category == NO_CATEGORY:
        stmt = stmt.where(Item.category.is_(None))
    elif category is not None:
        stmt = stmt.where(Item.category == category)
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
    _fetch_missing([(r[3], r[4]) for r in rows], thumbnails=True)
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
        columns=["item_id", "filename", "category", "sha256", "ext", "captions"],
    )


def _fetch_missing(images: list[tuple[str, str]], *, thumbnails: bool) -> None:
    """On a machine that did not import the dataset, fetch its files from the shared database;
    a file that is nowhere is shown as missing by the page."""
    from mirada.datasets.blobs import ensure_local
    from mirada.errors import MiradaError

    try:
        ensure_local(images, thumbnails=thumbnails)
    except MiradaError:
        pass


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


def dataset_item_count(dataset_id: int, category: str | None = None) -> int:
    stmt = select(func.count(Item.id)).where(Item.dataset_id == dataset_id)
    if category == NO_CATEGORY:
        stmt = stmt.where(Item.category.is_(None))
    elif category is not None:
        stmt = stmt.where(Item.category == category)
    with read_session() as s:
        return int(s.scalar(stmt) or 0)


# ---------------------------------------------------------------------------------------------
# runs


def runs_frame(dataset_id: int | None = None, limit: int = 500) -> pd.DataFrame:
    """list_runs() as a DataFrame with a `progress` fraction (0..1) column."""
    rows = list_runs(dataset_id=dataset_id, limit=limit)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(
            columns=["id", "dataset", "model", "task", "status", "progress", "attempts", "device"]
        )
    total = df["progress_total"].clip(lower=1)
    df["progress"] = np.where(
        df["status"] == "succeeded", 1.0, (df["progress_done"] / total).clip(0, 1)
    )
    return df


def worker_notice(within_seconds: int = 60) -> str | None:
    """None while some worker heartbeated recently; otherwise what to do about it."""
    if recent_workers(within_seconds):
        return None
    return (
        f"No worker is running (no heartbeat in the last {within_seconds} s): queued runs will "
        "wait. Start one with `mirada worker`."
    )


def finished_runs(
    *,
    task: str | None = None,
    dataset_id: int | None = None,
    statuses: Sequence[str] = ("succeeded",),
) -> pd.DataFrame:
    """Runs with results: id, dataset_id, dataset, model, task, label (for pickers)."""
    stmt = (
        select(Run.id, Run.dataset_id, Dataset.name, Run.model_id, Run.task, Run.finished_at)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .where(Run.status.in_(list(statuses)))
        .order_by(Run.id.desc())
    )
    if task is not None:
        stmt = stmt.where(Run.task == task)
    if dataset_id is not None:
        stmt = stmt.where(Run.dataset_id == dataset_id)
    with read_session() as s:
        rows = s.execute(stmt).all()
    df = pd.DataFrame(
        [tuple(r) for r in rows],
        columns=["id", "dataset_id", "dataset", "model", "task", "finished_at"],
    )
    df["label"] = [
        f"#{r.id} {r.model} · {r.task} · {r.dataset}" for r in df.itertuples(index=False)
    ]
    return df


def short_model(model_id: str) -> str:
    """'open-clip:ViT-B-32/laion2b' -> 'ViT-B-32/laion2b' (labels for charts)."""
    return model_id.split(":", 1)[-1]


# ---------------------------------------------------------------------------------------------
# one run's results


def run_metrics(run_id: int) -> pd.DataFrame:
    """All metric rows: name, category (None = overall), value, ci_low, ci_high, unavailable."""
    with read_session() as s:
        rows = s.scalars(select(Metric).where(Metric.run_id == run_id).order_by(Metric.id)).all()
    return pd.DataFrame(
        [
            {
                "name": m.name,
                "category": m.category,
                "value": m.value,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "unavailable": (m.details or {}).get("unavailable"),
            }
            for m in rows
        ],
        columns=["name", "category", "value", "ci_low", "ci_high", "unavailable"],
    )


def headline_metrics(run_id: int) -> pd.DataFrame:
    """Overall headline metrics present for the run, in display order, with label and kind."""
    df = run_metrics(run_id)
    overall = df[df["category"].isna()].drop_duplicates("name").set_index("name")
    rows = []
    for name, label, kind in HEADLINE_METRICS:
        if name in overall.index:
            r = overall.loc[name]
            rows.append(
                {
                    "name": name,
                    "label": label,
                    "kind": kind,
                    "value": r["value"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                }
            )
    return pd.DataFrame(rows, columns=["name", "label", "kind", "value", "ci_low", "ci_high"])


def category_metrics(run_id: int) -> pd.DataFrame:
    """Per-category rows: category, metric, value, ci_low, ci_high (share metrics only)."""
    df = run_metrics(run_id)
    per = df[df["category"].notna()].rename(columns={"name": "metric"})
    return per[["category", "metric", "value", "ci_low", "ci_high"]].reset_index(drop=True)


def run_info(run_id: int) -> dict[str, Any] | None:
    """Small header facts for a run, or None when it does not exist."""
    with read_session() as s:
        row = s.execute(
            select(Run, Dataset.name)
            .join(Dataset, Dataset.id == Run.dataset_id)
            .where(Run.id == run_id)
        ).first()
    if row is None:
        return None
    run, dataset_name = row
    return {
        "id": run.id,
        "dataset_id": run.dataset_id,
        "dataset": dataset_name,
        "model": run.model_id,
        "task": run.task,
        "status": run.status,
        "device": run.resolved_device or run.device,
        "dtype": run.dtype,
        "batch_size": run.batch_size,
        "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
        "error": run.error,
        "traceback": run.traceback,
    }


def _item_frame(dataset_id: int) -> pd.DataFrame:
    with read_session() as s:
        rows = s.execute(
            select(
                Item.id, Item.position, Item.filename, Item.category, Item.image_sha256, Image.ext
            )
            .join(Image, Image.sha256 == Item.image_sha256)
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Item.id)
        ).all()
    df = pd.DataFrame(
        [tuple(r) for r in rows],
        columns=["item_id", "position", "filename", "category", "sha256", "ext"],
    )
    df["category"] = df["category"].fillna(NO_CATEGORY)
    return df


def caption_frame(dataset_id: int) -> pd.DataFrame:
    """caption_id, item_id, position, text for every caption of a dataset."""
    with read_session() as s:
        rows = s.execute(
            select(Caption.id, Caption.item_id, Caption.position, Caption.text)
            .join(Item, Item.id == Caption.item_id)
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Item.id, Caption.position, Caption.id)
        ).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["caption_id", "item_id", "position", "text"]
    )


def run_items(run_id: int) -> pd.DataFrame:
    """Per-image outcomes sorted worst first (incorrect first, then rank descending).

    Columns: item_id, filename, category, correct, rank, score, category_correct,
    zeroshot_pred, top1_caption_id.
    """
    info = run_info(run_id)
    columns = [
        "item_id",
        "filename",
        "category",
        "correct",
        "rank",
        "score",
        "category_correct",
        "zeroshot_pred",
        "top1_caption_id",
    ]
    if info is None:
        return pd.DataFrame(columns=columns)
    with read_session() as s:
        rows = s.execute(
            select(
                ItemResult.item_id,
                ItemResult.correct,
                ItemResult.rank,
                ItemResult.score,
                ItemResult.details,
            ).where(ItemResult.run_id == run_id)
        ).all()
    if not rows:
        return pd.DataFrame(columns=columns)
    res = pd.DataFrame(
        {
            "item_id": [r[0] for r in rows],
            "correct": [r[1] for r in rows],
            "rank": [r[2] for r in rows],
            "score": [r[3] for r in rows],
            "category_correct": [(r[4] or {}).get("category_correct") for r in rows],
            "zeroshot_pred": [(r[4] or {}).get("zeroshot_pred") for r in rows],
            "top1_caption_id": [
                (r[4] or {}).get("top", [[None]])[0][0] if (r[4] or {}).get("top") else None
                for r in rows
            ],
        }
    )
    items = _item_frame(info["dataset_id"])[["item_id", "filename", "category", "position"]]
    df = items.merge(res, on="item_id", how="inner")
    df = sort_worst_first(df)
    return df[columns].reset_index(drop=True)


def sort_worst_first(df: pd.DataFrame) -> pd.DataFrame:
    """Incorrect first, then by rank descending (missing ranks last), then dataset order."""
    key = df.assign(
        _ok=df["correct"].fillna(True).astype(bool),
        _rank=pd.to_numeric(df["rank"], errors="coerce").fillna(-1),
    )
    by = ["_ok", "_rank"] + (["position"] if "position" in df.columns else [])
    asc = [True, False] + ([True] if "position" in df.columns else [])
    return key.sort_values(by, ascending=asc, kind="stable").drop(columns=["_ok", "_rank"])


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
    items = _item_frame(info["dataset_id"])
    caps = caption_frame(info["dataset_id"])
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
        }
    )


def _limit_captions(caps: pd.DataFrame, n_images: int, max_cells: int) -> tuple[pd.DataFrame, str]:
    if n_images * len(caps) <= max_cells:
        return caps, "all captions"
    first = caps.drop_duplicates("item_id", keep="first").reset_index(drop=True)
    return first, "the first caption of each image"


def similarity_view(
    run_id: int, *, max_images: int = 200, max_cells: int = 20_000
) -> dict[str, Any]:
    """The image x caption similarity heatmap data, ordered by category.

    mode "full" (<= max_images images): `cells` has one row per (image, caption) with image /
    caption order indices, score, filename, caption text, categories and `own` (the caption
    belongs to the image). If images x captions exceeds max_cells, only each image's first
    caption is used (`caption_note` says which). mode "blocks" (larger runs): `blocks` has the
    mean cosine similarity for every (image category, caption category) pair, computed as
    mean(img_A) . mean(txt_B) (exact, because the dot product is bilinear). mode "none": no
    stored embeddings. `image_bounds` / `caption_bounds` give category runs for separators.
    """
    inputs = _ordered_matrix_inputs(run_id)
    if inputs is None:
        return {"mode": "none"}
    items, caps, img, txt = inputs
    out: dict[str, Any] = {
        "n_images": len(items),
        "n_captions": len(caps),
        "categories": sorted(items["category"].unique().tolist()),
    }
    if len(items) <= max_images:
        caps_used, note = _limit_captions(caps, len(items), max_cells)
        caps_used = caps_used.reset_index(drop=True)
        out.update(
            mode="full",
            cells=_cells(items, caps_used, img, txt),
            caption_note=note,
            image_bounds=_boundaries(items["category"]),
            caption_bounds=_boundaries(caps_used["category"]),
        )
        return out
    cats = out["categories"]
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
    out.update(
        mode="blocks",
        blocks=pd.DataFrame(
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
            ]
        ),
    )
    return out


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
        return pd.DataFrame()
    items, caps, img, txt = inputs
    rows = items[items["category"] == image_category].iloc[offset : offset + max_images]
    col_items = items[items["category"] == caption_category].iloc[:max_images]
    cols = caps[caps["item_id"].isin(col_items["item_id"])]
    cols, _ = _limit_captions(cols, len(rows), max_cells)
    if rows.empty or cols.empty:
        return pd.DataFrame()
    return _cells(rows.reset_index(drop=True), cols.reset_index(drop=True), img, txt)


def zeroshot_confusion(run_id: int) -> pd.DataFrame | None:
    """The "zeroshot_confusion" artifact as long rows: true, predicted, count, share of row."""
    with read_session() as s:
        art = s.scalars(
            select(RunArtifact).where(
                RunArtifact.run_id == run_id, RunArtifact.name == "zeroshot_confusion"
            )
        ).first()
    if art is None:
        return None
    data = json.loads(art.data)
    labels = [str(x) for x in data.get("labels", [])]
    matrix = np.asarray(data.get("matrix", []), dtype=np.float64).reshape(len(labels), len(labels))
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    return pd.DataFrame(
        [
            {
                "true": a,
                "predicted": b,
                "count": int(matrix[i, j]),
                "share": float(share[i, j]),
            }
            for i, a in enumerate(labels)
            for j, b in enumerate(labels)
        ]
    )


def json_artifact(run_id: int, name: str) -> Any:
    """A JSON artifact's content, or None."""
    with read_session() as s:
        data = s.scalar(
            select(RunArtifact.data).where(RunArtifact.run_id == run_id, RunArtifact.name == name)
        )
    return None if data is None else json.loads(data)


def item_drilldown(run_id: int, item_id: int) -> dict[str, Any] | None:
    """One image of a run: file, category, true captions, top-5 (and re-ranked) captions with
    scores and whether each is the image's own, plus the generated caption of caption runs."""
    info = run_info(run_id)
    if info is None:
        return None
    with read_session() as s:
        row = s.execute(
            select(Item.id, Item.filename, Item.category, Item.image_sha256, Image.ext)
            .join(Image, Image.sha256 == Item.image_sha256)
            .where(Item.id == item_id)
        ).first()
        if row is None:
            return None
        _fetch_missing([(row[3], row[4])], thumbnails=False)
        true_caps = s.execute(
            select(Caption.id, Caption.text)
            .where(Caption.item_id == item_id)
            .order_by(Caption.position)
        ).all()
        result = s.scalars(
            select(ItemResult).where(ItemResult.run_id == run_id, ItemResult.item_id == item_id)
        ).first()
        generated = s.scalars(
            select(GeneratedCaption).where(
                GeneratedCaption.run_id == run_id, GeneratedCaption.item_id == item_id
            )
        ).first()
        details = (result.details or {}) if result else {}
        wanted = {int(c) for key in ("top", "reranked") for c, _ in details.get(key, [])}
        texts = (
            dict(s.execute(select(Caption.id, Caption.text).where(Caption.id.in_(wanted))).all())
            if wanted
            else {}
        )
        owners = (
            dict(s.execute(select(Caption.id, Caption.item_id).where(Caption.id.in_(wanted))).all())
            if wanted
            else {}
        )

    def ranked(key: str) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "rank": i + 1,
                    "caption": texts.get(int(cid), f"caption {cid}"),
                    "score": float(score),
                    "own caption": owners.get(int(cid)) == item_id,
                }
                for i, (cid, score) in enumerate(details.get(key, []))
            ],
            columns=["rank", "caption", "score", "own caption"],
        )

    return {
        "item_id": row[0],
        "filename": row[1],
        "category": row[2],
        "sha256": row[3],
        "ext": row[4],
        "true_captions": [t for _, t in true_caps],
        "correct": result.correct if result else None,
        "rank": result.rank if result else None,
        "zeroshot_pred": details.get("zeroshot_pred"),
        "category_top1": details.get("category_top1"),
        "top": ranked("top"),
        "reranked": ranked("reranked") if details.get("reranked") else None,
        "generated": (
            {
                "text": generated.text,
                "scores": generated.scores or {},
                "flags": generated.flags or {},
            }
            if generated
            else None
        ),
    }


# ---------------------------------------------------------------------------------------------
# captions


def caption_table(run_id: int) -> pd.DataFrame:
    """Generated vs reference captions with per-image scores and degeneration flags."""
    info = run_info(run_id)
    columns = [
        "item_id",
        "filename",
        "category",
        "generated",
        "references",
        *CAPTION_TABLE_METRICS,
        "degenerate",
        "repeated_ngram_rate",
        "verbatim_repeat",
        "reasons",
    ]
    if info is None:
        return pd.DataFrame(columns=columns)
    with read_session() as s:
        rows = s.execute(
            select(
                GeneratedCaption.item_id,
                GeneratedCaption.text,
                GeneratedCaption.scores,
                GeneratedCaption.flags,
            ).where(GeneratedCaption.run_id == run_id)
        ).all()
    if not rows:
        return pd.DataFrame(columns=columns)
    items = _item_frame(info["dataset_id"])
    caps = caption_frame(info["dataset_id"])
    refs = caps.groupby("item_id")["text"].apply(lambda t: " | ".join(t)).to_dict()
    meta = items.set_index("item_id")
    out = []
    for item_id, text, scores, flags in rows:
        flags = flags or {}
        rec: dict[str, Any] = {
            "item_id": item_id,
            "filename": meta.at[item_id, "filename"] if item_id in meta.index else None,
            "category": meta.at[item_id, "category"] if item_id in meta.index else None,
            "generated": text,
            "references": refs.get(item_id, ""),
        }
        for m in CAPTION_TABLE_METRICS:
            rec[m] = score_value(scores, m)
        rec["degenerate"] = bool(flags.get("degenerate", False))
        rec["repeated_ngram_rate"] = flags.get("repeated_ngram_rate")
        rec["verbatim_repeat"] = bool(flags.get("verbatim_repeat", False))
        rec["reasons"] = "; ".join(flags.get("reasons", []) or [])
        out.append(rec)
    df = pd.DataFrame(out, columns=columns)
    order = items.set_index("item_id")["position"]
    df["_pos"] = df["item_id"].map(order)
    return df.sort_values("_pos").drop(columns="_pos").reset_index(drop=True)


def caption_corpus(run_id: int) -> pd.DataFrame:
    """Corpus caption metrics: metric, value, ci_low, ci_high, implementation, unavailable."""
    try:
        from mirada.metrics.captioning import IMPLEMENTATIONS
    except ImportError:  # metrics layer not installed: no implementation names
        IMPLEMENTATIONS = {}
    df = run_metrics(run_id)
    overall = df[df["category"].isna()]
    rows = []
    for name in CAPTION_METRICS:
        match = overall[overall["name"].map(_norm_key) == _norm_key(name)]
        if match.empty:
            continue
        r = match.iloc[0]
        rows.append(
            {
                "metric": name,
                "value": r["value"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "implementation": IMPLEMENTATIONS.get(name, ""),
                "unavailable": r["unavailable"],
            }
        )
    others = overall[~overall["name"].map(_norm_key).isin({_norm_key(n) for n in CAPTION_METRICS})]
    for r in others.itertuples(index=False):
        rows.append(
            {
                "metric": r.name,
                "value": r.value,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "implementation": "degeneration indicators (mirada.metrics.degeneration)"
                if r.name
                in {
                    "distinct-1",
                    "distinct-2",
                    "verbatim_repeat_share",
                    "repeated_ngram_rate",
                    "degenerate_share",
                }
                else "",
                "unavailable": r.unavailable,
            }
        )
    return pd.DataFrame(
        rows, columns=["metric", "value", "ci_low", "ci_high", "implementation", "unavailable"]
    )


def caption_notes() -> dict[str, str]:
    """The CIDEr note and the tokenisation used (from the metrics layer, when installed)."""
    try:
        from mirada.metrics.captioning import CIDER_NOTE, TOKENIZATION
    except ImportError:  # metrics layer not installed
        return {
            "cider": "CIDEr-D uses this set's own IDF: not comparable with published COCO numbers.",
            "tokenization": "",
        }
    return {"cider": CIDER_NOTE, "tokenization": TOKENIZATION}


# ---------------------------------------------------------------------------------------------
# compare


def compare_metrics(run_ids: Sequence[int]) -> pd.DataFrame:
    """Overall metrics of several runs: run_id, model, metric, value, ci_low, ci_high."""
    frames = []
    for rid in run_ids:
        info = run_info(rid)
        if info is None:
            continue
        df = run_metrics(rid)
        df = df[df["category"].isna() & df["value"].notna()].copy()
        df["run_id"] = rid
        df["model"] = info["model"]
        df["run"] = f"#{rid} {short_model(info['model'])}"
        frames.append(df.rename(columns={"name": "metric"}))
    if not frames:
        return pd.DataFrame(
            columns=["run_id", "run", "model", "metric", "value", "ci_low", "ci_high"]
        )
    out = pd.concat(frames, ignore_index=True)
    return out[["run_id", "run", "model", "metric", "value", "ci_low", "ci_high"]]


def compare_categories(run_ids: Sequence[int], metric: str | None = None) -> pd.DataFrame:
    """Per-category values of several runs plus the difference to the first run.

    Columns: category, metric, run_id, run, value, difference (value - first run's value).
    """
    frames = []
    for rid in run_ids:
        info = run_info(rid)
        if info is None:
            continue
        df = category_metrics(rid)
        if metric is not None:
            df = df[df["metric"] == metric]
        df = df.assign(run_id=rid, run=f"#{rid} {short_model(info['model'])}")
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["category", "metric", "run_id", "run", "value", "difference"])
    out = pd.concat(frames, ignore_index=True)
    base = out[out["run_id"] == run_ids[0]].set_index(["category", "metric"])["value"]
    out["difference"] = [
        (v - base.get((c, m))) if base.get((c, m)) is not None and v is not None else None
        for c, m, v in zip(out["category"], out["metric"], out["value"], strict=True)
    ]
    return out[["category", "metric", "run_id", "run", "value", "difference"]]


def _per_item_outcomes(run_id: int) -> pd.DataFrame:
    """item_id -> correct (i2t R@1), category_correct, and per-image caption scores."""
    with read_session() as s:
        results = s.execute(
            select(ItemResult.item_id, ItemResult.correct, ItemResult.details).where(
                ItemResult.run_id == run_id
            )
        ).all()
        captions = s.execute(
            select(GeneratedCaption.item_id, GeneratedCaption.scores).where(
                GeneratedCaption.run_id == run_id
            )
        ).all()
    recs: dict[int, dict[str, Any]] = {}
    for item_id, correct, details in results:
        rec = recs.setdefault(item_id, {"item_id": item_id})
        rec["i2t_recall@1"] = None if correct is None else float(bool(correct))
        cc = (details or {}).get("category_correct")
        rec["category_accuracy"] = None if cc is None else float(bool(cc))
        zp = (details or {}).get("zeroshot_pred")
        rec["zeroshot_pred"] = zp
    for item_id, scores in captions:
        rec = recs.setdefault(item_id, {"item_id": item_id})
        for m in ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L"):
            rec[m] = score_value(scores, m)
    return pd.DataFrame(list(recs.values()))


def pairwise_significance(run_ids: Sequence[int]) -> pd.DataFrame:
    """Every pair of runs compared on per-item outcomes aligned by item id.

    Binary outcomes (i2t R@1 correctness, category accuracy) use McNemar exact + paired
    bootstrap CI (in points); per-image caption scores (CIDEr, BLEU-4, ...) the paired
    bootstrap. Columns: a, b, metric, difference, ci_low, ci_high, p_value, significant, n,
    test, sentence.
    """
    from mirada.metrics.stats import compare_runs

    infos = {rid: run_info(rid) for rid in run_ids}
    outcomes = {rid: _per_item_outcomes(rid) for rid in run_ids}
    rows = []
    ids = [r for r in run_ids if infos[r] is not None]
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            da, db = outcomes[a], outcomes[b]
            if da.empty or db.empty:
                continue
            joined = da.merge(db, on="item_id", suffixes=("_a", "_b"))
            la = f"#{a} {short_model(infos[a]['model'])}"  # type: ignore[index]
            lb = f"#{b} {short_model(infos[b]['model'])}"  # type: ignore[index]
            for metric in ("i2t_recall@1", "category_accuracy", "CIDEr", "BLEU-4"):
                ca, cb = f"{metric}_a", f"{metric}_b"
                if ca not in joined or cb not in joined:
                    continue
                pair = joined[[ca, cb]].dropna()
                if pair.empty:
                    continue
                binary = metric in ("i2t_recall@1", "category_accuracy")
                res = compare_runs(
                    pair[ca].to_numpy(dtype=float),
                    pair[cb].to_numpy(dtype=float),
                    metric=metric,
                    a_label=la,
                    b_label=lb,
                    binary=binary,
                )
                rows.append(
                    {
                        "a": la,
                        "b": lb,
                        "metric": metric,
                        "difference": res["difference"],
                        "ci_low": res["ci_low"],
                        "ci_high": res["ci_high"],
                        "p_value": res["p_value"],
                        "significant": res["significant"],
                        "n": res["n"],
                        "test": res["test"],
                        "sentence": res["sentence"],
                    }
                )
    return pd.DataFrame(
        rows,
        columns=[
            "a",
            "b",
            "metric",
            "difference",
            "ci_low",
            "ci_high",
            "p_value",
            "significant",
            "n",
            "test",
            "sentence",
        ],
    )


def disagreements(run_ids: Sequence[int], *, limit: int = 500) -> pd.DataFrame:
    """Images where the runs disagree on i2t R@1 correctness (or zero-shot prediction):
    filename, category and one correctness column per run."""
    frames = []
    labels = []
    for rid in run_ids:
        info = run_info(rid)
        if info is None:
            continue
        df = _per_item_outcomes(rid)
        if df.empty or "i2t_recall@1" not in df:
            continue
        label = f"#{rid} {short_model(info['model'])}"
        labels.append(label)
        frames.append(
            df[["item_id", "i2t_recall@1"]]
            .rename(columns={"i2t_recall@1": label})
            .set_index("item_id")
        )
    if len(frames) < 2:
        return pd.DataFrame(columns=["item_id", "filename", "category"])
    joined = pd.concat(frames, axis=1, join="inner")
    mask = joined.nunique(axis=1, dropna=True) > 1
    out = joined[mask].reset_index().rename(columns={"index": "item_id"})
    for col in labels:
        out[col] = out[col].map({1.0: "correct", 0.0: "wrong"})
    first = run_info(run_ids[0])
    if first is not None and not out.empty:
        items = _item_frame(first["dataset_id"])[["item_id", "filename", "category"]]
        out = items.merge(out, on="item_id", how="inner")
    return out.head(limit).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# hardware


def benchmark_timings() -> pd.DataFrame:
    """Benchmark measurements, one row per (run, op, batch size):

    run_id, model, host, worker, gpu, device, dtype, batch_size, op, latency_p50_ms,
    latency_p95_ms, throughput_per_s, peak_rss_mb, cuda_max_allocated_mb.
    """
    stmt = (
        select(
            Timing.run_id,
            Timing.name,
            Timing.value,
            Timing.batch_size,
            Run.model_id,
            Run.resolved_device,
            Run.device,
            Run.dtype,
            HardwareProfile.hostname,
            HardwareProfile.gpu_name,
            Worker.name,
        )
        .join(Run, Run.id == Timing.run_id)
        .outerjoin(HardwareProfile, HardwareProfile.id == Run.hardware_profile_id)
        .outerjoin(Worker, Worker.id == Run.worker_id)
        .where(Run.task == "benchmark", Run.status == "succeeded")
    )
    with read_session() as s:
        rows = s.execute(stmt).all()
    recs: dict[tuple[int, str, int | None], dict[str, Any]] = {}
    for run_id, name, value, bs, model, rdev, dev, dtype, host, gpu, worker in rows:
        m = TIMING_PATTERN.match(name)
        if not m:
            continue
        key = (run_id, m["op"], bs)
        rec = recs.setdefault(
            key,
            {
                "run_id": run_id,
                "model": model,
                "host": host or worker or "unknown",
                "worker": worker,
                "gpu": gpu,
                "device": rdev or dev,
                "dtype": dtype,
                "batch_size": bs,
                "op": m["op"],
            },
        )
        rec[m["stat"]] = value
    columns = [
        "run_id",
        "model",
        "host",
        "worker",
        "gpu",
        "device",
        "dtype",
        "batch_size",
        "op",
        "latency_p50_ms",
        "latency_p95_ms",
        "throughput_per_s",
        "peak_rss_mb",
        "cuda_max_allocated_mb",
    ]
    df = pd.DataFrame(list(recs.values()))
    for c in columns:
        if c not in df:
            df[c] = None
    return df[columns].sort_values(["model", "host", "op", "batch_size"]).reset_index(drop=True)


def load_times() -> pd.DataFrame:
    """Model load seconds of benchmark runs: run_id, model, host, device, dtype, load_s."""
    stmt = (
        select(
            Timing.run_id,
            Timing.value,
            Run.model_id,
            Run.resolved_device,
            Run.device,
            Run.dtype,
            HardwareProfile.hostname,
        )
        .join(Run, Run.id == Timing.run_id)
        .outerjoin(HardwareProfile, HardwareProfile.id == Run.hardware_profile_id)
        .where(Run.task == "benchmark", Run.status == "succeeded", Timing.name == "load_s")
    )
    with read_session() as s:
        rows = s.execute(stmt).all()
    return pd.DataFrame(
        [
            {
                "run_id": r[0],
                "model": r[2],
                "host": r[6] or "unknown",
                "device": r[3] or r[4],
                "dtype": r[5],
                "load_s": r[1],
            }
            for r in rows
        ],
        columns=["run_id", "model", "host", "device", "dtype", "load_s"],
    )


def hardware_profiles() -> pd.DataFrame:
    """HardwareProfile rows with the number of runs on each."""
    with read_session() as s:
        rows = s.scalars(select(HardwareProfile).order_by(HardwareProfile.id)).all()
        counts = dict(
            s.execute(
                select(Run.hardware_profile_id, func.count(Run.id)).group_by(
                    Run.hardware_profile_id
                )
            ).all()
        )
    return pd.DataFrame(
        [
            {
                "id": hp.id,
                "host": hp.hostname,
                "os": hp.os,
                "cpu": hp.cpu_model,
                "cores": hp.cpu_cores,
                "ram_gb": round(hp.ram_bytes / 2**30, 1),
                "gpu": hp.gpu_name,
                "gpu_memory_gb": round(hp.gpu_memory_bytes / 2**30, 1)
                if hp.gpu_memory_bytes
                else None,
                "python": hp.python_version,
                "torch": hp.torch_version,
                "cuda": hp.cuda_version,
                "transformers": hp.transformers_version,
                "open_clip": hp.open_clip_version,
                "runs": int(counts.get(hp.id, 0)),
            }
            for hp in rows
        ],
        columns=[
            "id",
            "host",
            "os",
            "cpu",
            "cores",
            "ram_gb",
            "gpu",
            "gpu_memory_gb",
            "python",
            "torch",
            "cuda",
            "transformers",
            "open_clip",
            "runs",
        ],
    )
