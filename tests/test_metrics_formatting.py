"""`format_metric`: one way to show a value, by its kind in the metric table."""

from __future__ import annotations

import math

import pytest

from mirada.metrics import names
from mirada.metrics.formatting import MISSING, format_interval, format_metric, format_value


def test_proportion_in_percent_with_interval_in_points() -> None:
    r1 = names.i2t_recall(1)
    assert format_metric(r1, 0.9667) == "96.7%"
    assert format_metric(r1, 0.9667, 0.9171, 0.9869) == "96.7% [91.7, 98.7]"
    assert format_interval(r1, 0.9171, 0.9869) == "[91.7, 98.7]"
    assert format_metric(names.CATEGORY_ACCURACY, 1.0, 0.7575, 1.0) == "100.0% [75.8, 100.0]"


def test_means_and_scores_are_fractions() -> None:
    assert format_metric(names.MRR, 0.875) == "0.875"
    assert format_metric(names.CIDER, 1.23456, 0.9, 1.5) == "1.235 [0.900, 1.500]"
    assert format_metric("a_future_metric", 0.5) == "0.500"  # unknown keys read as scores


def test_counts_and_ranks_are_integers() -> None:
    assert format_metric(names.NUM_PARAMS, 315201.0) == "315201"
    assert format_metric(names.WARMUP_BATCHES, 2.0) == "2"
    assert format_metric(names.I2T_MEDIAN_RANK, 3.0) == "3"
    assert format_metric(names.I2T_MEAN_RANK, 2.4167) == "2.4"
    key = names.timing_key(names.IMAGE_ENCODE, names.COMPUTED)
    assert format_metric(key, 14.0) == "14"


def test_timings_carry_their_unit() -> None:
    ms = names.timing_key(names.IMAGE_ENCODE, names.LATENCY_P50_MS)
    assert format_metric(ms, 3.4) == "3.40 ms"
    assert format_metric(ms, 3.4, unit=False) == "3.40"
    assert format_metric(names.LOAD_S, 1.25) == "1.25 s"
    per_s = names.timing_key(names.CAPTION, names.THROUGHPUT_PER_S)
    assert format_metric(per_s, 262.14) == "262.1/s"
    assert format_metric(names.timing_key(names.TEXT_ENCODE, names.PEAK_RSS_MB), 812) == "812.0 MB"


@pytest.mark.parametrize("missing", [None, math.nan, float("nan"), "n/a", True])
def test_missing_values_read_as_a_dash(missing: object) -> None:
    for key in (names.i2t_recall(1), names.MRR, names.NUM_PARAMS, names.LOAD_S):
        shown = format_metric(key, missing, 0.1, 0.2)
        assert shown == MISSING == "–"
        assert "None" not in shown and "nan" not in shown
    assert format_value(names.MetricKind.proportion, missing) == MISSING


def test_an_interval_needs_both_ends() -> None:
    r1 = names.i2t_recall(1)
    assert format_metric(r1, 0.5, None, 0.7) == "50.0%"
    assert format_metric(r1, 0.5, math.nan, 0.7) == "50.0%"
    assert format_interval(r1, 0.1, None) == ""
