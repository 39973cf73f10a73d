"""Altair chart builders: DataFrames in, charts out. No Streamlit and no database here.

Conventions every chart follows: runs are coloured by `run_color` (one colour per run id on
every page) with the legend in the order the user picked the runs; axis and legend labels are
never truncated (labelLimit=0); metrics are named by their human label with the key in the
tooltip; proportions are drawn in percent on a fixed 0-100 axis. The Hardware page's charts
are in `mirada.dashboard.hardware_charts`.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from typing import Any, Final

import altair as alt
import pandas as pd

from mirada.metrics.formatting import format_value
from mirada.metrics.names import MetricKind, label

SCORE_SCHEME: Final = "viridis"
# Tableau 10, the usual categorical palette: distinct hues, readable on white.
RUN_PALETTE: Final = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
)
BAR_COLOR: Final = RUN_PALETTE[0]
WARNING_COLOR: Final = "#c2410c"  # chance lines and notes (Streamlit's Markdown: `:orange[]`)
MISSING: Final = "–"  # what a table shows for a missing value (never "None")


def _names_axis(slant: bool) -> alt.Axis:
    """An axis of names that shows every name: slanted when side by side they would overlap
    (Vega drops overlapping labels), never cut short."""
    return alt.Axis(
        labelAngle=-30 if slant else 0,
        labelAlign="right" if slant else "center",
        labelLimit=0,
        labelOverlap=False,
    )


def run_color(run_id: int) -> str:
    """The colour of a run on every page: fixed by its id, so run 7 looks the same on Results,
    Compare and Captions; ten consecutive run ids never share a colour."""
    return RUN_PALETTE[(int(run_id) - 1) % len(RUN_PALETTE)]


def run_scale(runs: Sequence[tuple[int, str]]) -> alt.Scale:
    """Colour scale for (run id, label) pairs in the order the user picked them: legends list
    the runs in that order, each in its `run_color`."""
    return alt.Scale(domain=[lbl for _, lbl in runs], range=[run_color(i) for i, _ in runs])


def category_palette(n: int) -> list[str]:
    """`n` colours of evenly spaced hue (blue first), one per category: no two share a hue, so
    no pair suggests a group that does not exist (Streamlit's default palette comes in
    light/dark pairs of one hue). Hand-made because no categorical scheme of Vega has distinct
    hues beyond a handful; lightness alternates past ten, where hues grow close."""
    out = []
    for i in range(max(n, 0)):
        hue = (210 + 360 * i / n) % 360 / 360
        lightness = 0.45 if n <= 10 or i % 2 == 0 else 0.6
        r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.7)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


def padded_domain(values: pd.Series, share: float = 0.05) -> list[float]:
    """[min, max] widened by `share` of the span each side, so no point sits on the edge of the
    plot, half clipped (a flat or empty series gets ±1)."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return [-1.0, 1.0]
    lo, hi = float(v.min()), float(v.max())
    pad = (hi - lo) * share if hi > lo else 1.0
    return [lo - pad, hi + pad]


def table_text(df: pd.DataFrame, missing: str = MISSING) -> pd.DataFrame:
    """A copy for display: missing values in text (object) columns read `missing`, not None or
    nan; numeric columns keep their type (the table shows their gaps as empty cells)."""
    out = df.copy()
    for column in out.columns:
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(lambda v: missing if _is_missing(v) else v)
    return out


TABLE_HEADER_PX: Final = 35  # Streamlit's dataframe header and default row height


def table_height(rows: int, row_height: int = TABLE_HEADER_PX) -> int:
    """Pixels that show a Streamlit dataframe's header and all its `rows` without a scrollbar."""
    return TABLE_HEADER_PX + rows * row_height + 3


def verdict(value: Any) -> str:
    """A per-image right/wrong as a table shows it: ✓, ✗, or `MISSING` (not counted)."""
    if _is_missing(value):
        return MISSING
    return "✓" if bool(value) else "✗"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and math.isnan(value)


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
    runs: Sequence[tuple[int, str]] | None = None,
    key: str | None = None,
) -> alt.LayerChart:
    """Vertical bars of `value` per `x` (grouped by `color` when given) with CI whiskers.

    runs: (run id, label) pairs, in the picker's order, when `color` holds run labels (the
    legend keeps that order and each run its `run_color`). key: a column with the metric key,
    shown in the tooltip beside the label on the x axis. An `interval` column ("95% Wilson")
    is shown in the tooltip when present. Percent values use a fixed 0-100 axis.
    """
    data = _pct(df, [value, low, high]) if percent else df.copy()
    base = alt.Chart(data)
    # more than a few names side by side overlap, and Vega then hides every other one: slant
    slant = data[x].nunique() > 4
    x_enc = alt.X(
        f"{x}:N",
        title=x_title if x_title is not None else x,
        sort=None,
        axis=_names_axis(slant),
    )
    offset = {"xOffset": alt.XOffset(f"{color}:N", sort=None)} if color else {}
    fmt = ".1f" if percent else ".3f"
    tooltip = [
        alt.Tooltip(f"{x}:N", title=x_title or x),
        *([alt.Tooltip(f"{key}:N", title="key")] if key and key in data else []),
        *([alt.Tooltip(f"{color}:N")] if color else []),
        alt.Tooltip(f"{value}:Q", format=fmt, title=f"{value} (%)" if percent else value),
        alt.Tooltip(f"{low}:Q", format=fmt, title="CI low"),
        alt.Tooltip(f"{high}:Q", format=fmt, title="CI high"),
        *([alt.Tooltip("interval:N", title="interval")] if "interval" in data else []),
    ]
    if color:
        scale = run_scale(runs) if runs else alt.Undefined
        color_enc: Any = alt.Color(
            f"{color}:N",
            title=color,
            scale=scale,
            sort=[lbl for _, lbl in runs] if runs else None,
            legend=alt.Legend(labelLimit=0),
        )
    else:
        color_enc = alt.value(BAR_COLOR)
    y_scale = alt.Scale(domain=[0, 100]) if percent else alt.Undefined
    bars = base.mark_bar().encode(
        x=x_enc,
        y=alt.Y(f"{value}:Q", title=y_title, scale=y_scale),
        color=color_enc,
        tooltip=tooltip,
        **offset,
    )
    whiskers = (
        base.transform_filter(f"isValid(datum['{low}'])")
        .mark_rule(color="black", strokeWidth=1.5)
        .encode(x=x_enc, y=alt.Y(f"{low}:Q"), y2=alt.Y2(f"{high}:Q"), **offset)
    )
    return alt.LayerChart(layer=[bars, whiskers]).properties(title=title, height=320)


def category_bars(
    df: pd.DataFrame,
    *,
    metric_label: str,
    metric_key: str,
    title: str = "",
) -> alt.LayerChart:
    """One proportion per category, in percent on a fixed 0-100 axis, for a reader who must
    not be misled: the category's N under its name, the value printed on each bar, a 0% bar
    drawn as a visible line at 0 (a missing value draws nothing), the interval as a whisker and
    the chance level as a rule (dashed, in the warning colour; ticks per category when chance
    differs between them).

    df: CATEGORY_COLUMNS of `mirada.queries.results.category_metrics` for one metric
    (category, n, value, ci_low, ci_high, interval, chance, note).
    """
    wanted = ["category", "n", "value", "ci_low", "ci_high", "interval", "chance", "note"]
    raw = df.reindex(columns=wanted)
    data = _pct(raw, ["value", "ci_low", "ci_high", "chance"])
    data["label"] = [
        f"{c} (n={int(k)})" if not _is_missing(k) else str(c)
        for c, k in zip(data["category"], data["n"], strict=True)
    ]
    # the bar's label reads as the Results card does ("96.7%", "–" when missing)
    data["shown"] = [format_value(MetricKind.proportion, v) for v in raw["value"]]
    data["key"] = metric_key
    data[["interval", "note"]] = table_text(data[["interval", "note"]].astype(object))
    base = alt.Chart(data)
    slant = len(data) > 6  # side by side, names would overlap and Vega would drop some
    x_enc = alt.X(
        "label:N",
        title="category (N images)",
        sort=None,
        axis=_names_axis(slant),
    )
    y_scale = alt.Scale(domain=[0, 100], clamp=True)
    tooltip = [
        alt.Tooltip("category:N"),
        alt.Tooltip("n:Q", title="N"),
        alt.Tooltip("value:Q", format=".1f", title=f"{metric_label} (%)"),
        alt.Tooltip("key:N", title="key"),
        alt.Tooltip("ci_low:Q", format=".1f", title="CI low (%)"),
        alt.Tooltip("ci_high:Q", format=".1f", title="CI high (%)"),
        alt.Tooltip("interval:N", title="interval"),
        alt.Tooltip("chance:Q", format=".1f", title="chance (%)"),
        alt.Tooltip("note:N", title="note"),
    ]
    y = alt.Y("value:Q", title=f"{metric_label} (%)", scale=y_scale)
    bars = base.mark_bar(color=BAR_COLOR).encode(x=x_enc, y=y, tooltip=tooltip)
    # a 0% bar has no height: a tick at the value keeps it visible as a line on the axis
    floor = (
        base.transform_filter("isValid(datum.value)")
        .mark_tick(color=BAR_COLOR, thickness=3)
        .encode(x=x_enc, y=alt.Y("value:Q", scale=y_scale), tooltip=tooltip)
    )
    whiskers = (
        base.transform_filter("isValid(datum.ci_low)")
        .mark_rule(color="black", strokeWidth=1.5)
        .encode(x=x_enc, y=alt.Y("ci_low:Q", scale=y_scale), y2="ci_high:Q")
    )
    # The value sits on its bar (just above the bar's top, whatever the interval), over a white
    # halo that hides the whisker behind it; a missing value prints "–" on the axis.
    on_bar = alt.Y("value:Q", scale=y_scale)
    at_value = base.transform_calculate(value="isValid(datum.value) ? datum.value : 0")
    halo = at_value.mark_text(
        baseline="bottom", dy=-3, fontSize=11, stroke="white", strokeWidth=4, strokeJoin="round"
    )
    labels = at_value.mark_text(baseline="bottom", dy=-3, fontSize=11, color="black")
    layers: list[Any] = [
        bars,
        floor,
        whiskers,
        halo.encode(x=x_enc, y=on_bar, text="shown:N"),
        labels.encode(x=x_enc, y=on_bar, text="shown:N"),
    ]
    chance = pd.to_numeric(data["chance"], errors="coerce").dropna()
    # The chance level is named in a legend above the plot, never printed inside it, where
    # it would cover a bar.
    legend = alt.Legend(
        title=None,
        orient="top",
        symbolType="stroke",
        symbolStrokeColor=WARNING_COLOR,
        symbolStrokeWidth=2,
        labelLimit=0,
    )
    if not chance.empty and chance.max() - chance.min() < 0.05:  # one level (in points)
        level = pd.DataFrame({"chance": [float(chance.mean())]})
        level["text"] = f"chance {level['chance'][0]:.3g}%"
        rule = alt.Chart(level).mark_rule(color=WARNING_COLOR, strokeWidth=2, strokeDash=[6, 4])
        layers.append(
            rule.encode(
                y=alt.Y("chance:Q", scale=y_scale),
                strokeDash=alt.StrokeDash("text:N", scale=alt.Scale(range=[[6, 4]]), legend=legend),
            )
        )
    elif not chance.empty:
        layers.append(
            base.transform_filter("isValid(datum.chance)")
            .transform_calculate(what="'chance (per category)'")
            .mark_tick(color=WARNING_COLOR, thickness=2)
            .encode(
                x=x_enc,
                y=alt.Y("chance:Q", scale=y_scale),
                strokeDash=alt.StrokeDash("what:N", scale=alt.Scale(range=[[4, 3]]), legend=legend),
                tooltip=tooltip,
            )
        )
    return alt.LayerChart(layer=layers).properties(title=title, height=340)


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


TSNE_AXES: Final = (
    "t-SNE axes have no units and no meaning: only which points lie near each other does "
    "(distances between clusters and cluster sizes are not comparable)."
)


def projection_scatter(
    points: pd.DataFrame,
    *,
    title: str,
    method: str = "pca",
    explained: Sequence[float] | None = None,
    href: str | None = None,
) -> alt.Chart:
    """2-D embedding scatter coloured by category (`category_palette`: one hue each), shaped
    by kind, captions on hover; `href` links each point.

    PCA axes are titled with the share of variance each component explains (`explained`, two
    fractions); t-SNE axes carry no title and the subtitle says once that they mean nothing.
    Both axes are padded around the data, so no point is clipped at the edge."""
    cats = sorted(points["category"].astype(str).unique()) if not points.empty else []
    if method == "pca":
        shares = list(explained) if explained is not None else [None, None]
        pcs = [
            f"PC{i + 1}"
            + ("" if v is None else f" ({format_value(MetricKind.proportion, v)} of variance)")
            for i, v in enumerate(shares)
        ]
        x_title: str | None = pcs[0]
        y_title: str | None = pcs[1]
        heading = alt.TitleParams(title)
    else:
        x_title = y_title = None
        heading = alt.TitleParams(title, subtitle=TSNE_AXES)

    def axis(column: str, name: str | None) -> dict[str, Any]:
        return {
            "title": name,
            "scale": alt.Scale(domain=padded_domain(points[column]), nice=False, zero=False),
            "axis": alt.Axis(labels=False, ticks=False, grid=method == "pca", titleLimit=0),
        }

    chart = (
        alt.Chart(points)
        .mark_point(filled=True, size=40, opacity=0.75, cursor="pointer" if href else "default")
        .encode(
            x=alt.X("x:Q", **axis("x", x_title)),
            y=alt.Y("y:Q", **axis("y", y_title)),
            color=alt.Color(
                "category:N",
                title="category",
                scale=alt.Scale(domain=cats, range=category_palette(len(cats))),
                legend=alt.Legend(labelLimit=0),
            ),
            shape=alt.Shape("kind:N", title="embedding"),
            tooltip=[
                alt.Tooltip("kind:N"),
                alt.Tooltip("category:N"),
                alt.Tooltip("filename:N", title="file"),
                alt.Tooltip("text:N", title="caption"),
            ],
        )
        .properties(title=heading, height=460)
        .interactive()
    )
    return _linked(chart, href)


def confusion_matrix(df: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """Zero-shot confusion: rows true class, columns predicted, colour = share of the row."""
    base = alt.Chart(df).encode(
        x=alt.X("predicted:N", title="predicted", axis=alt.Axis(labelLimit=0, labelAngle=-45)),
        y=alt.Y("true:N", title="true", axis=alt.Axis(labelLimit=0)),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "share:Q",
            title="share of row",
            scale=alt.Scale(scheme="blues", domain=[0, 1]),
            legend=alt.Legend(format=".0%"),
        ),
        # percent with one decimal, as every proportion reads (mirada.metrics.formatting)
        tooltip=["true:N", "predicted:N", "count:Q", alt.Tooltip("share:Q", format=".1%")],
    )
    text = base.mark_text().encode(
        text="count:Q",
        color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black")),
    )
    return alt.LayerChart(layer=[rect, text]).properties(title=title, height=360)


def difference_bars(
    df: pd.DataFrame, *, title: str, runs: Sequence[tuple[int, str]] | None = None
) -> alt.Chart:
    """Per-category difference (points) of each run to the first run.

    runs: (run id, label) pairs in the picker's order, for the legend order and run colours.
    """
    data = _pct(df, ["difference"])
    order = [lbl for _, lbl in runs] if runs else None
    metric = [alt.Tooltip("label:N", title="metric"), alt.Tooltip("metric:N", title="key")]
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("category:N", title="category", axis=alt.Axis(labelAngle=0, labelLimit=0)),
            xOffset=alt.XOffset("run:N", sort=order),
            y=alt.Y("difference:Q", title="difference to first run (points)"),
            color=alt.Color(
                "run:N",
                scale=run_scale(runs) if runs else alt.Undefined,
                sort=order,
                legend=alt.Legend(labelLimit=0),
            ),
            tooltip=[
                "category:N",
                "run:N",
                *(metric if {"label", "metric"} <= set(data.columns) else []),
                alt.Tooltip("difference:Q", format="+.1f", title="difference (points)"),
            ],
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
    """Histogram of a per-image score, stacked by a boolean flag (e.g. degenerate): flagged
    images in the warning colour at the foot of each bar, the others in the bar colour, named
    in words ("degenerate" / "not degenerate") rather than true/false."""
    flagged, other = color, f"not {color}"
    data = df.dropna(subset=[value]).assign(
        **{color: lambda d: [flagged if bool(f) else other for f in d[color]]}
    )
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", bin=alt.Bin(maxbins=30), title=f"per-image {label(value)}"),
            y=alt.Y("count():Q", title="images"),
            color=alt.Color(
                f"{color}:N",
                title=None,
                scale=alt.Scale(domain=[other, flagged], range=[BAR_COLOR, WARNING_COLOR]),
                legend=alt.Legend(labelLimit=0, orient="top"),
            ),
            order=alt.Order(f"{color}:N", sort="ascending"),
            tooltip=[
                alt.Tooltip("count():Q", title="images"),
                f"{color}:N",
                alt.Tooltip(
                    f"{value}:Q", bin=alt.Bin(maxbins=30), title=f"{label(value)} ({value})"
                ),
            ],
        )
        .properties(title=title, height=260)
    )
