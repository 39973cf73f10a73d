"""What a finished run produces, and the one function that stores it.

Results are written only by `write_results`, called by `mirada.queue.finish_run` inside the
transaction that marks the run succeeded, so a crashed or cancelled run never shows half
results.

Storage contract (the dashboard and `mirada show` read these names):
- Metric rows: overall rows have category None; per-category rows repeat the metric name
  with the category set. Accuracies carry ci_low/ci_high (95% bootstrap over images).
  Unavailable metrics (METEOR without Java) have value None and details {"unavailable": why}.
- ItemResult.details for match runs: {"top": [[caption_id, score], ...] (top-5),
  "reranked": [[caption_id, itm_prob], ...] (BLIP ITM only), "category_correct": bool,
  "zeroshot_pred": str | None, "category_top1": str | None, "zeroshot_scores":
  [[class, cosine], ...] best first (at most report.ZEROSHOT_TOP_CLASSES; when zero-shot ran),
  "probe_pred": str, "probe_correct": bool, "knn<k>_pred": str, "knn<k>_correct": bool (k in
  names.KNN_KS): the out-of-fold prediction of the linear probe / kNN and whether it was right,
  present only for categorised images the probe kept (mirada.metrics.probe)}.
- Probe metrics (match runs on datasets with categories, mirada.metrics.probe):
  probe_accuracy and knn<k>_accuracy overall rows with a Wilson CI and details n, folds,
  per_fold (accuracies), chosen_c (the probe's C per fold), seed, categories, skipped
  (messages), chance (majority share), uniform_chance (1/K); per-category rows hold each
  category's recall. With fewer than 2 categories of 2+ images: value None and
  details {"unavailable": why}.
- GeneratedCaption.scores: per-image BLEU-1..4, METEOR, ROUGE-L, CIDEr, and CLIPScore /
  RefCLIPScore (None without references) for runs queued with --clipscore-model;
  flags: {"repeated_ngram_rate": float, "verbatim_repeat": bool, "degenerate": bool,
  "reasons": [str]}.
- Timings: name, value, unit, batch_size (benchmark runs sweep batch sizes).
- RunEmbedding kinds "image" (row ids = item ids) and "text" (row ids = caption ids).
- RunArtifact names: "zeroshot_confusion" (JSON {"labels": [...], "matrix": [[...]]}),
  "caption_corpus" (JSON), "probe" (match runs with categories, JSON: seed, max_folds, folds,
  c_grid, validation_fraction, chosen_c per fold, labels, sizes {category: images}, methods
  {metric key: {n, correct, per_fold, matrix (rows true, columns predicted, in labels order),
  recall {category: share}, messages}}, skipped (messages), reason (why there is no figure, or
  null); mirada.metrics.probe.PROBE_ARTIFACT), "projection:<method>:<kind>" (npy float32 [N,2]),
  VARIANTS_ARTIFACT (benchmark runs: JSON list, one object per measured configuration, see
  mirada.benchmark_records.VariantRecord), MEASUREMENT_ARTIFACT (benchmark runs: JSON object,
  the conditions of the measurement, mirada.benchmark_records.Measurement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from mirada.db.models import (
    GeneratedCaption,
    ItemResult,
    Metric,
    RunArtifact,
    RunEmbedding,
    Timing,
)
from mirada.metrics.types import CaptionOutcome, ItemOutcome, MetricValue

__all__ = [
    "MEASUREMENT_ARTIFACT",
    "VARIANTS_ARTIFACT",
    "CaptionOutcome",
    "EmbeddingSet",
    "ItemOutcome",
    "MetricValue",
    "RunResults",
    "TimingValue",
    "write_results",
]

_ROWS_PER_INSERT = 1000
VARIANTS_ARTIFACT = "variants"
MEASUREMENT_ARTIFACT = "measurement"


@dataclass(frozen=True)
class TimingValue:
    name: str
    value: float
    unit: str
    batch_size: int | None = None


@dataclass(frozen=True)
class EmbeddingSet:
    kind: str  # "image" | "text"
    row_ids: np.ndarray  # int64 [N]
    vectors: np.ndarray  # float32 [N, D]


@dataclass
class RunResults:
    metrics: list[MetricValue] = field(default_factory=list)
    items: Sequence[ItemOutcome] = field(default_factory=list)  # sliced in chunks when written
    captions: Sequence[CaptionOutcome] = field(default_factory=list)
    timings: list[TimingValue] = field(default_factory=list)
    embeddings: list[EmbeddingSet] = field(default_factory=list)
    artifacts: dict[str, tuple[str, bytes]] = field(default_factory=dict)


def _float(x: float | None) -> float | None:
    # NaN is not JSON and PostgreSQL sorts it oddly; store it as "no value".
    if x is None:
        return None
    x = float(x)
    return None if np.isnan(x) else x


def write_results(session: Session, run_id: int, results: RunResults) -> None:
    """Replace any earlier results of `run_id` with `results` (within the caller's transaction)."""
    for model in (Metric, Timing, ItemResult, GeneratedCaption, RunEmbedding, RunArtifact):
        session.execute(delete(model).where(model.run_id == run_id))
    session.add_all(
        Metric(
            run_id=run_id,
            name=m.name,
            value=_float(m.value),
            category=m.category,
            ci_low=_float(m.ci_low),
            ci_high=_float(m.ci_high),
            details=m.details,
        )
        for m in results.metrics
    )
    session.add_all(
        Timing(run_id=run_id, name=t.name, value=t.value, unit=t.unit, batch_size=t.batch_size)
        for t in results.timings
    )
    # Per-item rows go as bulk INSERTs a chunk at a time: no ORM object per row, so memory stays
    # flat however many items a run (or an imported bundle) has (issue 22 §3).
    for start in range(0, len(results.items), _ROWS_PER_INSERT):
        session.execute(
            insert(ItemResult),
            [
                {
                    "run_id": run_id,
                    "item_id": i.item_id,
                    "correct": i.correct,
                    "rank": i.rank,
                    "score": _float(i.score),
                    "details": i.details,
                }
                for i in results.items[start : start + _ROWS_PER_INSERT]
            ],
        )
    for start in range(0, len(results.captions), _ROWS_PER_INSERT):
        session.execute(
            insert(GeneratedCaption),
            [
                {
                    "run_id": run_id,
                    "item_id": c.item_id,
                    "text": c.text,
                    "scores": c.scores,
                    "flags": c.flags,
                }
                for c in results.captions[start : start + _ROWS_PER_INSERT]
            ],
        )
    for e in results.embeddings:
        vectors = np.ascontiguousarray(e.vectors, dtype=np.float32)
        session.add(
            RunEmbedding(
                run_id=run_id,
                kind=e.kind,
                count=int(vectors.shape[0]),
                dim=int(vectors.shape[1]),
                data=vectors.tobytes(),
                row_ids=np.ascontiguousarray(e.row_ids, dtype=np.int64).tobytes(),
            )
        )
    session.add_all(
        RunArtifact(run_id=run_id, name=name, content_type=ctype, data=data)
        for name, (ctype, data) in results.artifacts.items()
    )
