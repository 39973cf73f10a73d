"""Every metric and timing key Mirada stores, with its human label: one table for all readers.

The keys are the names the metric builders (`mirada.metrics.report`) and the worker's tasks
store and `mirada show --json` / `mirada export` print; they never change. The dashboard,
the Markdown export and the CLI show `label` (with the key beside it or in a tooltip), so one
metric is called the same everywhere.

Kinds say how a value reads:
- proportion: a fraction of items in 0..1 (shown in percent on the dashboard);
- mean: the mean of a per-item quantity that is not a fraction (MRR);
- score: a metric on its own scale (BLEU, METEOR, ROUGE-L, CIDEr, distinct-n);
- rank: a position in a ranking (1 = first);
- number, seconds, milliseconds, per_second, megabytes: what a benchmark or timing measured.

Per-category rows reuse the overall key (`i2t_recall@1` with a category).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mirada.domain import Task
from mirada.metrics.types import IntervalMethod


class MetricKind(StrEnum):
    proportion = "proportion"
    mean = "mean"
    score = "score"
    rank = "rank"
    number = "number"  # of things (parameters, batches, embeddings)
    seconds = "seconds"
    milliseconds = "milliseconds"
    per_second = "per_second"
    megabytes = "megabytes"


@dataclass(frozen=True)
class MetricName:
    key: str  # as stored and printed in JSON
    label: str  # what people read
    description: str
    kind: MetricKind
    task: Task | None  # the task whose runs produce it (None: not in the table)

    @property
    def help(self) -> str:
        """Tooltip text: the description and the stored key."""
        return f"{self.description} Key: `{self.key}`."


RECALL_KS = (1, 5, 10)  # as mirada.metrics.retrieval.RECALL_KS (checked by a test)
RERANK_KS = (1, 5, 10)  # as mirada.metrics.rerank.RERANK_KS (checked by a test)
CAPTION_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
CLIPSCORE_METRICS = ("CLIPScore", "RefCLIPScore")  # as mirada.metrics.clipscore.METRIC_NAMES
DEGENERATION_METRICS = (
    "repeated_ngram_rate",
    "verbatim_repeat_share",
    "degenerate_share",
    "distinct-1",
    "distinct-2",
)


def _match(key: str, label: str, description: str, kind: MetricKind) -> MetricName:
    return MetricName(key, label, description, kind, Task.match)


def _caption(key: str, label: str, description: str, kind: MetricKind) -> MetricName:
    return MetricName(key, label, description, kind, Task.caption)


def _bench(key: str, label: str, description: str, kind: MetricKind) -> MetricName:
    return MetricName(key, label, description, kind, Task.benchmark)


P, M, S, R = MetricKind.proportion, MetricKind.mean, MetricKind.score, MetricKind.rank

_ROWS: list[MetricName] = [
    *(
        _match(
            f"i2t_recall@{k}",
            f"Image→text R@{k}",
            f"Share of images with one of their own captions among the top {k} captions.",
            P,
        )
        for k in RECALL_KS
    ),
    *(
        _match(
            f"t2i_recall@{k}",
            f"Text→image R@{k}",
            f"Share of captions whose image is among the top {k} images.",
            P,
        )
        for k in RECALL_KS
    ),
    _match("mrr", "MRR", "Mean reciprocal rank of each image's best own caption.", M),
    _match(
        "category_accuracy",
        "Category accuracy",
        "Share of categorised images whose top-1 caption belongs to an image of the same category.",
        P,
    ),
    _match(
        "zeroshot_accuracy",
        "Zero-shot accuracy",
        "Share of categorised images whose category is predicted from prompts of the class names.",
        P,
    ),
    _match(
        "zeroshot_balanced_accuracy",
        "Zero-shot balanced acc.",
        "Zero-shot accuracy averaged over classes (mean per-class recall).",
        P,
    ),
    *(
        _match(
            f"i2t_recall@{k}_reranked",
            f"Re-ranked R@{k} (ITM)",
            f"Image→text R@{k} after re-ranking the contrastive candidates with the "
            "image-text matching head.",
            P,
        )
        for k in RERANK_KS
    ),
    _match("i2t_median_rank", "Image→text median rank", "Median rank of the best own caption.", R),
    _match("i2t_mean_rank", "Image→text mean rank", "Mean rank of the best own caption.", R),
    _match("t2i_median_rank", "Text→image median rank", "Median rank of each caption's image.", R),
    _match("t2i_mean_rank", "Text→image mean rank", "Mean rank of each caption's image.", R),
    *(
        _caption(
            f"BLEU-{n}",
            f"BLEU-{n}",
            f"Corpus BLEU with up to {n}-grams (pycocoevalcap, closest reference length).",
            S,
        )
        for n in (1, 2, 3, 4)
    ),
    _caption("METEOR", "METEOR", "METEOR 1.5 (Java) via pycocoevalcap.", S),
    _caption("ROUGE-L", "ROUGE-L", "Longest-common-subsequence F-score (beta 1.2).", S),
    _caption(
        "CIDEr",
        "CIDEr",
        "CIDEr-D with the IDF of this set's own references (comparable only on the same set).",
        S,
    ),
    _caption(
        "CLIPScore",
        "CLIPScore",
        "Mean of 2.5 × max(cosine(image, generated caption), 0) under the run's "
        "--clipscore-model (Hessel et al. 2021); reference-free.",
        S,
    ),
    _caption(
        "RefCLIPScore",
        "RefCLIPScore",
        "Mean of the harmonic mean of CLIPScore and the best cosine(generated caption, "
        "reference) clipped at 0 (Hessel et al. 2021).",
        S,
    ),
    _caption(
        "repeated_ngram_rate",
        "Repeated n-gram rate",
        "Mean share of repeated content words and bigrams within a generated caption.",
        P,
    ),
    _caption(
        "verbatim_repeat_share",
        "Verbatim repeats",
        "Share of generated captions that repeat another image's caption word for word.",
        P,
    ),
    _caption(
        "degenerate_share",
        "Degenerate captions",
        "Share of generated captions flagged degenerate (repetition loops or generic).",
        P,
    ),
    _caption("distinct-1", "Distinct-1", "Distinct words / all words over the run.", S),
    _caption("distinct-2", "Distinct-2", "Distinct bigrams / all bigrams over the run.", S),
    _bench("num_params", "Parameters", "Number of model parameters.", MetricKind.number),
    _bench("warmup_batches", "Warm-up batches", "Batches run before timing.", MetricKind.number),
    _bench("timed_batches", "Timed batches", "Batches timed per measurement.", MetricKind.number),
]
del P, M, S, R

METRICS: dict[str, MetricName] = {m.key: m for m in _ROWS}

# The match metrics shown as headline cards on the Results page, in display order.
HEADLINE: tuple[str, ...] = (
    *(f"i2t_recall@{k}" for k in RECALL_KS),
    *(f"t2i_recall@{k}" for k in RECALL_KS),
    "mrr",
    "category_accuracy",
    "zeroshot_accuracy",
    "zeroshot_balanced_accuracy",
    *(f"i2t_recall@{k}_reranked" for k in RERANK_KS),
)

# Timings (stored in the timings table, not as metrics). Benchmark runs store
# `<op>_<stat>` per batch size; match and caption runs store throughput and cache counts.
OPERATIONS: dict[str, str] = {
    "image_encode": "Image encode",
    "text_encode": "Text encode",
    "caption": "Caption",
}
TIMING_STATS: dict[str, tuple[str, str, MetricKind]] = {
    "latency_p50_ms": ("latency p50", "Median time per item (ms).", MetricKind.milliseconds),
    "latency_p95_ms": (
        "latency p95",
        "95th-percentile time per item (ms).",
        MetricKind.milliseconds,
    ),
    "throughput_per_s": (
        "throughput",
        "Items per second at this batch size.",
        MetricKind.per_second,
    ),
    "peak_rss_mb": ("peak RSS", "Peak resident memory of the worker (MB).", MetricKind.megabytes),
    "cuda_max_allocated_mb": (
        "CUDA max allocated",
        "Peak CUDA memory allocated (MB).",
        MetricKind.megabytes,
    ),
    "per_s": ("items/s", "Items per second over the whole run.", MetricKind.per_second),
    "computed": ("computed", "Embeddings computed by the model.", MetricKind.number),
    "cached": ("cached", "Embeddings read from the embedding cache.", MetricKind.number),
}
# The per-batch-size measurements of benchmark runs (columns of the Hardware page).
BENCHMARK_STATS: tuple[str, ...] = (
    "latency_p50_ms",
    "latency_p95_ms",
    "throughput_per_s",
    "peak_rss_mb",
    "cuda_max_allocated_mb",
)
TIMING_PATTERN = re.compile(rf"^(?P<op>{'|'.join(OPERATIONS)})_(?P<stat>{'|'.join(TIMING_STATS)})$")
LOAD_SECONDS = MetricName(
    "load_s", "Model load time", "Seconds to load the model.", MetricKind.seconds, Task.benchmark
)


def metric_name(key: str) -> MetricName:
    """The table entry for `key`; an unknown key (say, from a newer version) reads as itself."""
    found = METRICS.get(key)
    if found is not None:
        return found
    return MetricName(key, key, "", MetricKind.score, None)


def label(key: str) -> str:
    """The human label of a metric or timing key (the key itself when it is not known)."""
    if key in METRICS:
        return METRICS[key].label
    return timing_name(key).label


def timing_name(key: str) -> MetricName:
    """The table entry for a timing key (`image_encode_latency_p50_ms`, `load_s`, ...)."""
    if key == LOAD_SECONDS.key:
        return LOAD_SECONDS
    m = TIMING_PATTERN.match(key)
    if m is None:
        return MetricName(key, key, "", MetricKind.score, None)
    stat_label, description, kind = TIMING_STATS[m["stat"]]
    return MetricName(key, f"{OPERATIONS[m['op']]} {stat_label}", description, kind, Task.benchmark)


# ---------------------------------------------------------------------------------------------
# how to read a stored interval (details written by mirada.metrics.report)


def interval_name(details: Mapping[str, Any] | None) -> str:
    """'Wilson' or 'bootstrap': the interval method stored in a metric's details.

    Rows stored before the method was recorded were all percentile bootstrap intervals.
    """
    raw = (details or {}).get("interval_method") or IntervalMethod.bootstrap.value
    try:
        return IntervalMethod(raw).label
    except ValueError:
        return str(raw)


def interval_label(details: Mapping[str, Any] | None, confidence: float = 0.95) -> str:
    """'95% Wilson' or '95% bootstrap', as the dashboard labels an interval."""
    return f"{confidence * 100:g}% {interval_name(details)}"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def chance_note(
    ci_low: float | None, ci_high: float | None, details: Mapping[str, Any] | None
) -> str | None:
    """What the chance level says about a score, or None when it says nothing.

    The metric's `trivial` reason when any model scores 100%; "within chance (25% for 4
    classes)" when the interval contains the chance level; "below chance (...)" when it lies
    entirely below it.
    """
    info = details or {}
    if info.get("trivial"):
        return str(info["trivial"])
    chance, lo, hi = _number(info.get("chance")), _number(ci_low), _number(ci_high)
    if chance is None or lo is None or hi is None:
        return None
    basis = f" {info['chance_basis']}" if info.get("chance_basis") else ""
    level = f"{chance * 100:.3g}%{basis}"
    if lo <= chance <= hi:
        return f"within chance ({level})"
    if hi < chance:
        return f"below chance ({level})"
    return None
