"""Read model of the Results page's Probe tab: the linear probe and kNN of one match run.

Reads the run's probe metric rows (overall and per category) and its PROBE_ARTIFACT
(mirada.metrics.probe; the storage contract is in mirada.results) into typed values, and the
images behind each wrong out-of-fold prediction. Values stay fractions; pages format them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import ItemResult, Metric, RunArtifact
from mirada.metrics.names import (
    PROBE_ACCURACY,
    as_number,
    chance_note,
    interval_label,
    metric_name,
)
from mirada.metrics.probe import ITEM_KEYS, PROBE_ARTIFACT
from mirada.queries.common import item_frame, run_info
from mirada.queries.results import confusion_frame

RECALL_COLUMNS = ["category", "metric", "label", "n", "value", "ci_low", "ci_high", "interval"]
RECALL_COLUMNS += ["chance", "note"]
FOLD_COLUMNS = ["fold", "metric", "label", "accuracy", "chosen_c"]
MISTAKE_COLUMNS = ["item_id", "filename", "category", "predicted"]


@dataclass(frozen=True)
class ProbeFigure:
    """One classifier's overall figure (probe or kNN at one k)."""

    key: str  # metric key
    label: str
    value: float | None  # None with `unavailable`
    ci_low: float | None
    ci_high: float | None
    interval: str | None  # "95% Wilson"
    n: int  # images predicted out of fold
    correct: int
    note: str | None  # "within chance (25% ...)", see names.chance_note
    unavailable: str | None  # why there is no figure
    messages: tuple[str, ...]  # k capped, C fallbacks, lbfgs not converging


@dataclass(frozen=True)
class ProbeView:
    """Everything the Probe tab shows. Chance: `majority_share` is what a classifier that
    learnt only the category frequencies scores (always predicting the largest one, stored as the
    metrics' chance); `uniform_chance` is 1/K, a uniform guess."""

    figures: tuple[ProbeFigure, ...]  # the probe first, then kNN by k
    folds: int | None
    seed: int
    c_grid: tuple[float, ...]
    validation_fraction: float
    labels: tuple[str, ...]  # the categories the probe kept, sorted
    sizes: dict[str, int]  # images per kept category
    majority_category: str | None
    majority_share: float | None
    uniform_chance: float | None
    skipped: tuple[str, ...]  # "fewer than 2 images in 'x': probe skipped"
    reason: str | None  # why there is no figure at all
    per_fold: pd.DataFrame  # FOLD_COLUMNS: accuracy per fold and classifier, the probe's C
    recall: pd.DataFrame  # RECALL_COLUMNS: per-category recall, Wilson interval, 1/K chance
    confusion: dict[str, pd.DataFrame]  # metric key -> CONFUSION_COLUMNS (rows: true category)


def probe_view(run_id: int) -> ProbeView | None:
    """The run's probe and kNN, or None when it stored none (no categories, an older run)."""
    with read_session() as s:
        blob = s.scalar(
            select(RunArtifact.data).where(
                RunArtifact.run_id == run_id, RunArtifact.name == PROBE_ARTIFACT
            )
        )
        rows = s.scalars(
            select(Metric)
            .where(Metric.run_id == run_id, Metric.name.in_(list(ITEM_KEYS)))
            .order_by(Metric.id)
        ).all()
    if blob is None:
        return None
    doc = json.loads(blob)
    labels = [str(x) for x in doc.get("labels", [])]
    methods: dict[str, Any] = doc.get("methods", {})
    overall = {m.name: m for m in rows if m.category is None}
    figures = []
    for key in ITEM_KEYS:
        m = overall.get(key)
        if m is None:
            continue
        info = m.details or {}
        stored = methods.get(key, {})
        figures.append(
            ProbeFigure(
                key=key,
                label=metric_name(key).label,
                value=as_number(m.value),
                ci_low=as_number(m.ci_low),
                ci_high=as_number(m.ci_high),
                interval=interval_label(info) if m.ci_low is not None else None,
                n=int(stored.get("n", info.get("n") or 0)),
                correct=int(stored.get("correct", 0)),
                note=chance_note(m.ci_low, m.ci_high, info),
                unavailable=info.get("unavailable"),
                messages=tuple(str(x) for x in stored.get("messages", [])),
            )
        )
    chosen = [float(c) for c in doc.get("chosen_c", [])]
    folds = [
        {
            "fold": f + 1,
            "metric": key,
            "label": metric_name(key).label,
            "accuracy": float(acc),
            "chosen_c": chosen[f] if key == PROBE_ACCURACY and f < len(chosen) else None,
        }
        for key in ITEM_KEYS
        for f, acc in enumerate(methods.get(key, {}).get("per_fold", []))
    ]
    recall = [
        {
            "category": m.category,
            "metric": m.name,
            "label": metric_name(m.name).label,
            "n": (m.details or {}).get("n"),
            "value": as_number(m.value),
            "ci_low": as_number(m.ci_low),
            "ci_high": as_number(m.ci_high),
            "interval": interval_label(m.details) if m.ci_low is not None else None,
            "chance": (m.details or {}).get("chance"),
            "note": chance_note(m.ci_low, m.ci_high, m.details),
        }
        for m in rows
        if m.category is not None
    ]
    sizes = {str(k): int(v) for k, v in doc.get("sizes", {}).items()}
    total = sum(sizes.values())
    largest = max(sorted(sizes), key=sizes.__getitem__) if sizes else None  # ties: first name
    has_figure = doc.get("reason") is None and total > 0
    return ProbeView(
        figures=tuple(figures),
        folds=doc.get("folds"),
        seed=int(doc.get("seed", 0)),
        c_grid=tuple(float(c) for c in doc.get("c_grid", [])),
        validation_fraction=float(doc.get("validation_fraction", 0.0)),
        labels=tuple(labels),
        sizes=sizes,
        majority_category=largest if has_figure else None,
        majority_share=sizes[largest] / total if has_figure and largest else None,
        uniform_chance=1.0 / len(labels) if has_figure and labels else None,
        skipped=tuple(str(x) for x in doc.get("skipped", [])),
        reason=doc.get("reason"),
        per_fold=pd.DataFrame(folds, columns=FOLD_COLUMNS),
        recall=pd.DataFrame(recall, columns=RECALL_COLUMNS),
        confusion={key: confusion_frame(labels, m["matrix"]) for key, m in methods.items()},
    )


def probe_mistakes(
    run_id: int, key: str, *, true: str | None = None, predicted: str | None = None
) -> pd.DataFrame:
    """The images the classifier `key` (a metric key of ITEM_KEYS) predicted wrong out of
    fold, of one true and/or predicted category when given, in dataset order.
    Columns: MISTAKE_COLUMNS (category is the true one)."""
    if key not in ITEM_KEYS:
        raise ValueError(f"{key!r} is not a probe metric; one of: {', '.join(ITEM_KEYS)}")
    pred_key, ok_key = ITEM_KEYS[key]
    info = run_info(run_id)
    if info is None:
        return pd.DataFrame(columns=MISTAKE_COLUMNS)
    with read_session() as s:
        rows = s.execute(
            select(ItemResult.item_id, ItemResult.details).where(ItemResult.run_id == run_id)
        ).all()
    wrong = {
        int(item_id): str(d[pred_key])
        for item_id, d in rows
        if d and d.get(ok_key) is False and d.get(pred_key) is not None
    }
    items = item_frame(info.dataset_id)
    items = items[items["item_id"].isin(list(wrong))].copy()
    items["predicted"] = items["item_id"].map(wrong)
    if true is not None:
        items = items[items["category"] == true]
    if predicted is not None:
        items = items[items["predicted"] == predicted]
    return items[MISTAKE_COLUMNS].reset_index(drop=True)
