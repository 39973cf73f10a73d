"""mirada.metrics.speed against independent computations (scipy, numpy) on fixed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mirada.errors import MiradaError
from mirada.metrics import speed


def test_throughput_is_items_over_time_with_the_inverted_t_interval() -> None:
    t = [0.10, 0.12, 0.11, 0.13, 0.09]
    rate = speed.throughput(t, 8)
    assert rate.per_s == pytest.approx(8 * 5 / sum(t))
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(t), scale=stats.sem(t))
    assert rate.ci == pytest.approx((8 / hi, 8 / lo))
    assert rate.rel_half_width == pytest.approx((hi - lo) / 2 / np.mean(t))
    assert speed.throughput([0.1], 8).ci is None


def test_converged_follows_the_relative_half_width() -> None:
    assert not speed.converged([0.1, 0.2, 0.1, 0.2])
    assert speed.converged([0.100, 0.101, 0.099, 0.100, 0.100])
    assert not speed.converged([0.1])


def test_median_ci_is_the_order_statistic_interval() -> None:
    x = list(range(1, 21))
    lo, hi = speed.median_ci(x)  # type: ignore[misc]
    # n = 20 at 95%: the 6th and 15th order statistics (coverage 0.9586)
    assert (lo, hi) == (6.0, 15.0)
    assert stats.binom.cdf(14, 20, 0.5) - stats.binom.cdf(5, 20, 0.5) >= 0.95
    assert speed.median_ci([1.0, 2.0, 3.0]) is None


def test_paired_speedup_is_the_median_round_ratio() -> None:
    ref = [0.2, 0.2, 0.4, 0.2, 0.2]  # round 3 was hit by a load spike: both sides slow
    var = [0.1, 0.1, 0.2, 0.1, 0.1]
    point, ci = speed.paired_speedup(ref, var)
    assert point == 2.0 and ci == (2.0, 2.0)
    with pytest.raises(MiradaError, match="differ in number"):
        speed.paired_speedup([0.1], [0.1, 0.2])


def test_rate_ratio_without_pairing() -> None:
    point, ci = speed.rate_ratio([0.1, 0.1], 8, [0.2, 0.2], 8)
    assert point == pytest.approx(2.0) and ci == pytest.approx((2.0, 2.0))
    assert speed.rate_ratio([0.1], 8, [0.2, 0.2], 8)[1] is None


def test_round_order_rotates() -> None:
    assert [speed.round_order(3, r) for r in range(4)] == [
        [0, 1, 2],
        [1, 2, 0],
        [2, 0, 1],
        [0, 1, 2],
    ]


@pytest.mark.parametrize("bad", [[], [0.1, -1.0], [math.nan]])
def test_bad_times_are_refused(bad: list[float]) -> None:
    with pytest.raises(MiradaError):
        speed.throughput(bad, 1)
