"""`format_metric`: one way to show a value, by its kind in the metric table."""

from __future__ import annotations

import math

import pytest

from mirada.metrics import names
from mirada.metrics.formatting import (
    MISSING,
    format_difference,
    format_interval,
    format_metric,
    format_value,
    no_interval_reason,
)


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


def test_differences_are_signed_in_points_for_proportions() -> None:
    r1 = names.i2t_recall(1)
    assert format_difference(r1, 0.0333, -0.012, 0.079) == "+3.3 points [-1.2, 7.9]"
    assert format_difference(r1, -0.0333, unit=False) == "-3.3"
    assert format_difference(r1, -0.0001) == "+0.0 points"  # no "-0.0"
    assert format_difference(names.MRR, -0.05, -0.11, 0.01) == "-0.050 [-0.110, 0.010]"
    assert format_difference(names.I2T_MEDIAN_RANK, 2.0) == "+2"
    assert format_difference(names.LOAD_S, 0.25) == "+0.25 s"
    assert format_difference(r1, None, 0.1, 0.2) == MISSING
    assert format_difference(r1, 0.1, None, 0.2) == "+10.0 points"


def test_a_missing_interval_says_why() -> None:
    bleu = no_interval_reason(names.BLEU_4)
    assert bleu.startswith("corpus-level") and "bootstrap" in bleu
    stored = {"per_image_mean": 0.2, "per_image_mean_ci": [0.1, 0.3]}
    assert no_interval_reason(names.METEOR, stored).endswith(
        "per-image mean 0.200 [0.100, 0.300] (95% bootstrap)"
    )
    distinct = no_interval_reason(names.distinct(1))
    assert distinct.startswith("corpus-level") and "bootstrap" not in distinct
    assert no_interval_reason(names.NUM_PARAMS) == "a count: exact, no interval"
    assert "rank" in no_interval_reason(names.I2T_MEDIAN_RANK)
    assert no_interval_reason(names.METEOR, {"unavailable": "Java is not installed"}) == (
        "not computed: Java is not installed"
    )
    for key in (names.i2t_recall(1), names.LOAD_S, names.CIDER, "a_future_metric"):
        reason = no_interval_reason(key)
        assert reason and "None" not in reason
