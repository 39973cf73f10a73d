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
"""

from __future__ import annotations

from typing import Any

from mirada.metrics.names import MetricKind, as_number, kind_of

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
