"""Altair charts of the Hardware page: DataFrames of `mirada.queries.hardware` in, charts out.
No Streamlit and no database here; the conventions of `mirada.dashboard.charts` hold (labels
never truncated, legends that list every series).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

from mirada.metrics.names import LATENCY_P50_MS, LATENCY_P95_MS

# Columns of mirada.queries.hardware.detail as Altair shorthands.
P50_Q = f"{LATENCY_P50_MS}:Q"
P95_Q = f"{LATENCY_P95_MS}:Q"

# Rows of mirada.queries.hardware.detail: one series per run and variant ("run 12 · lab-cpu ·
# fp32"), so repeated runs of one configuration are separate lines, never one line that jumps.


def _series_color(series: Sequence[str]) -> alt.Color:
    return alt.Color(
        "series:N",
        title="run · host · variant",
        sort=list(series),
        # on the right: a legend below would take its height from the plot (Streamlit fits
        # the chart into its height), flattening every line
        legend=alt.Legend(labelLimit=0, titleLimit=0),
    )


def _legend_height(series: Sequence[str]) -> int:
    """A plot tall enough for its legend to list every series (a clipped legend hides runs)."""
    return max(320, 30 * len(series) + 120)


def _batch_axis(sizes: Sequence[int]) -> alt.X:
    """Batch size on a log2 axis whose ticks are exactly the measured sizes."""
    return alt.X(
        "batch_size:Q",
        title="batch size",
        scale=alt.Scale(type="log", base=2, nice=False, padding=16),
        axis=alt.Axis(values=list(sizes), format="d", labelAngle=0, labelLimit=0),
    )


def latency_log(df: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """Median latency per item (ms) against batch size, one line per series on ONE log axis
    shared by every batch size; the rule is the median's 95% CI, the tick the p95."""
    data = df.dropna(subset=[LATENCY_P50_MS])
    sizes = sorted(int(b) for b in data["batch_size"].unique())
    series = sorted(data["series"].unique())
    x = _batch_axis(sizes)
    y_scale = alt.Scale(type="log")
    tooltip = [
        alt.Tooltip("series:N", title="run · host · variant"),
        alt.Tooltip("batch_size:Q", title="batch size"),
        alt.Tooltip(P50_Q, format=".3f", title="p50 (ms per item)"),
        alt.Tooltip("latency_p50_ci_low:Q", format=".3f", title="p50 CI low"),
        alt.Tooltip("latency_p50_ci_high:Q", format=".3f", title="p50 CI high"),
        alt.Tooltip(P95_Q, format=".3f", title="p95 (ms per item)"),
        alt.Tooltip("repeats:Q", title="timed batches"),
    ]
    base = alt.Chart(data)
    color = _series_color(series)
    y = alt.Y(P50_Q, title="ms per item (log scale)", scale=y_scale)
    lines = base.mark_line(point=True, strokeWidth=1.5).encode(
        x=x, y=y, color=color, detail="series:N", tooltip=tooltip
    )
    ci = _whiskers(base, x, "latency_p50", y_scale, color)
    p95 = (
        base.transform_filter(f"isValid(datum['{LATENCY_P95_MS}'])")
        .mark_tick(thickness=2, size=10, opacity=0.7)
        .encode(x=x, y=alt.Y(P95_Q, scale=y_scale), color=color, tooltip=tooltip)
    )
    return alt.LayerChart(layer=[lines, ci, p95]).properties(
        title=title, height=_legend_height(series)
    )


def throughput_ci(df: pd.DataFrame, *, title: str, unit: str) -> alt.LayerChart:
    """Throughput against batch size, one line per series, with its 95% CI as a band of
    whiskers (timed batches in rounds); series measured before rounds have no whisker."""
    data = df.dropna(subset=["throughput"])
    sizes = sorted(int(b) for b in data["batch_size"].unique())
    series = sorted(data["series"].unique())
    x = _batch_axis(sizes)
    tooltip = [
        alt.Tooltip("series:N", title="run · host · variant"),
        alt.Tooltip("batch_size:Q", title="batch size"),
        alt.Tooltip("throughput:Q", format=".1f", title=unit),
        alt.Tooltip("throughput_ci_low:Q", format=".1f", title="CI low"),
        alt.Tooltip("throughput_ci_high:Q", format=".1f", title="CI high"),
        alt.Tooltip("repeats:Q", title="timed batches"),
    ]
    base = alt.Chart(data)
    color = _series_color(series)
    y_scale = alt.Scale(type="log")  # hosts differ by orders of magnitude
    lines = base.mark_line(point=True, strokeWidth=1.5).encode(
        x=x,
        y=alt.Y("throughput:Q", title=f"{unit} (log scale)", scale=y_scale),
        color=color,
        tooltip=tooltip,
    )
    whiskers = _whiskers(base, x, "throughput", y_scale, color)
    return alt.LayerChart(layer=[lines, whiskers]).properties(
        title=title, height=_legend_height(series)
    )


def speed_vs_accuracy(
    df: pd.DataFrame,
    *,
    title: str,
    x: str,
    x_title: str,
    rule: float,
    low: str | None = None,
    high: str | None = None,
) -> alt.LayerChart:
    """Each variant's speed-up over its run's reference (y, with its CI) against what it costs
    (x: a task-metric difference in points with its CI, or the min cosine), one colour per
    run and variant, shaped by variant; dashed rules at speed-up 1 and at the user's tolerance
    (`rule`)."""
    data = df.copy()
    tooltip = [
        alt.Tooltip("label:N", title="run · host · variant"),
        alt.Tooltip("speedup:Q", format=".2f", title="speed-up (×)"),
        alt.Tooltip("speedup_ci_low:Q", format=".2f", title="speed-up CI low"),
        alt.Tooltip("speedup_ci_high:Q", format=".2f", title="speed-up CI high"),
        alt.Tooltip(f"{x}:Q", format=".4g", title=x_title),
        *([alt.Tooltip("accuracy_metric:N", title="metric")] if "accuracy_metric" in data else []),
    ]
    base = alt.Chart(data)
    x_enc = alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(zero=False, padding=20))
    y_enc = alt.Y(
        "speedup:Q",
        title="speed-up over the reference (×, 95% CI)",
        scale=alt.Scale(zero=False, padding=20),
    )
    labels = sorted(data["label"].unique())
    color = alt.Color(
        "label:N", title="run · host · variant", sort=labels, legend=alt.Legend(labelLimit=0)
    )
    points = base.mark_point(filled=True, size=90).encode(
        x=x_enc,
        y=y_enc,
        color=color,
        shape=alt.Shape("variant:N", title="variant", legend=alt.Legend(labelLimit=0)),
        tooltip=tooltip,
    )
    layers: list[Any] = [points]
    layers.append(
        base.transform_filter("isValid(datum.speedup_ci_low)")
        .mark_rule()
        .encode(x=x_enc, y="speedup_ci_low:Q", y2="speedup_ci_high:Q", color=color)
    )
    if low and high:
        layers.append(
            base.transform_filter(f"isValid(datum['{low}'])")
            .mark_rule()
            .encode(x=alt.X(f"{low}:Q"), x2=f"{high}:Q", y=y_enc, color=color)
        )
    guides = pd.DataFrame({"x": [rule], "y": [1.0]})
    guide = alt.Chart(guides).mark_rule(strokeDash=[4, 4], color="gray")
    layers += [guide.encode(x="x:Q"), guide.encode(y="y:Q")]  # the tolerance; speed-up 1
    variants = sorted(data["variant"].unique())
    return alt.LayerChart(layer=layers).properties(
        title=title,
        height=_legend_height([*labels, *variants]) + 60,  # two legends
    )


def _whiskers(base: alt.Chart, x: Any, field: str, y_scale: alt.Scale, color: Any) -> alt.Chart:
    """`field`'s 95% CI (columns `<field>_ci_low`/`_ci_high`) as vertical rules, for the rows
    that have one (series measured before rounds have none)."""
    return (
        base.transform_filter(f"isValid(datum.{field}_ci_low)")
        .mark_rule(strokeWidth=2)
        .encode(
            x=x, y=alt.Y(f"{field}_ci_low:Q", scale=y_scale), y2=f"{field}_ci_high:Q", color=color
        )
    )
