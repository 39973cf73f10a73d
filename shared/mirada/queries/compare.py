"""Read models of the Compare page: several runs of one dataset side by side.

Pairwise significance goes through the one aligner in `mirada.metrics.report`
(`compare_match_runs` / `compare_caption_runs`): per-item values keyed by item id, items in
both runs only, and a missing per-image score is an error. Such an error is reported as a row
with `problem` set, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import GeneratedCaption, ItemResult
from mirada.errors import MiradaError
from mirada.metrics import names
from mirada.metrics.names import metric_name
from mirada.metrics.report import compare_caption_runs, compare_match_runs
from mirada.queries.common import RunInfo, item_frame, run_info
from mirada.queries.results import category_metrics, run_metrics

METRIC_COLUMNS = ["run_id", "run", "model", "metric", "label", "value", "ci_low", "ci_high"]
CATEGORY_COLUMNS = ["category", "metric", "label", "run_id", "run", "value", "difference"]
SIGNIFICANCE_COLUMNS = [
    "a",
    "b",
    "metric",
    "label",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "significant",
    "n",
    "only_a",
    "only_b",
    "test",
    "sentence",
    "problem",
]
# Per-item outcomes compared pairwise: binary ones (McNemar) and per-image caption scores.
BINARY_METRICS: tuple[str, ...] = (names.i2t_recall(1), names.CATEGORY_ACCURACY)
SCORE_METRICS: tuple[str, ...] = (names.CIDER, names.BLEU_4)


def _runs(run_ids: Sequence[int]) -> list[RunInfo]:
    return [info for info in map(run_info, run_ids) if info is not None]


def compare_metrics(run_ids: Sequence[int]) -> pd.DataFrame:
    """Overall metrics with a value, of several runs. Columns: METRIC_COLUMNS (run is the
    run's chart label, metric the key, label the human name)."""
    frames = []
    for info in _runs(run_ids):
        df = run_metrics(info.id)
        df = df[df["category"].isna() & df["value"].notna()].copy()
        df["run_id"] = info.id
        df["model"] = info.model
        df["run"] = info.label
        frames.append(df.rename(columns={"name": "metric"}))
    if not frames:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    return pd.concat(frames, ignore_index=True)[METRIC_COLUMNS]


def compare_categories(run_ids: Sequence[int], metric: str | None = None) -> pd.DataFrame:
    """Per-category values of several runs plus the difference to the first run.

    Columns: category, metric, label, run_id, run, value, difference (value minus the first
    run's value for the same category and metric).
    """
    frames = []
    for info in _runs(run_ids):
        df = category_metrics(info.id)
        if metric is not None:
            df = df[df["metric"] == metric]
        frames.append(df.assign(run_id=info.id, run=info.label))
    if not frames:
        return pd.DataFrame(columns=CATEGORY_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    base = out[out["run_id"] == run_ids[0]].set_index(["category", "metric"])["value"]
    out["difference"] = [
        (v - base.get((c, m))) if base.get((c, m)) is not None and v is not None else None
        for c, m, v in zip(out["category"], out["metric"], out["value"], strict=True)
    ]
    return out[CATEGORY_COLUMNS]


@dataclass(frozen=True)
class ItemOutcomes:
    """Per-item values of one run keyed by item id, as the aligner takes them."""

    correct: dict[int, bool | None] = field(default_factory=dict)  # i2t R@1 per image
    # Category accuracy is defined on categorised images only; the others are not in it.
    category_correct: dict[int, bool] = field(default_factory=dict)
    # Per-image caption scores; NaN marks a missing one, which the aligner refuses.
    scores: dict[str, dict[int, float]] = field(default_factory=dict)

    def binary(self, metric: str) -> dict[int, bool | None]:
        return dict(self.correct) if metric == names.i2t_recall(1) else dict(self.category_correct)


def item_outcomes(run_id: int) -> ItemOutcomes:
    """The per-item outcomes a run stored (item results and generated-caption scores)."""
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
    out = ItemOutcomes()
    for item_id, correct, details in results:
        out.correct[item_id] = correct
        cc = (details or {}).get("category_correct")
        if cc is not None:
            out.category_correct[item_id] = bool(cc)
    for item_id, scores in captions:
        for m in SCORE_METRICS:
            value = (scores or {}).get(m)
            out.scores.setdefault(m, {})[item_id] = float("nan") if value is None else float(value)
    return out


def _compared_metrics(a: ItemOutcomes, b: ItemOutcomes) -> list[str]:
    """The per-item metrics both runs stored."""
    out = []
    if a.correct and b.correct:
        out.append(names.i2t_recall(1))
        if a.category_correct or b.category_correct:
            out.append(names.CATEGORY_ACCURACY)
    return out + [m for m in SCORE_METRICS if m in a.scores and m in b.scores]


def compare_pair(
    a: ItemOutcomes, b: ItemOutcomes, metric: str, *, a_label: str, b_label: str
) -> dict[str, Any]:
    """One metric of two runs through the aligner of `mirada.metrics.report`; raises its
    MiradaError when the runs share no items or a per-image value is missing."""
    if metric in SCORE_METRICS:
        return compare_caption_runs(
            a.scores[metric], b.scores[metric], metric=metric, a_label=a_label, b_label=b_label
        )
    av, bv = a.binary(metric), b.binary(metric)
    if any(av[i] is None or bv[i] is None for i in set(av) & set(bv)):
        raise MiradaError(f"per-image {metric} outcomes are missing for some items")
    return compare_match_runs(
        {k: bool(v) for k, v in av.items()},
        {k: bool(v) for k, v in bv.items()},
        metric=metric,
        a_label=a_label,
        b_label=b_label,
    )


def pairwise_significance(run_ids: Sequence[int]) -> pd.DataFrame:
    """Every pair of runs compared on per-item outcomes aligned by item id.

    Binary outcomes (i2t R@1 correctness, category accuracy) use McNemar exact with a paired
    bootstrap CI (in points); per-image caption scores (CIDEr, BLEU-4) the paired bootstrap.
    Columns: SIGNIFICANCE_COLUMNS; only_a / only_b count items one run has and the other not.
    A comparison the aligner refuses (missing per-image scores, no shared items) is a row with
    `problem` set and no numbers.
    """
    runs = _runs(run_ids)
    outcomes = {info.id: item_outcomes(info.id) for info in runs}
    numbers = SIGNIFICANCE_COLUMNS[4:-1]
    rows: list[dict[str, Any]] = []
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            oa, ob = outcomes[a.id], outcomes[b.id]
            for metric in _compared_metrics(oa, ob):
                row: dict[str, Any] = {
                    "a": a.label,
                    "b": b.label,
                    "metric": metric,
                    "label": metric_name(metric).label,
                    "problem": None,
                }
                try:
                    res = compare_pair(oa, ob, metric, a_label=a.label, b_label=b.label)
                except MiradaError as exc:
                    row["problem"] = str(exc)
                else:
                    row.update({k: res[k] for k in numbers})
                rows.append(row)
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


def disagreements(run_ids: Sequence[int], *, limit: int = 500) -> pd.DataFrame:
    """Images (in all the runs) where the runs disagree on i2t R@1 correctness.

    Columns: item_id, filename, category, then one column per run (its label) holding
    "correct" or "wrong".
    """
    frames = []
    labels = []
    runs = _runs(run_ids)
    for info in runs:
        correct = item_outcomes(info.id).correct
        if not correct:
            continue
        labels.append(info.label)
        frames.append(
            pd.Series(
                {k: np.nan if v is None else float(v) for k, v in correct.items()},
                name=info.label,
            )
        )
    if len(frames) < 2:
        return pd.DataFrame(columns=["item_id", "filename", "category"])
    joined = pd.concat(frames, axis=1, join="inner")
    mask = joined.nunique(axis=1, dropna=True) > 1
    out = joined[mask].rename_axis("item_id").reset_index()
    for col in labels:
        out[col] = out[col].map({1.0: "correct", 0.0: "wrong"})
    if not out.empty:
        items = item_frame(runs[0].dataset_id)[["item_id", "filename", "category"]]
        out = items.merge(out, on="item_id", how="inner")
    return out.head(limit).reset_index(drop=True)
