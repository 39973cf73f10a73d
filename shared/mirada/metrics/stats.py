"""Uncertainty for small datasets: Wilson and bootstrap intervals, exact McNemar, paired bootstrap.

Proportions (successes out of n trials: recalls, accuracies, shares of items) get the Wilson
score interval, which never collapses to a point at 0% or 100% (a percentile bootstrap of 33
hits out of 33 gives [100, 100], claiming certainty). Means of other per-item quantities (MRR,
per-image caption scores) and paired differences keep the percentile bootstrap.

Bootstrap resampling is over items (images). `resample_weights` draws the resamples once as a
multiplicity matrix W [R, N] (how often each item appears in each resample), so the means of
any number of metrics for all resamples are one matrix product `W @ X / N`; every metric of a
report then shares the same resamples. Bootstrap intervals are percentile intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from mirada.errors import MiradaError


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion successes / n (Wilson 1927, JASA 22:209-212).

    Closed form, as statsmodels' `proportion_confint(method="wilson")`: with p = s/n and z the
    normal quantile, centre (p + z^2/2n) / (1 + z^2/n), half-width
    z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2). It stays inside [0, 1] and is never a point:
    0 of 33 gives [0, 0.104], 33 of 33 [0.896, 1]. n = 0 gives (nan, nan).
    """
    if not 0 < confidence < 1:
        raise MiradaError(f"confidence must be between 0 and 1, got {confidence}")
    if n < 0 or not 0 <= successes <= n:
        raise MiradaError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    # p = 0 (p = 1) gives exactly 0 (1) analytically; do not let rounding say otherwise
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def resample_weights(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Multiplicities float64 [R, n] of n items in R bootstrap resamples (rows sum to n)."""
    if n <= 0:
        return np.zeros((n_resamples, 0), dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n), dtype=np.int64)
    idx += (np.arange(n_resamples, dtype=np.int64) * n)[:, None]
    counts = np.bincount(idx.ravel(), minlength=n_resamples * n)
    return counts.reshape(n_resamples, n).astype(np.float64)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of resampled statistics (non-finite ones ignored; none: NaNs)."""
    if not 0 < confidence < 1:
        raise MiradaError(f"confidence must be between 0 and 1, got {confidence}")
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _values(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise MiradaError(f"{name} must be one value per item (1-D), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise MiradaError(f"{name} contain NaN or infinite values")
    return arr


def bootstrap_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Resampled means [R] (or [R, K] for values [N, K]) under multiplicities W [R, N]."""
    n = weights.shape[1]
    return (weights.astype(np.float64, copy=False) @ np.asarray(values, dtype=np.float64)) / n


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Resampled ratio of sums sum(num)/sum(den) [R] (cluster bootstrap, e.g. captions by image)."""
    w = weights.astype(np.float64, copy=False)
    d = w @ np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ np.asarray(num, dtype=np.float64)) / d


def bootstrap_ratios(
    nums: Mapping[str, np.ndarray], dens: Mapping[str, np.ndarray], weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Several resampled ratios {name: [R]} from one matrix product (same keys in both)."""
    names = list(nums)
    if not names:
        return {}
    x = np.stack([np.asarray(nums[k], np.float64) for k in names], axis=1)
    y = np.stack([np.asarray(dens[k], np.float64) for k in names], axis=1)
    prod = weights.astype(np.float64, copy=False) @ np.concatenate([x, y], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = prod[:, : len(names)] / prod[:, len(names) :]
    return {k: ratio[:, i] for i, k in enumerate(names)}


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    weights: np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-item `values` (0/1 for accuracies).

    Pass `weights` from `resample_weights` to reuse one set of resamples across metrics.
    Empty input gives (nan, nan); one item gives (v, v).
    """
    arr = _values(values)
    if arr.size == 0:
        return float("nan"), float("nan")
    w = weights if weights is not None else resample_weights(arr.size, n_resamples, seed)
    if w.shape[1] != arr.size:
        raise MiradaError(f"resample weights are for {w.shape[1]} items, got {arr.size} values")
    return percentile_interval(bootstrap_means(arr, w), confidence)


def bootstrap_cis(
    columns: Mapping[str, Sequence[float] | np.ndarray],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Intervals for several per-item metrics of the same N items, from one set of resamples."""
    if not columns:
        return {}
    names = list(columns)
    x = np.stack([_values(columns[k], k) for k in names], axis=1)
    w = resample_weights(x.shape[0], n_resamples, seed)
    means = bootstrap_means(x, w)
    return {k: percentile_interval(means[:, i], confidence) for i, k in enumerate(names)}


def _binary(values: Sequence[bool] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MiradaError(f"{name} must be one value per item (1-D), got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise MiradaError(f"{name} must be booleans (correct / not correct)")
    return arr.astype(bool)


def mcnemar_exact(
    a_correct: Sequence[bool] | np.ndarray, b_correct: Sequence[bool] | np.ndarray
) -> dict[str, Any]:
    """Exact two-sided McNemar test on paired correctness.

    b = items A gets right and B wrong, c = items A wrong and B right; under H0 the b+c
    discordant pairs split Binomial(b+c, 1/2). p = min(1, 2 * P(X <= min(b, c))), exactly
    (integer arithmetic); p = 1 when there are no discordant pairs.
    """
    a = _binary(a_correct, "a_correct")
    b_ = _binary(b_correct, "b_correct")
    if a.shape != b_.shape:
        raise MiradaError(f"paired results differ in length ({a.size} vs {b_.size})")
    b = int(np.count_nonzero(a & ~b_))
    c = int(np.count_nonzero(~a & b_))
    n = b + c
    if n == 0:
        p = 1.0
    else:
        tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
        p = min(1.0, 2 * tail / 2**n)
    return {"b": b, "c": c, "discordant": n, "n": int(a.size), "p_value": p}


def paired_bootstrap(
    a_values: Sequence[float] | np.ndarray,
    b_values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Paired bootstrap of the mean difference A - B over items.

    difference = mean(a) - mean(b); CI = percentile interval of resampled differences;
    p_value (two-sided) = (1 + #{|d* - d| >= |d|}) / (R + 1), i.e. resampled differences
    re-centred on the null hypothesis of no difference.
    """
    a = _values(a_values, "a_values")
    b = _values(b_values, "b_values")
    if a.shape != b.shape:
        raise MiradaError(f"paired results differ in length ({a.size} vs {b.size})")
    if a.size == 0:
        nan = float("nan")
        return {"difference": nan, "ci_low": nan, "ci_high": nan, "p_value": nan}
    d = a - b
    diff = float(d.mean())
    boot = bootstrap_means(d, resample_weights(d.size, n_resamples, seed))
    lo, hi = percentile_interval(boot, confidence)
    extreme = np.count_nonzero(np.abs(boot - diff) >= abs(diff) - 1e-12)
    p = float((1 + extreme) / (n_resamples + 1)) if diff != 0 else 1.0
    return {"difference": diff, "ci_low": lo, "ci_high": hi, "p_value": p}


def _signed(x: float, digits: int) -> str:
    s = f"{x:+.{digits}f}"
    return s.replace("-", "−")


def compare_runs(
    a_values: Sequence[float] | np.ndarray,
    b_values: Sequence[float] | np.ndarray,
    *,
    metric: str,
    a_label: str = "A",
    b_label: str = "B",
    binary: bool | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Compare two runs on the same items (arrays aligned by item).

    Binary per-item outcomes (correct / not; auto-detected when `binary` is None) use the
    exact McNemar test for p and the paired bootstrap for the CI, in percentage points.
    Continuous per-item scores (e.g. per-image CIDEr) use the paired bootstrap for both, in
    the metric's own units. difference = A - B. Returns metric, a, b, difference, ci_low,
    ci_high, p_value, test, significant (p < 1 - confidence), n and a one-line `sentence`, e.g.
    "A vs B: +5.0 points, 95% CI [−10.0, +20.0], p = 0.62, not significant".
    """
    a = np.asarray(a_values, dtype=np.float64)
    b = np.asarray(b_values, dtype=np.float64)
    if binary is None:
        binary = bool(np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all())
    boot = paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed, confidence=confidence)
    scale = 100.0 if binary else 1.0
    if binary:
        p = mcnemar_exact(a.astype(bool), b.astype(bool))["p_value"] if a.size else float("nan")
        test = "mcnemar_exact"
    else:
        p = boot["p_value"]
        test = "paired_bootstrap"
    out: dict[str, Any] = {
        "metric": metric,
        "a": float(a.mean() * scale) if a.size else float("nan"),
        "b": float(b.mean() * scale) if b.size else float("nan"),
        "difference": boot["difference"] * scale,
        "ci_low": boot["ci_low"] * scale,
        "ci_high": boot["ci_high"] * scale,
        "p_value": p,
        "test": test,
        "significant": bool(p < 1 - confidence),
        "n": int(a.size),
        "unit": "points" if binary else metric,
    }
    digits = 1 if binary else 3
    unit = " points" if binary else ""
    pct = f"{confidence * 100:g}%"
    verdict = "significant" if out["significant"] else "not significant"
    out["sentence"] = (
        f"{a_label} vs {b_label}: {_signed(out['difference'], digits)}{unit}, {pct} CI "
        f"[{_signed(out['ci_low'], digits)}, {_signed(out['ci_high'], digits)}], "
        f"p = {p:.2g}, {verdict} (n = {out['n']}, {test.replace('_', ' ')})"
    )
    return out
