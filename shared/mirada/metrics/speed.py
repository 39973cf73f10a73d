"""Speed from timed batches: throughput and latency with intervals, paired speed-ups, when to
stop measuring. Pure functions on lists of seconds; the benchmark task times, these summarise.

One measure, one story: throughput, latency and the speed-up all come from the same timed
batches. Throughput is items over total time (the rate a long job sees); its 95% CI is the
Student-t interval of the mean batch time, inverted (what pyperf and hyperfine report as mean
± error). Latency percentiles are per item; the median's CI is the distribution-free
order-statistic interval. A speed-up is the median of per-round paired ratios (variant and
reference timed back to back in the same round, so a load spike hits both), with a percentile
bootstrap CI over rounds: the ratio of two unpaired means would carry the spike into one side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mirada.errors import MiradaError

CONFIDENCE = 0.95
TARGET_REL_CI = 0.05  # rounds stop once every variant's throughput CI is within ±5%


@dataclass(frozen=True)
class Rate:
    """Items per second with its CI; rel_half_width is the CI's half-width over the mean batch
    time (None with fewer than two batches)."""

    per_s: float
    ci: tuple[float, float] | None
    rel_half_width: float | None


def _seconds(batch_seconds: Sequence[float]) -> np.ndarray:
    t = np.asarray(batch_seconds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise MiradaError("need at least one timed batch")
    if not np.isfinite(t).all() or (t <= 0).any():
        raise MiradaError("batch times must be finite and positive")
    return t


def _t_quantile(dof: int, confidence: float) -> float:
    from scipy.stats import t as student_t  # type: ignore[import-untyped]  # via scikit-learn

    return float(student_t.ppf(1 - (1 - confidence) / 2, dof))


def throughput(
    batch_seconds: Sequence[float], batch_size: int, confidence: float = CONFIDENCE
) -> Rate:
    """Items/s over the timed batches of `batch_size` items, with its CI."""
    t = _seconds(batch_seconds)
    mean = float(t.mean())
    per_s = batch_size / mean
    if t.size < 2:
        return Rate(per_s, None, None)
    half = _t_quantile(t.size - 1, confidence) * float(t.std(ddof=1)) / math.sqrt(t.size)
    rel = half / mean
    high = batch_size / (mean - half) if mean > half else math.inf
    return Rate(per_s, (batch_size / (mean + half), high), rel)


def converged(batch_seconds: Sequence[float], target_rel: float = TARGET_REL_CI) -> bool:
    """True once the throughput CI's half-width is within `target_rel` of the mean."""
    if len(batch_seconds) < 2:
        return False
    rel = throughput(batch_seconds, 1).rel_half_width
    return rel is not None and rel <= target_rel


def latency_ms(batch_seconds: Sequence[float], batch_size: int) -> tuple[float, float]:
    """(p50, p95) milliseconds per item over the timed batches."""
    per_item = _seconds(batch_seconds) * 1000.0 / batch_size
    p50, p95 = np.percentile(per_item, [50, 95])
    return float(p50), float(p95)


def median_ci(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Distribution-free CI of the median: order statistics whose binomial coverage reaches
    `confidence` (None when there are too few values for it, fewer than 6 at 95%)."""
    from scipy.stats import binom

    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    # largest j with P(Binomial(n, 1/2) < j) <= alpha/2: [x_(j), x_(n-j+1)] covers the median
    alpha = 1 - confidence
    j = int(binom.ppf(alpha / 2, n, 0.5))
    while j > 0 and binom.cdf(j - 1, n, 0.5) > alpha / 2:
        j -= 1
    if j < 1:
        return None
    return float(x[j - 1]), float(x[n - j])


def paired_speedup(
    reference_seconds: Sequence[float],
    variant_seconds: Sequence[float],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, tuple[float, float] | None]:
    """(median ratio, CI) of per-round reference time / variant time (the variant's rate over
    the reference's; the same batch size, round i of each timed in the same round)."""
    ref = _seconds(reference_seconds)
    var = _seconds(variant_seconds)
    if ref.size != var.size:
        raise MiradaError(f"paired rounds differ in number ({ref.size} vs {var.size})")
    ratios = ref / var
    point = float(np.median(ratios))
    if ratios.size < 2:
        return point, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, ratios.size, size=(n_resamples, ratios.size))
    boot = np.median(ratios[idx], axis=1)
    alpha = 1 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return point, (float(lo), float(hi))


def rate_ratio(
    seconds_a: Sequence[float],
    batch_size_a: int,
    seconds_b: Sequence[float],
    batch_size_b: int,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, tuple[float, float] | None]:
    """(ratio, CI) of A's throughput over B's from unpaired batches (two machines): each side
    resampled on its own, percentile bootstrap of the ratio of mean rates."""
    a, b = _seconds(seconds_a), _seconds(seconds_b)
    point = (batch_size_a / a.mean()) / (batch_size_b / b.mean())
    if a.size < 2 or b.size < 2:
        return float(point), None
    rng = np.random.default_rng(seed)
    ma = a[rng.integers(0, a.size, size=(n_resamples, a.size))].mean(axis=1)
    mb = b[rng.integers(0, b.size, size=(n_resamples, b.size))].mean(axis=1)
    boot = (batch_size_a / ma) / (batch_size_b / mb)
    alpha = 1 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(point), (float(lo), float(hi))


def round_order(n: int, round_index: int) -> list[int]:
    """Contender indices for one round, rotated by the round number, so no variant always runs
    first (right after another's allocations) or last."""
    if n <= 0:
        return []
    k = round_index % n
    return [*range(k, n), *range(k)]
