"""Read models of the Compare page: several runs of one dataset side by side.

Pairwise significance goes through the one aligner in `mirada.metrics.report`
(`compare_match_runs` / `compare_caption_runs`): per-item values keyed by item id, items in
both runs only, and a missing per-image score is an error. Such an error is reported as a row
with `problem` set, never dropped. Which per-item value pairs up with which metric is one
table, PAIRED: every headline proportion of `names.HEADLINE` has an entry, and one that has no
per-item value to pair (text→image recall counts captions; balanced accuracy averages classes)
says why instead of giving a number (column `untested`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import GeneratedCaption, ItemResult, Metric
from mirada.errors import MiradaError
from mirada.metrics import names
from mirada.metrics.names import metric_name
from mirada.metrics.report import compare_caption_runs, compare_match_runs
from mirada.queries.common import NO_CATEGORY, RunInfo, caption_frame, item_frame, run_info
from mirada.queries.results import category_metrics, run_metrics

METRIC_COLUMNS = ["run_id", "run", "model", "metric", "label", "value", "ci_low", "ci_high"]
CATEGORY_COLUMNS = ["category", "metric", "label", "run_id", "run", "value", "difference"]
NUMBER_COLUMNS = [
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
]
SIGNIFICANCE_COLUMNS = ["a", "b", "metric", "label", *NUMBER_COLUMNS, "problem", "untested"]
DISAGREEMENT_COLUMNS = ["item_id", "filename", "category"]


@dataclass(frozen=True)
class ItemRow:
    """What one stored ItemResult of a match run offers for pairing."""

    rank: int | None  # of the image's best own caption among all captions
    details: Mapping[str, Any]  # ItemResult.details (mirada.results documents the keys)
    category: str | None  # the image's category in the dataset
    own: frozenset[int]  # the ids of the image's own (reference) captions


Reader = Callable[[ItemRow], float | None]  # None: the item is not counted by this metric


@dataclass(frozen=True)
class PairedMetric:
    """How a match metric is compared run against run: the per-item value it is the mean of.

    read: that value for one item (1.0/0.0 for a proportion), or None when runs store no such
    value; then `why_not` says why the page shows no test. binary: McNemar with a paired
    bootstrap CI (points); otherwise the paired bootstrap of the mean per-item value."""

    key: str
    read: Reader | None
    binary: bool = True
    why_not: str = ""


def _hit(value: bool | None) -> float | None:
    return None if value is None else float(bool(value))


def _recall(k: int) -> Reader:
    return lambda r: None if r.rank is None else float(r.rank <= k)


def _flag(detail: str) -> Reader:
    """A stored per-item correctness (`details[detail]`, True/False; None: not counted)."""
    return lambda r: _hit(r.details.get(detail))


def _zeroshot(r: ItemRow) -> float | None:
    predicted = r.details.get("zeroshot_pred")
    if predicted is None or r.category is None:
        return None
    return float(predicted == r.category)


def _reranked(k: int) -> Reader:
    """Correct when one of the image's own captions is among the first k after re-ranking
    (the ITM head re-orders the contrastive candidates: an own caption outside them misses)."""

    def read(r: ItemRow) -> float | None:
        order = r.details.get("reranked")
        if not order:
            return None
        return float(any(int(c) in r.own for c, _ in order[:k]))

    return read


def _mrr(r: ItemRow) -> float | None:
    return None if not r.rank else 1.0 / r.rank


T2I_WHY = (
    "not tested: text→image recall counts captions, and runs store no per-caption ranks to "
    "pair run against run"
)
BALANCED_WHY = (
    "not tested: a mean of per-class recalls, not a share of images, so McNemar's test on "
    "paired images does not apply; compare the zero-shot accuracy row"
)
# Every headline match metric with how it pairs up, in names.HEADLINE order.
PAIRED: dict[str, PairedMetric] = {
    m.key: m
    for m in (
        *(PairedMetric(names.i2t_recall(k), _recall(k)) for k in names.RECALL_KS),
        *(PairedMetric(names.t2i_recall(k), None, why_not=T2I_WHY) for k in names.RECALL_KS),
        PairedMetric(names.MRR, _mrr, binary=False),
        PairedMetric(names.CATEGORY_ACCURACY, _flag("category_correct")),
        PairedMetric(names.ZEROSHOT_ACCURACY, _zeroshot),
        PairedMetric(names.ZEROSHOT_BALANCED_ACCURACY, None, why_not=BALANCED_WHY),
        PairedMetric(names.PROBE_ACCURACY, _flag("probe_correct")),
        *(PairedMetric(names.knn_accuracy(k), _flag(f"knn{k}_correct")) for k in names.KNN_KS),
        *(PairedMetric(names.reranked(k), _reranked(k)) for k in names.RERANK_KS),
    )
}
# Per-image caption scores compared pairwise (paired bootstrap).
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


def item_rows(run_id: int) -> dict[int, ItemRow]:
    """The stored per-item results of a match run keyed by item id ({} for other runs)."""
    info = run_info(run_id)
    if info is None:
        return {}
    with read_session() as s:
        results = s.execute(
            select(ItemResult.item_id, ItemResult.rank, ItemResult.details).where(
                ItemResult.run_id == run_id
            )
        ).all()
    if not results:
        return {}
    items = item_frame(info.dataset_id).set_index("item_id")["category"]
    caps = caption_frame(info.dataset_id)
    owned: dict[int, set[int]] = {}
    for caption_id, owner in zip(caps["caption_id"], caps["item_id"], strict=True):
        owned.setdefault(int(owner), set()).add(int(caption_id))
    own = {i: frozenset(ids) for i, ids in owned.items()}
    out = {}
    for item_id, rank, details in results:
        category = items.get(item_id)
        out[int(item_id)] = ItemRow(
            rank=None if rank is None else int(rank),
            details=details or {},
            category=None if category in (None, NO_CATEGORY) else str(category),
            own=own.get(int(item_id), frozenset()),
        )
    return out


def per_item(rows: Mapping[int, ItemRow], metric: str) -> dict[int, float]:
    """{item id: value} of one PAIRED metric, the items it does not count left out; {} when
    the run stored no per-item value for it (older runs, or a metric without a reader)."""
    read = PAIRED[metric].read
    if read is None:
        return {}
    values = {item_id: read(row) for item_id, row in rows.items()}
    return {k: v for k, v in values.items() if v is not None}


def caption_scores(run_id: int) -> dict[str, dict[int, float]]:
    """{metric: {item id: per-image score}} for SCORE_METRICS; NaN marks a missing score,
    which the aligner refuses."""
    with read_session() as s:
        captions = s.execute(
            select(GeneratedCaption.item_id, GeneratedCaption.scores).where(
                GeneratedCaption.run_id == run_id
            )
        ).all()
    out: dict[str, dict[int, float]] = {}
    for item_id, scores in captions:
        for m in SCORE_METRICS:
            value = (scores or {}).get(m)
            out.setdefault(m, {})[item_id] = float("nan") if value is None else float(value)
    return out


def _stored_keys(run_id: int) -> set[str]:
    """The overall metric keys a run stored with a value."""
    with read_session() as s:
        found = s.scalars(
            select(Metric.name).where(
                Metric.run_id == run_id, Metric.category.is_(None), Metric.value.is_not(None)
            )
        ).all()
    return set(found)


@dataclass(frozen=True)
class _RunValues:
    info: RunInfo
    stored: set[str]
    items: dict[int, ItemRow]
    scores: dict[str, dict[int, float]]


def _pair_row(a: _RunValues, b: _RunValues, metric: str) -> dict[str, Any]:
    """One metric of two runs: the aligner's numbers, or why there are none."""
    row: dict[str, Any] = {
        "a": a.info.label,
        "b": b.info.label,
        "metric": metric,
        "label": metric_name(metric).label,
        "problem": None,
        "untested": None,
    }
    a_label, b_label = a.info.label, b.info.label
    if metric in SCORE_METRICS:
        try:
            res = compare_caption_runs(
                a.scores[metric], b.scores[metric], metric=metric, a_label=a_label, b_label=b_label
            )
        except MiradaError as exc:
            row["problem"] = str(exc)
            return row
        return {**row, **{k: res[k] for k in NUMBER_COLUMNS}}
    paired = PAIRED[metric]
    missing = [v.info.label for v in (a, b) if metric not in v.stored]
    if missing:
        row["untested"] = f"not computed for run {' and '.join(missing)}"
        return row
    if paired.read is None:
        row["untested"] = paired.why_not
        return row
    av, bv = per_item(a.items, metric), per_item(b.items, metric)
    absent = [v.info.label for v, vals in ((a, av), (b, bv)) if not vals]
    if absent:  # the metric is stored, its per-item values are not (runs before they were)
        row["untested"] = f"per-image values not computed for run {' and '.join(absent)}"
        return row
    try:  # the aligner pairs items by id and reports the ones only one run counts
        if paired.binary:
            res = compare_match_runs(
                {k: bool(v) for k, v in av.items()},
                {k: bool(v) for k, v in bv.items()},
                metric=metric,
                a_label=a_label,
                b_label=b_label,
            )
        else:  # MRR: the paired bootstrap of the mean per-image value, as for caption scores
            res = compare_caption_runs(av, bv, metric=metric, a_label=a_label, b_label=b_label)
    except MiradaError as exc:
        row["problem"] = str(exc)
        return row
    return {**row, **{k: res[k] for k in NUMBER_COLUMNS}}


def _compared_metrics(a: _RunValues, b: _RunValues) -> list[str]:
    """The PAIRED metrics either run stored (in names.HEADLINE order), then the caption
    scores both runs stored per image."""
    either = a.stored | b.stored
    out = [m for m in PAIRED if m in either]
    return out + [m for m in SCORE_METRICS if m in a.scores and m in b.scores]


def pairwise_significance(run_ids: Sequence[int]) -> pd.DataFrame:
    """Every pair of runs compared on per-item outcomes aligned by item id.

    Match runs: every metric of PAIRED either run stored; proportions use McNemar exact with a
    paired bootstrap CI (in points), MRR the paired bootstrap of its per-image reciprocal
    ranks. Caption runs: per-image CIDEr and BLEU-4, paired bootstrap.
    Columns: SIGNIFICANCE_COLUMNS; only_a / only_b count items one run counts and the other
    not. A comparison the aligner refuses (missing per-image scores, no shared items) is a row
    with `problem` set and no numbers; one with no test to run (a run lacks the metric or its
    per-image values, or the metric has none: PairedMetric.why_not) has `untested` set.
    """
    values = [
        _RunValues(info, _stored_keys(info.id), item_rows(info.id), caption_scores(info.id))
        for info in _runs(run_ids)
    ]
    rows: list[dict[str, Any]] = []
    for i, earlier in enumerate(values):
        for later in values[i + 1 :]:
            # later minus earlier (the reference is first): the sign the per-category
            # difference chart plots, "other run minus reference"
            rows.extend(
                _pair_row(later, earlier, metric) for metric in _compared_metrics(later, earlier)
            )
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
        correct = per_item(item_rows(info.id), names.i2t_recall(1))
        if not correct:
            continue
        labels.append(info.label)
        frames.append(pd.Series(correct, name=info.label, dtype=np.float64))
    if len(frames) < 2:
        return pd.DataFrame(columns=DISAGREEMENT_COLUMNS)
    joined = pd.concat(frames, axis=1, join="inner")
    mask = joined.nunique(axis=1, dropna=True) > 1
    out = joined[mask].rename_axis("item_id").reset_index()
    for col in labels:
        out[col] = out[col].map({1.0: "correct", 0.0: "wrong"})
    if not out.empty:
        items = item_frame(runs[0].dataset_id)[DISAGREEMENT_COLUMNS]
        out = items.merge(out, on="item_id", how="inner")
    return out.head(limit).reset_index(drop=True)
