"""Altair chart builders: DataFrames in, charts out. No Streamlit and no database here."""

from __future__ import annotations

from typing import Final

import altair as alt
import pandas as pd

SCORE_SCHEME: Final = "viridis"


def _linked(chart: alt.Chart, href: str | None) -> alt.Chart:
    """Marks that open `href` (a Vega expression, e.g. links.item_href_expr) when clicked."""
    if href is None:
        return chart
    return chart.transform_calculate(href=href).encode(href="href:N")


def _pct(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    out = df.copy()
    for c in cols:
        if c in out:
            out[c] = pd.to_numeric(out[c], errors="coerce") * 100.0
    return out


def bars_with_ci(
    df: pd.DataFrame,
    *,
    x: str,
    value: str = "value",
    low: str = "ci_low",
    high: str = "ci_high",
    color: str | None = None,
    title: str = "",
    percent: bool = True,
    x_title: str | None = None,
    y_title: str = "accuracy (%)",
) -> alt.LayerChart:
    """Vertical bars of `value` per `x` (grouped by `color` when given) with CI whiskers."""
    data = _pct(df, [value, low, high]) if percent else df.copy()
    base = alt.Chart(data)
    x_enc = alt.X(
        f"{x}:N",
        title=x_title if x_title is not None else x,
        sort=None,
        axis=alt.Axis(labelAngle=0, labelLimit=160),
    )
    offset = {"xOffset": alt.XOffset(f"{color}:N")} if color else {}
    tooltip = [
        alt.Tooltip(f"{x}:N"),
        *([alt.Tooltip(f"{color}:N")] if color else []),
        alt.Tooltip(f"{value}:Q", format=".1f" if percent else ".3f", title=value),
        alt.Tooltip(f"{low}:Q", format=".1f" if percent else ".3f", title="95% CI low"),
        alt.Tooltip(f"{high}:Q", format=".1f" if percent else ".3f", title="95% CI high"),
    ]
    bars = base.mark_bar().encode(
        x=x_enc,
        y=alt.Y(f"{value}:Q", title=y_title),
        color=alt.Color(f"{color}:N", title=color) if color else alt.value("#4c78a8"),
        tooltip=tooltip,
        **offset,
    )
    whiskers = (
        base.transform_filter(f"isValid(datum['{low}'])")
        .mark_rule(color="black", strokeWidth=1.5)
        .encode(x=x_enc, y=alt.Y(f"{low}:Q"), y2=alt.Y2(f"{high}:Q"), **offset)
    )
    return alt.LayerChart(layer=[bars, whiskers]).properties(title=title, height=320)


def heatmap_full(
    cells: pd.DataFrame,
    image_bounds: pd.DataFrame,
    caption_bounds: pd.DataFrame,
    *,
    title: str,
    href: str | None = None,
) -> alt.LayerChart:
    """Image (rows) x caption (columns) cosine similarity, ordered by category, with category
    separators and a tooltip showing file, caption and score; `href` links each cell."""
    data = cells.assign(image_end=cells["image"] + 1, caption_end=cells["caption"] + 1)
    n_img = int(data["image_end"].max()) if not data.empty else 1
    n_cap = int(data["caption_end"].max()) if not data.empty else 1
    rect = (
        alt.Chart(data)
        .mark_rect(cursor="pointer" if href else "default")
        .encode(
            x=alt.X(
                "caption:Q",
                title="captions (ordered by category)",
                scale=alt.Scale(domain=[0, n_cap], nice=False),
                axis=alt.Axis(labels=False, ticks=False, grid=False),
            ),
            x2="caption_end:Q",
            y=alt.Y(
                "image:Q",
                title="images (ordered by category)",
                scale=alt.Scale(domain=[0, n_img], nice=False, reverse=True),
                axis=alt.Axis(labels=False, ticks=False, grid=False),
            ),
            y2="image_end:Q",
            color=alt.Color("score:Q", title="cosine", scale=alt.Scale(scheme=SCORE_SCHEME)),
            tooltip=[
                alt.Tooltip("filename:N", title="file"),
                alt.Tooltip("image_category:N", title="image category"),
                alt.Tooltip("caption_text:N", title="caption"),
                alt.Tooltip("caption_category:N", title="caption category"),
                alt.Tooltip("score:Q", format=".3f"),
                alt.Tooltip("own:N", title="own caption"),
            ],
        )
    )
    rect = _linked(rect, href)
    inner_img = image_bounds[image_bounds["start"] > 0]
    inner_cap = caption_bounds[caption_bounds["start"] > 0]
    h_rules = alt.Chart(inner_img).mark_rule(color="white", strokeWidth=1.5).encode(y="start:Q")
    v_rules = alt.Chart(inner_cap).mark_rule(color="white", strokeWidth=1.5).encode(x="start:Q")
    labels = (
        alt.Chart(image_bounds.assign(mid=(image_bounds["start"] + image_bounds["end"]) / 2))
        .mark_text(align="left", dx=4, color="white", fontWeight="bold")
        .encode(y="mid:Q", x=alt.value(0), text="category:N")
    )
    return alt.LayerChart(layer=[rect, h_rules, v_rules, labels]).properties(
        title=title, height=520
    )


def heatmap_blocks(blocks: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """Category x category mean similarity with the value printed in each block."""
    base = alt.Chart(blocks).encode(
        x=alt.X("caption_category:N", title="caption category"),
        y=alt.Y("image_category:N", title="image category"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("mean_score:Q", title="mean cosine", scale=alt.Scale(scheme=SCORE_SCHEME)),
        tooltip=[
            alt.Tooltip("image_category:N"),
            alt.Tooltip("caption_category:N"),
            alt.Tooltip("mean_score:Q", format=".3f"),
            alt.Tooltip("images:Q"),
            alt.Tooltip("captions:Q"),
        ],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("mean_score:Q", format=".2f"),
        color=alt.value("white"),
    )
    return alt.LayerChart(layer=[rect, text]).properties(title=title, height=420)


def heatmap_slice(cells: pd.DataFrame, *, title: str, href: str | None = None) -> alt.Chart:
    """An image x caption slice (ordinal axes, few enough cells to label by tooltip)."""
    chart = (
        alt.Chart(cells)
        .mark_rect(cursor="pointer" if href else "default")
        .encode(
            x=alt.X("caption:O", title="captions", axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("image:O", title="images", axis=alt.Axis(labels=False, ticks=False)),
            color=alt.Color("score:Q", title="cosine", scale=alt.Scale(scheme=SCORE_SCHEME)),
            tooltip=[
                alt.Tooltip("filename:N", title="file"),
                alt.Tooltip("caption_text:N", title="caption"),
                alt.Tooltip("score:Q", format=".3f"),
                alt.Tooltip("own:N", title="own caption"),
            ],
        )
        .properties(title=title, height=420)
    )
    return _linked(chart, href)


def projection_scatter(points: pd.DataFrame, *, title: str, href: str | None = None) -> alt.Chart:
    """2-D embedding scatter coloured by category, shaped by kind, captions on hover; `href`
    links each point."""
    chart = (
        alt.Chart(points)
        .mark_point(filled=True, size=40, opacity=0.75, cursor="pointer" if href else "default")
        .encode(
            x=alt.X("x:Q", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("y:Q", title=None, axis=alt.Axis(labels=False, ticks=False)),
            color=alt.Color("category:N", title="category"),
            shape=alt.Shape("kind:N", title="embedding"),
            tooltip=[
                alt.Tooltip("kind:N"),
                alt.Tooltip("category:N"),
                alt.Tooltip("filename:N", title="file"),
                alt.Tooltip("text:N", title="caption"),
            ],
        )
        .properties(title=title, height=460)
        .interactive()
    )
    return _linked(chart, href)


def confusion_matrix(df: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """Zero-shot confusion: rows true class, columns predicted, colour = share of the row."""
    base = alt.Chart(df).encode(
        x=alt.X("predicted:N", title="predicted"),
        y=alt.Y("true:N", title="true"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("share:Q", title="share of row", scale=alt.Scale(scheme="blues")),
        tooltip=["true:N", "predicted:N", "count:Q", alt.Tooltip("share:Q", format=".0%")],
    )
    text = base.mark_text().encode(
        text="count:Q",
        color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black")),
    )
    return alt.LayerChart(layer=[rect, text]).properties(title=title, height=360)


def difference_bars(df: pd.DataFrame, *, title: str) -> alt.Chart:
    """Per-category difference (points) of each run to the first run."""
    data = _pct(df, ["difference"])
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("category:N", title="category", axis=alt.Axis(labelAngle=0)),
            xOffset="run:N",
            y=alt.Y("difference:Q", title="difference to first run (points)"),
            color=alt.Color("run:N"),
            tooltip=["category:N", "run:N", alt.Tooltip("difference:Q", format="+.1f")],
        )
        .properties(title=title, height=300)
    )


def latency_bars(df: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """p50 latency per item (bars) with p95 whiskers, per configuration and batch size."""
    base = alt.Chart(df)
    x = alt.X("config:N", title=None, axis=alt.Axis(labelAngle=-20, labelLimit=240))
    bars = base.mark_bar().encode(
        x=x,
        xOffset=alt.XOffset("batch_size:O"),
        y=alt.Y("latency_p50_ms:Q", title="ms per item (p50, p95 whisker)"),
        color=alt.Color("batch_size:O", title="batch size"),
        tooltip=[
            "config:N",
            "batch_size:O",
            alt.Tooltip("latency_p50_ms:Q", format=".2f", title="p50 ms"),
            alt.Tooltip("latency_p95_ms:Q", format=".2f", title="p95 ms"),
        ],
    )
    whisk = base.mark_rule(color="black").encode(
        x=x,
        xOffset=alt.XOffset("batch_size:O"),
        y="latency_p50_ms:Q",
        y2="latency_p95_ms:Q",
    )
    return alt.LayerChart(layer=[bars, whisk]).properties(title=title, height=340)


def throughput_lines(df: pd.DataFrame, *, title: str) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("batch_size:Q", title="batch size", scale=alt.Scale(type="log", base=2)),
            y=alt.Y("throughput_per_s:Q", title="items per second"),
            color=alt.Color("config:N", title="model · host · device · dtype"),
            tooltip=["config:N", "batch_size:Q", alt.Tooltip("throughput_per_s:Q", format=".1f")],
        )
        .properties(title=title, height=320)
    )


def memory_bars(df: pd.DataFrame, *, title: str) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("config:N", title=None, axis=alt.Axis(labelAngle=-20, labelLimit=240)),
            xOffset=alt.XOffset("memory:N"),
            y=alt.Y("mb:Q", title="peak memory (MB)"),
            color=alt.Color("memory:N", title="measure"),
            tooltip=["config:N", "memory:N", "batch_size:Q", alt.Tooltip("mb:Q", format=".0f")],
        )
        .properties(title=title, height=300)
    )


def count_bars(df: pd.DataFrame, *, x: str, y: str, title: str, y_title: str) -> alt.Chart:
    """Simple bars of a count per category (e.g. images per category)."""
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:N", title=x, sort="-y"),
            y=alt.Y(f"{y}:Q", title=y_title),
            tooltip=[f"{x}:N", f"{y}:Q"],
        )
        .properties(title=title, height=220)
    )


def score_histogram(df: pd.DataFrame, *, value: str, color: str, title: str) -> alt.Chart:
    """Histogram of a per-image score, stacked by a boolean flag (e.g. degenerate)."""
    return (
        alt.Chart(df.dropna(subset=[value]))
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", bin=alt.Bin(maxbins=30), title=f"per-image {value}"),
            y=alt.Y("count():Q", title="images"),
            color=alt.Color(f"{color}:N", title=color),
            tooltip=[alt.Tooltip("count():Q", title="images"), f"{color}:N"],
        )
        .properties(title=title, height=260)
    )
