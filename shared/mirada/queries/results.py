"""Read models of the Results page: one run's metrics, per-image outcomes and drill-down.

Metric values are stored as fractions (0..1); the page formats them by their kind
(`mirada.metrics.names`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import Caption, GeneratedCaption, Image, Item, ItemResult, Metric, RunArtifact
from mirada.metrics.names import HEADLINE, as_number, chance_note, interval_label, metric_name
from mirada.metrics.probe import ITEM_KEYS as PROBE_ITEM_KEYS
from mirada.queries.common import caption_frame, item_frame, run_info
from mirada.queries.datasets import fetch_missing

METRIC_COLUMNS = ["name", "label", "category", "value", "ci_low", "ci_high", "unavailable"]
METRIC_COLUMNS += ["n", "interval", "chance", "note"]
HEADLINE_COLUMNS = ["name", "label", "help", "kind", "value", "ci_low", "ci_high"]
HEADLINE_COLUMNS += ["interval", "chance", "note"]
CATEGORY_COLUMNS = ["category", "metric", "label", "n", "value", "ci_low", "ci_high"]
CATEGORY_COLUMNS += ["interval", "chance", "note"]
ITEM_COLUMNS = [
    "item_id",
    "filename",
    "category",
    "correct",
    "rank",
    "score",
    "category_correct",
    "zeroshot_pred",
    "top1_caption",
    "true_caption",
]
RANKED_COLUMNS = ["rank", "caption", "score", "own caption"]


def run_metrics(run_id: int) -> pd.DataFrame:
    """Every metric row of a run, in stored order.

    Columns: name (the key), label, category (None = overall), value, ci_low, ci_high,
    unavailable (why the value is missing, or None), n (items or captions it counts),
    interval ("95% Wilson" / "95% bootstrap", None without a CI), chance (what a random model
    scores, where defined) and note ("within chance (25% for 4 classes)", why R@k is trivial,
    or None): see `mirada.metrics.names.chance_note`.
    """
    with read_session() as s:
        rows = s.scalars(select(Metric).where(Metric.run_id == run_id).order_by(Metric.id)).all()
    return pd.DataFrame(
        [
            {
                "name": m.name,
                "label": metric_name(m.name).label,
                "category": m.category,
                "value": m.value,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "unavailable": (m.details or {}).get("unavailable"),
                "n": (m.details or {}).get("n"),
                "interval": interval_label(m.details) if m.ci_low is not None else None,
                "chance": (m.details or {}).get("chance"),
                "note": chance_note(m.ci_low, m.ci_high, m.details),
            }
            for m in rows
        ],
        columns=METRIC_COLUMNS,
    )


def headline_metrics(run_id: int) -> pd.DataFrame:
    """The overall headline metrics the run has, in `names.HEADLINE` order.

    Columns: name, label, help (description and key), kind (a `MetricKind` value), value,
    ci_low, ci_high, interval, chance, note (as in `run_metrics`).
    """
    df = run_metrics(run_id)
    overall = df[df["category"].isna()].drop_duplicates("name").set_index("name")
    rows = []
    for key in HEADLINE:
        if key in overall.index:
            r = overall.loc[key]
            info = metric_name(key)
            rows.append(
                {
                    "name": key,
                    "label": info.label,
                    "help": info.help,
                    "kind": info.kind.value,
                    "value": r["value"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "interval": r["interval"],
                    "chance": r["chance"],
                    "note": r["note"],
                }
            )
    return pd.DataFrame(rows, columns=HEADLINE_COLUMNS)


def category_metrics(run_id: int) -> pd.DataFrame:
    """Per-category rows: CATEGORY_COLUMNS (category, metric (key), label, n (images), value,
    ci_low, ci_high, interval, chance, note as in `run_metrics`)."""
    df = run_metrics(run_id)
    per = df[df["category"].notna()].rename(columns={"name": "metric"})
    return per[CATEGORY_COLUMNS].reset_index(drop=True)


def sort_worst_first(df: pd.DataFrame) -> pd.DataFrame:
    """Incorrect first, then by rank descending (missing ranks last), then dataset order."""
    key = df.assign(
        _ok=df["correct"].fillna(True).astype(bool),
        _rank=pd.to_numeric(df["rank"], errors="coerce").fillna(-1),
    )
    by = ["_ok", "_rank"] + (["position"] if "position" in df.columns else [])
    asc = [True, False] + ([True] if "position" in df.columns else [])
    return key.sort_values(by, ascending=asc, kind="stable").drop(columns=["_ok", "_rank"])


def run_items(run_id: int) -> pd.DataFrame:
    """Per-image outcomes sorted worst first (incorrect first, then rank descending).

    Columns: item_id, filename, category, correct, rank (of the image's best own caption),
    score, category_correct, zeroshot_pred, top1_caption (the text the model ranked first),
    true_caption (the image's first reference caption).
    """
    info = run_info(run_id)
    if info is None:
        return pd.DataFrame(columns=ITEM_COLUMNS)
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
        return pd.DataFrame(columns=ITEM_COLUMNS)
    details = [r[4] or {} for r in rows]
    res = pd.DataFrame(
        {
            "item_id": [r[0] for r in rows],
            "correct": [r[1] for r in rows],
            "rank": [r[2] for r in rows],
            "score": [r[3] for r in rows],
            "category_correct": [d.get("category_correct") for d in details],
            "zeroshot_pred": [d.get("zeroshot_pred") for d in details],
            "_top1": [int(d["top"][0][0]) if d.get("top") else -1 for d in details],
        }
    )
    caps = caption_frame(info.dataset_id)
    texts = caps.set_index("caption_id")["text"]
    res["top1_caption"] = res.pop("_top1").map(texts)
    res["true_caption"] = res["item_id"].map(
        caps.drop_duplicates("item_id").set_index("item_id")["text"]
    )
    items = item_frame(info.dataset_id)[["item_id", "filename", "category", "position"]]
    df = sort_worst_first(items.merge(res, on="item_id", how="inner"))
    return df[ITEM_COLUMNS].reset_index(drop=True)


def hardest_items(
    run_id: int, *, category: str | None = None, limit: int | None = 24
) -> pd.DataFrame:
    """The images the model got wrong (image→text top-1 not one of their own captions),
    hardest first: the rank of their first own caption highest first, ties in dataset order;
    of one category when given, the first `limit` (None: all of them, so its length is how
    many are wrong). Columns: ITEM_COLUMNS."""
    items = run_items(run_id)
    if category is not None:
        items = items[items["category"] == category]
    wrong = items[items["correct"].eq(False)]  # None (no verdict stored) is not "wrong"
    ranked = wrong.assign(_rank=pd.to_numeric(wrong["rank"], errors="coerce"))
    ranked = ranked.sort_values("_rank", ascending=False, kind="stable", na_position="last")
    ranked = ranked.drop(columns="_rank")
    return (ranked if limit is None else ranked.head(limit)).reset_index(drop=True)


def zeroshot_confusion(run_id: int) -> pd.DataFrame | None:
    """The "zeroshot_confusion" artifact as long rows: true, predicted, count, share (of the
    true class's row); None when the run stored none."""
    with read_session() as s:
        blob = s.scalar(
            select(RunArtifact.data).where(
                RunArtifact.run_id == run_id, RunArtifact.name == "zeroshot_confusion"
            )
        )
    if blob is None:
        return None
    doc = json.loads(blob)
    return confusion_frame([str(x) for x in doc.get("labels", [])], doc.get("matrix", []))


CONFUSION_COLUMNS = ["true", "predicted", "count", "share"]


def confusion_frame(labels: list[str], matrix: Any) -> pd.DataFrame:
    """A confusion matrix (rows: true label) as long rows: true, predicted, count, and share
    of the true label's row (0 for an empty row)."""
    m = np.asarray(matrix, dtype=np.float64).reshape(len(labels), len(labels))
    totals = m.sum(axis=1, keepdims=True)
    share = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    return pd.DataFrame(
        [
            {"true": a, "predicted": b, "count": int(m[i, j]), "share": float(share[i, j])}
            for i, a in enumerate(labels)
            for j, b in enumerate(labels)
        ],
        columns=CONFUSION_COLUMNS,
    )


@dataclass(frozen=True)
class GeneratedCaptionView:
    text: str
    scores: dict[str, Any]
    flags: dict[str, Any]


@dataclass(frozen=True)
class ItemDrilldown:
    """One image of a run. `top` / `reranked` have columns RANKED_COLUMNS (rank, caption,
    score, own caption); `reranked` is None without ITM re-ranking, `generated` None unless
    the run generated captions."""

    item_id: int
    filename: str
    category: str | None
    sha256: str
    ext: str
    true_captions: list[str]
    correct: bool | None
    rank: int | None
    zeroshot_pred: str | None
    category_top1: str | None
    top: pd.DataFrame
    reranked: pd.DataFrame | None
    generated: GeneratedCaptionView | None
    # (class, cosine) best first, as the match run stored them; None for runs stored before
    zeroshot_scores: list[tuple[str, float]] | None = None
    # sigmoid-loss models (SigLIP): the model's own probability for the predicted class
    zeroshot_prob: float | None = None
    # probe/kNN metric key -> (out-of-fold predicted category, right?) for this image
    held_out: dict[str, tuple[str, bool]] = field(default_factory=dict)


def item_drilldown(run_id: int, item_id: int) -> ItemDrilldown | None:
    """One image of a run: file (fetched locally when missing), category, true captions, the
    top-5 (and re-ranked) captions with scores and whether each is the image's own, plus the
    generated caption of caption runs. None when the run or the item does not exist."""
    if run_info(run_id) is None:
        return None
    with read_session() as s:
        row = s.execute(
            select(Item.id, Item.filename, Item.category, Item.image_sha256, Image.ext)
            .join(Image, Image.sha256 == Item.image_sha256)
            .where(Item.id == item_id)
        ).first()
        if row is None:
            return None
        true_caps = s.scalars(
            select(Caption.text).where(Caption.item_id == item_id).order_by(Caption.position)
        ).all()
        result = s.scalars(
            select(ItemResult).where(ItemResult.run_id == run_id, ItemResult.item_id == item_id)
        ).first()
        generated = s.scalars(
            select(GeneratedCaption).where(
                GeneratedCaption.run_id == run_id, GeneratedCaption.item_id == item_id
            )
        ).first()
        details: dict[str, Any] = (result.details or {}) if result else {}
        wanted = {int(c) for key in ("top", "reranked") for c, _ in details.get(key, [])}
        captions = (
            s.execute(
                select(Caption.id, Caption.text, Caption.item_id).where(Caption.id.in_(wanted))
            ).all()
            if wanted
            else []
        )
    fetch_missing([(row[3], row[4])], thumbnails=False)  # after the session: it opens its own
    texts = {cid: text for cid, text, _ in captions}
    owners = {cid: owner for cid, _, owner in captions}

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
            columns=RANKED_COLUMNS,
        )

    return ItemDrilldown(
        item_id=row[0],
        filename=row[1],
        category=row[2],
        sha256=row[3],
        ext=row[4],
        true_captions=list(true_caps),
        correct=result.correct if result else None,
        rank=result.rank if result else None,
        zeroshot_pred=details.get("zeroshot_pred"),
        category_top1=details.get("category_top1"),
        top=ranked("top"),
        reranked=ranked("reranked") if details.get("reranked") else None,
        zeroshot_scores=(
            [(str(c), float(v)) for c, v in details["zeroshot_scores"]]
            if details.get("zeroshot_scores")
            else None
        ),
        generated=(
            GeneratedCaptionView(generated.text, generated.scores or {}, generated.flags or {})
            if generated
            else None
        ),
        zeroshot_prob=as_number(details.get("zeroshot_prob")),
        held_out={
            key: (str(details[pred]), bool(details.get(ok)))
            for key, (pred, ok) in PROBE_ITEM_KEYS.items()
            if details.get(pred) is not None
        },
    )
