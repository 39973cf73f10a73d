"""Every metric and timing key Mirada stores, with its human label: one table for all readers.

The keys are the names the metric builders (`mirada.metrics.report`) and the worker's tasks
store and `mirada show --json` / `mirada export` print; they never change. The dashboard,
the Markdown export and the CLI show `label` (with the key beside it or in a tooltip), so one
metric is called the same everywhere. No other module spells a key: builders, queries, pages,
exports, the CLI and the worker use the constants and helpers below (`i2t_recall(k)`,
`reranked(k)`, `CAPTION_METRICS`, `metrics_of(task)`, `timing_key(op, stat)`), and
tests/test_metric_names.py scans the source for hand-typed keys. `mirada.metrics.formatting`
shows a value by its kind.

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


# ---------------------------------------------------------------------------------------------
# The keys: the only place a metric or timing key is spelled. Other modules use these.

RECALL_KS = (1, 5, 10)  # mirada.metrics.retrieval computes these
RERANK_KS = (1, 5, 10)  # mirada.metrics.rerank computes these (k permitting)


def i2t_recall(k: int) -> str:
    return f"i2t_recall@{k}"


def t2i_recall(k: int) -> str:
    return f"t2i_recall@{k}"


def reranked(k: int) -> str:
    """Image→text recall@k after ITM re-ranking."""
    return f"{i2t_recall(k)}_reranked"


def bleu(n: int) -> str:
    return f"BLEU-{n}"


def distinct(n: int) -> str:
    return f"distinct-{n}"


MRR = "mrr"
I2T_MEDIAN_RANK = "i2t_median_rank"
I2T_MEAN_RANK = "i2t_mean_rank"
T2I_MEDIAN_RANK = "t2i_median_rank"
T2I_MEAN_RANK = "t2i_mean_rank"
CATEGORY_ACCURACY = "category_accuracy"
ZEROSHOT_ACCURACY = "zeroshot_accuracy"
ZEROSHOT_BALANCED_ACCURACY = "zeroshot_balanced_accuracy"
# Models trained with a sigmoid loss only (SigLIP; mirada.vlm.base.SigmoidCalibrated): the
# model's own probability for its zero-shot class; per item, ItemResult.details["zeroshot_prob"].
ZEROSHOT_SIGMOID_PROB = "zeroshot_sigmoid_prob"
# Linear probe and kNN on the image embeddings, cross-validated over the dataset's categories
# (mirada.metrics.probe). Per item, ItemResult.details holds the out-of-fold prediction and
# whether it was right: "probe_pred"/"probe_correct", "knn<k>_pred"/"knn<k>_correct".
PROBE_ACCURACY = "probe_accuracy"
KNN_KS = (1, 5)


def knn_accuracy(k: int) -> str:
    return f"knn{k}_accuracy"


# What mirada.metrics.retrieval.metrics_from_ranks returns, in this order.
RETRIEVAL_METRICS: tuple[str, ...] = (
    *(i2t_recall(k) for k in RECALL_KS),
    *(t2i_recall(k) for k in RECALL_KS),
    MRR,
    I2T_MEDIAN_RANK,
    I2T_MEAN_RANK,
    T2I_MEDIAN_RANK,
    T2I_MEAN_RANK,
)

BLEU_4 = bleu(4)
METEOR = "METEOR"
ROUGE_L = "ROUGE-L"
CIDER = "CIDEr"
CAPTION_METRICS: tuple[str, ...] = (*(bleu(n) for n in (1, 2, 3, 4)), METEOR, ROUGE_L, CIDER)
CLIPSCORE = "CLIPScore"
REFCLIPSCORE = "RefCLIPScore"
CLIPSCORE_METRICS: tuple[str, ...] = (CLIPSCORE, REFCLIPSCORE)
REPEATED_NGRAM_RATE = "repeated_ngram_rate"  # also the per-caption flag of that name
VERBATIM_REPEAT_SHARE = "verbatim_repeat_share"
DEGENERATE_SHARE = "degenerate_share"
DEGENERATION_METRICS: tuple[str, ...] = (
    REPEATED_NGRAM_RATE,
    VERBATIM_REPEAT_SHARE,
    DEGENERATE_SHARE,
    distinct(1),
    distinct(2),
)
# The largest value a score can take on the scale Mirada stores (proportions are 0..1 by kind):
# BLEU, METEOR, ROUGE-L and distinct-n are fractions, MRR a mean of reciprocal ranks, CIDEr-D
# is pycocoevalcap's x10 scale, CLIPScore and RefCLIPScore are at most w = 2.5
# (mirada.metrics.clipscore.W). A bundle claiming more was forged (mirada.bundles.schema).
SCORE_CEILINGS: dict[str, float] = {
    **{bleu(n): 1.0 for n in (1, 2, 3, 4)},
    METEOR: 1.0,
    ROUGE_L: 1.0,
    CIDER: 10.0,
    CLIPSCORE: 2.5,
    REFCLIPSCORE: 2.5,
    distinct(1): 1.0,
    distinct(2): 1.0,
    MRR: 1.0,
    ZEROSHOT_SIGMOID_PROB: 1.0,  # a mean of probabilities
}

NUM_PARAMS = "num_params"
WARMUP_BATCHES = "warmup_batches"
TIMED_BATCHES = "timed_batches"


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
            i2t_recall(k),
            f"Image→text R@{k}",
            f"Share of images with one of their own captions among the top {k} captions.",
            P,
        )
        for k in RECALL_KS
    ),
    *(
        _match(
            t2i_recall(k),
            f"Text→image R@{k}",
            f"Share of captions whose image is among the top {k} images.",
            P,
        )
        for k in RECALL_KS
    ),
    _match(MRR, "MRR", "Mean reciprocal rank of each image's best own caption.", M),
    _match(
        CATEGORY_ACCURACY,
        "Category accuracy",
        "Share of categorised images whose top-1 caption belongs to an image of the same category.",
        P,
    ),
    _match(
        ZEROSHOT_ACCURACY,
        "Zero-shot accuracy",
        "Share of categorised images whose category is predicted from prompts of the class names.",
        P,
    ),
    _match(
        ZEROSHOT_BALANCED_ACCURACY,
        "Zero-shot balanced acc.",
        "Zero-shot accuracy averaged over classes (mean per-class recall).",
        P,
    ),
    _match(
        ZEROSHOT_SIGMOID_PROB,
        "Zero-shot sigmoid prob.",
        "SigLIP-family models only: mean over categorised images of the model's own calibrated "
        "probability for its predicted class, sigmoid(exp(logit_scale) × cos + logit_bias), "
        "where cos is taken against the class embedding averaged over the prompt templates "
        "(renormalised), as the prediction is; compare it with zero-shot accuracy to see how "
        "well calibrated the model is on this data.",
        M,
    ),
    _match(
        PROBE_ACCURACY,
        "Linear-probe accuracy",
        "Share of categorised images whose category a logistic regression on the other folds' "
        "image embeddings predicts (stratified k-fold, C chosen on a validation split).",
        P,
    ),
    *(
        _match(
            knn_accuracy(k),
            f"kNN accuracy (k={k})",
            f"Share of categorised images whose category a cosine {k}-nearest-neighbour vote "
            "over the other folds' image embeddings predicts.",
            P,
        )
        for k in KNN_KS
    ),
    *(
        _match(
            reranked(k),
            f"Re-ranked R@{k} (ITM)",
            f"Image→text R@{k} after re-ranking the contrastive candidates with the "
            "image-text matching head.",
            P,
        )
        for k in RERANK_KS
    ),
    _match(I2T_MEDIAN_RANK, "Image→text median rank", "Median rank of the best own caption.", R),
    _match(I2T_MEAN_RANK, "Image→text mean rank", "Mean rank of the best own caption.", R),
    _match(T2I_MEDIAN_RANK, "Text→image median rank", "Median rank of each caption's image.", R),
    _match(T2I_MEAN_RANK, "Text→image mean rank", "Mean rank of each caption's image.", R),
    *(
        _caption(
            bleu(n),
            bleu(n),
            f"Corpus BLEU with up to {n}-grams (pycocoevalcap, closest reference length).",
            S,
        )
        for n in (1, 2, 3, 4)
    ),
    _caption(METEOR, METEOR, "METEOR 1.5 (Java) via pycocoevalcap.", S),
    _caption(ROUGE_L, ROUGE_L, "Longest-common-subsequence F-score (beta 1.2).", S),
    _caption(
        CIDER,
        CIDER,
        "CIDEr-D with the IDF of this set's own references (comparable only on the same set).",
        S,
    ),
    _caption(
        CLIPSCORE,
        CLIPSCORE,
        "Hessel et al. 2021, reference-free: mean over images of w × max(cos(image, "
        '"A photo depicts " + generated caption), 0), w = 2.5, negative cosines clipped per '
        "image; under the run's --clipscore-model. The prefix matters (demo: 0.676 with it, "
        "2.10 without); torchmetrics' CLIPScore (100 × cos, no prefix, mean clipped) differs.",
        S,
    ),
    _caption(
        REFCLIPSCORE,
        REFCLIPSCORE,
        "Hessel et al. 2021: mean over images of the harmonic mean of CLIPScore and the best "
        "cosine between the generated caption and a reference, clipped at 0; both texts "
        'prefixed with "A photo depicts ", w = 2.5.',
        S,
    ),
    _caption(
        REPEATED_NGRAM_RATE,
        "Repeated n-gram rate",
        "Mean share of repeated content words and bigrams within a generated caption.",
        P,
    ),
    _caption(
        VERBATIM_REPEAT_SHARE,
        "Verbatim repeats",
        "Share of generated captions that repeat another image's caption word for word.",
        P,
    ),
    _caption(
        DEGENERATE_SHARE,
        "Degenerate captions",
        "Share of generated captions flagged degenerate (repetition loops or generic).",
        P,
    ),
    _caption(distinct(1), "Distinct-1", "Distinct words / all words over the run.", S),
    _caption(distinct(2), "Distinct-2", "Distinct bigrams / all bigrams over the run.", S),
    _bench(NUM_PARAMS, "Parameters", "Number of model parameters.", MetricKind.number),
    _bench(WARMUP_BATCHES, "Warm-up batches", "Batches run before timing.", MetricKind.number),
    _bench(TIMED_BATCHES, "Timed batches", "Batches timed per measurement.", MetricKind.number),
]
del P, M, S, R

METRICS: dict[str, MetricName] = {m.key: m for m in _ROWS}

# The match metrics shown as headline cards on the Results page, in display order.
HEADLINE: tuple[str, ...] = (
    *(i2t_recall(k) for k in RECALL_KS),
    *(t2i_recall(k) for k in RECALL_KS),
    MRR,
    CATEGORY_ACCURACY,
    ZEROSHOT_ACCURACY,
    ZEROSHOT_BALANCED_ACCURACY,
    PROBE_ACCURACY,
    *(knn_accuracy(k) for k in KNN_KS),
    *(reranked(k) for k in RERANK_KS),
)

# Timings (stored in the timings table, not as metrics). Benchmark runs store
# `<op>_<stat>` per batch size; match and caption runs store throughput and cache counts.
IMAGE_ENCODE = "image_encode"
TEXT_ENCODE = "text_encode"
CAPTION = "caption"
OPERATIONS: dict[str, str] = {
    IMAGE_ENCODE: "Image encode",
    TEXT_ENCODE: "Text encode",
    CAPTION: "Caption",
}
LATENCY_P50_MS = "latency_p50_ms"
LATENCY_P95_MS = "latency_p95_ms"
THROUGHPUT_PER_S = "throughput_per_s"
PEAK_RSS_MB = "peak_rss_mb"
CUDA_MAX_ALLOCATED_MB = "cuda_max_allocated_mb"
PER_S = "per_s"
COMPUTED = "computed"
CACHED = "cached"
# Where a run's image time went (match and caption runs on the DataLoader path, not Ray).
DECODE_WAIT_S = "decode_wait_s"
MODEL_S = "model_s"
TIMING_STATS: dict[str, tuple[str, str, MetricKind]] = {
    LATENCY_P50_MS: ("latency p50", "Median time per item (ms).", MetricKind.milliseconds),
    LATENCY_P95_MS: (
        "latency p95",
        "95th-percentile time per item (ms).",
        MetricKind.milliseconds,
    ),
    THROUGHPUT_PER_S: (
        "throughput",
        "Items per second at this batch size.",
        MetricKind.per_second,
    ),
    PEAK_RSS_MB: ("peak RSS", "Peak resident memory of the worker (MB).", MetricKind.megabytes),
    CUDA_MAX_ALLOCATED_MB: (
        "CUDA max allocated",
        "Peak CUDA memory allocated (MB).",
        MetricKind.megabytes,
    ),
    PER_S: ("items/s", "Items per second over the whole run.", MetricKind.per_second),
    COMPUTED: ("computed", "Embeddings computed by the model.", MetricKind.number),
    CACHED: ("cached", "Embeddings read from the embedding cache.", MetricKind.number),
    DECODE_WAIT_S: (
        "decode wait",
        "Seconds the model waited for the next batch of decoded, preprocessed images: the "
        "input pipeline's time that compute did not hide.",
        MetricKind.seconds,
    ),
    MODEL_S: (
        "model time",
        "Seconds in the model's forward passes over the images.",
        MetricKind.seconds,
    ),
}
# The per-batch-size measurements of benchmark runs (columns of the Hardware page).
BENCHMARK_STATS: tuple[str, ...] = (
    LATENCY_P50_MS,
    LATENCY_P95_MS,
    THROUGHPUT_PER_S,
    PEAK_RSS_MB,
    CUDA_MAX_ALLOCATED_MB,
)
TIMING_PATTERN = re.compile(rf"^(?P<op>{'|'.join(OPERATIONS)})_(?P<stat>{'|'.join(TIMING_STATS)})$")
LOAD_S = "load_s"
LOAD_SECONDS = MetricName(
    LOAD_S, "Model load time", "Seconds to load the model.", MetricKind.seconds, Task.benchmark
)


def timing_key(op: str, stat: str) -> str:
    """`<op>_<stat>`, e.g. timing_key(IMAGE_ENCODE, THROUGHPUT_PER_S); both must be known."""
    if op not in OPERATIONS or stat not in TIMING_STATS:
        raise ValueError(f"unknown timing {op!r}/{stat!r}")
    return f"{op}_{stat}"


def metrics_of(task: Task) -> tuple[str, ...]:
    """The metric keys runs of `task` store, in table order."""
    return tuple(m.key for m in _ROWS if m.task == task)


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


def kind_of(key: str) -> MetricKind:
    """How a metric or timing key reads (score when it is not known)."""
    return METRICS[key].kind if key in METRICS else timing_name(key).kind


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


def as_number(value: Any) -> float | None:
    """`value` as a float, or None when it is missing (None, NaN, bool, not a number)."""
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
    chance, lo, hi = as_number(info.get("chance")), as_number(ci_low), as_number(ci_high)
    if chance is None or lo is None or hi is None:
        return None
    basis = f" {info['chance_basis']}" if info.get("chance_basis") else ""
    level = f"{chance * 100:.3g}%{basis}"
    if lo <= chance <= hi:
        return f"within chance ({level})"
    if hi < chance:
        return f"below chance ({level})"
    return None
