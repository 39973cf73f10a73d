"""One way to show a metric or timing value to people, by its kind in `mirada.metrics.names`.

Every human-readable output (dashboard pages, the Markdown export, `mirada show`, the demo
summary, `mirada score-captions`) formats through here, so one number reads the same
everywhere. Machine-readable outputs (`--json`, JSON and CSV exports) keep raw numbers.

- proportion: percent with one decimal, `96.7%`; its interval in points, `[91.7, 98.7]`;
- mean, score: a fraction with 3 decimals, `0.850`;
- rank, number: an integer when integral (`315201`, `2`), else one decimal (`2.4`);
- seconds, milliseconds, per_second, megabytes: 2 or 1 decimals and the unit (`1.25 s`,
  `3.40 ms`, `262.1/s`, `812.0 MB`); `unit=False` leaves the unit to a separate column;
- a missing value (None, NaN, not a number): `–`.

Differences between two runs (`format_difference`) read the same way, signed: proportions in
points (`+3.3 points [-1.2, 7.9]`), other kinds on their own scale (`-0.050 [-0.110, 0.010]`).
A metric without an interval says why (`no_interval_reason`) instead of leaving a blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mirada.metrics.names import (
    CAPTION_METRICS,
    CIDER,
    ROUGE_L,
    MetricKind,
    as_number,
    distinct,
    kind_of,
)

MISSING = "–"  # an en dash: never "None" or "nan"

_UNITS: dict[MetricKind, tuple[int, str]] = {  # decimals, unit suffix
    MetricKind.seconds: (2, " s"),
    MetricKind.milliseconds: (2, " ms"),
    MetricKind.per_second: (1, "/s"),
    MetricKind.megabytes: (1, " MB"),
}


def _plain(kind: MetricKind, v: float) -> str:
    """The number alone (no % sign or unit) as `kind` shows it."""
    if kind is MetricKind.proportion:
        return f"{v * 100:.1f}"
    if kind in (MetricKind.rank, MetricKind.number):
        return str(int(v)) if v.is_integer() else f"{v:.1f}"
    if kind in _UNITS:
        return f"{v:.{_UNITS[kind][0]}f}"
    return f"{v:.3f}"  # mean, score and unknown keys


def format_value(kind: MetricKind, value: Any, *, unit: bool = True) -> str:
    """One value of `kind`: `96.7%`, `0.850`, `315201`, `3.40 ms`, or `–` when missing."""
    v = as_number(value)
    if v is None:
        return MISSING
    text = _plain(kind, v)
    if kind is MetricKind.proportion:
        return f"{text}%"
    if unit and kind in _UNITS:
        return text + _UNITS[kind][1]
    return text


def format_interval(key: str, ci_low: Any, ci_high: Any) -> str:
    """`[91.7, 98.7]` (proportions in points, as the dashboard shows them); '' without one."""
    lo, hi = as_number(ci_low), as_number(ci_high)
    if lo is None or hi is None:
        return ""
    kind = kind_of(key)
    return f"[{_plain(kind, lo)}, {_plain(kind, hi)}]"


def format_metric(
    key: str, value: Any, ci_low: Any = None, ci_high: Any = None, *, unit: bool = True
) -> str:
    """A metric or timing value by its key's kind, with its interval when both ends are known:
    `96.7% [91.7, 98.7]`, `0.850 [0.650, 0.950]`, `315201`, `3.40 ms`, `–`."""
    text = format_value(kind_of(key), value, unit=unit)
    if text == MISSING:
        return text
    interval = format_interval(key, ci_low, ci_high)
    return f"{text} {interval}" if interval else text


def format_difference(
    key: str, delta: Any, ci_low: Any = None, ci_high: Any = None, *, unit: bool = True
) -> str:
    """A difference between two runs' values of metric `key` (B - A), signed, with its
    interval when both ends are known.

    Proportions read in percentage points: `+3.3 points [-1.2, 7.9]` (`+3.3 [-1.2, 7.9]` with
    `unit=False`, for a column whose header says "points"). Other kinds keep their own scale
    and unit: `-0.050 [-0.110, 0.010]` (score, mean), `+1.5` (rank), `+0.25 s`. A missing
    difference reads `–`.
    """
    kind = kind_of(key)
    d = as_number(delta)
    if d is None:
        return MISSING
    text = _plain(kind, d)
    if as_number(text) == 0:  # "-0.0" after rounding reads as no change
        text = text.lstrip("-")
    text = text if text.startswith("-") else "+" + text
    if unit and kind is MetricKind.proportion:
        text += " points"
    elif unit and kind in _UNITS:
        text += _UNITS[kind][1]
    interval = format_interval(key, ci_low, ci_high)
    return f"{text} {interval}" if interval else text


# Scores computed once over the whole corpus (pooled counts, not a mean of per-image values):
# resampling images says nothing direct about them, so they carry no interval. BLEU-n and
# METEOR also store a bootstrap CI of their per-image mean; distinct-n has no per-image value.
_PER_IMAGE_MEAN_CI = frozenset(k for k in CAPTION_METRICS if k not in (CIDER, ROUGE_L))
_CORPUS_LEVEL = _PER_IMAGE_MEAN_CI | {distinct(1), distinct(2)}


def no_interval_reason(key: str, details: Mapping[str, Any] | None = None) -> str:
    """Why metric `key` shows no interval, in words for people (pages, `mirada show`, the
    Markdown export), instead of an empty or `None` cell.

    BLEU-n and METEOR are corpus-level; with `details` holding `per_image_mean` and
    `per_image_mean_ci` (what the caption report stores) the reason quotes the bootstrap CI of
    the per-image mean, which is where the bootstrap applies. Counts, ranks and timings are
    measured, not sampled; an unavailable metric has no value at all.
    """
    info = details or {}
    if info.get("unavailable"):
        return f"not computed: {info['unavailable']}"
    if key in _CORPUS_LEVEL:
        reason = "corpus-level score (pooled over all captions), so no interval"
        if key not in _PER_IMAGE_MEAN_CI:
            return reason
        mean, ci = as_number(info.get("per_image_mean")), info.get("per_image_mean_ci")
        if mean is not None and isinstance(ci, (list, tuple)) and len(ci) == 2:
            per_image = format_metric(key, mean, ci[0], ci[1])
            return f"{reason}; per-image mean {per_image} (95% bootstrap)"
        return f"{reason}; the per-image mean has a bootstrap CI"
    kind = kind_of(key)
    if kind is MetricKind.number:
        return "a count: exact, no interval"
    if kind is MetricKind.rank:
        return "a rank statistic: no interval computed"
    if kind in _UNITS:
        return "a measurement: no interval stored (benchmark variants carry theirs)"
    return "no interval stored for this run"
