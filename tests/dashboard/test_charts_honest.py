"""Per-category charts that cannot mislead, one colour per run, no None in tables; and the
Results query columns that feed them (interval method, chance, N)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pandas as pd
import pytest
from dashboard_seed import Seeded

from mirada.dashboard import charts
from mirada.queries import results


def _spec(chart: Any) -> dict[str, Any]:
    return json.loads(chart.to_json())


def _layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["layer"]


def _per_category(chance: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "category": ["circle", "square", "star", "triangle"],
            "metric": "zeroshot_accuracy",
            "label": "Zero-shot accuracy",
            "n": [33, 30, 28, 29],
            "value": [0.0, 0.5, 1.0, None],
            "ci_low": [0.0, 0.33, 0.88, None],
            "ci_high": [0.104, 0.67, 1.0, None],
            "interval": ["95% Wilson", "95% Wilson", "95% Wilson", None],
            "chance": chance,
            "note": [None, "within chance (25% for 4 classes)", None, None],
        }
    )


def test_run_colour_is_fixed_per_run_id() -> None:
    assert charts.run_color(7) == charts.run_color(7) == charts.RUN_PALETTE[6]
    assert charts.run_color(11) == charts.run_color(1)
    assert len({charts.run_color(i) for i in range(20, 30)}) == 10  # ten in a row all differ
    scale = charts.run_scale([(9, "#9 b"), (2, "#2 a")]).to_dict()
    assert scale["domain"] == ["#9 b", "#2 a"]  # the picker's order, not sorted
    assert scale["range"] == [charts.run_color(9), charts.run_color(2)]


def test_category_bars_axis_labels_zero_and_chance() -> None:
    spec = _spec(
        charts.category_bars(
            _per_category([0.25] * 4), metric_label="Zero-shot accuracy", metric_key="z"
        )
    )
    layers = _layers(spec)
    bars = layers[0]
    assert bars["encoding"]["y"]["scale"]["domain"] == [0, 100]
    assert bars["encoding"]["x"]["axis"]["labelLimit"] == 0
    data = next(d for d in spec["datasets"].values() if "label" in d[0])
    assert [d["label"] for d in data] == [
        "circle (n=33)",
        "square (n=30)",
        "star (n=28)",
        "triangle (n=29)",
    ]
    # 0 is printed as 0; labels read as the Results cards (format_metric)
    assert [d["shown"] for d in data] == ["0.0%", "50.0%", "100.0%", "–"]
    assert all(d["interval"] != "None" and d["note"] is not None for d in data)
    marks = [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
        for layer in layers
    ]
    assert "tick" in marks and "text" in marks  # the 0% tick and the value labels
    levels = [d for d in spec["datasets"].values() if set(d[0]) == {"chance", "text"}]
    assert levels == [[{"chance": 25.0, "text": "chance 25%"}]]  # one chance rule, labelled
    assert "rule" in marks
    titles = {t.get("title") for t in bars["encoding"]["tooltip"]}
    assert {"key", "N", "interval", "chance (%)"} <= titles


def test_category_bars_varying_chance_draws_ticks_per_category() -> None:
    spec = _spec(
        charts.category_bars(
            _per_category([0.1, 0.2, 0.3, 0.4]), metric_label="R@1", metric_key="i2t_recall@1"
        )
    )
    assert not [d for d in spec["datasets"].values() if set(d[0]) == {"chance", "text"}]
    # bars, 0% tick, whiskers, label halo, labels, chance ticks (named in the legend)
    assert len(_layers(spec)) == 6
    ticks = _layers(spec)[-1]
    assert ticks["encoding"]["strokeDash"]["legend"]["orient"] == "top"


def test_table_text_shows_no_none() -> None:
    df = pd.DataFrame({"a": ["x", None, float("nan")], "b": [1.0, None, 2.0]})
    out = charts.table_text(df)
    assert out["a"].tolist() == ["x", charts.MISSING, charts.MISSING]
    assert out["b"].isna().tolist() == [False, True, False]  # numbers stay numbers
    assert charts.MISSING not in df["a"].tolist()  # the input is left alone


def test_results_queries_carry_interval_chance_and_n(seeded_env: Seeded) -> None:
    run = seeded_env.runs["clip"]
    per = results.category_metrics(run)
    assert set(per["metric"]) == {"i2t_recall@1", "category_accuracy", "zeroshot_accuracy"}
    assert list(per.columns) == results.CATEGORY_COLUMNS
    assert (per["interval"] == "95% Wilson").all() and per["n"].notna().all()
    zs = per[per["metric"] == "zeroshot_accuracy"]
    assert zs["chance"].round(6).nunique() == 1
    head = results.headline_metrics(run).set_index("name")
    assert head.loc["i2t_recall@1", "interval"] == "95% Wilson"
    assert head.loc["mrr", "interval"] == "95% bootstrap"
    assert head.loc["mrr", "chance"] is None or pd.isna(head.loc["mrr", "chance"])


def _marks(spec: dict[str, Any]) -> list[str]:
    return [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
        for layer in _layers(spec)
    ]


def test_value_labels_sit_on_the_bar_not_the_whisker() -> None:
    """A 0% category with an interval up to 10% prints "0.0%" at 0, not at the whisker's top."""
    spec = _spec(charts.category_bars(_per_category([0.25] * 4), metric_label="Z", metric_key="z"))
    texts = [layer for layer in _layers(spec) if _marks({"layer": [layer]}) == ["text"]]
    assert len(texts) == 2  # the white halo under the label, then the label
    for layer in texts:
        assert layer["encoding"]["y"]["field"] == "value"  # the bar's top, not ci_high
        assert layer["encoding"]["text"]["field"] == "shown"
        assert layer["mark"]["baseline"] == "bottom" and layer["mark"]["dy"] < 0
    halo, label = texts
    assert halo["mark"]["stroke"] == "white" and "stroke" not in label["mark"]
    # a missing value's "–" sits at 0 (the calculate), never at an undefined height
    calc = [t for layer in texts for t in layer.get("transform", []) if "calculate" in t]
    assert calc and all(t["as"] == "value" for t in calc)


def test_chance_is_named_in_a_legend_not_over_the_last_bar() -> None:
    spec = _spec(charts.category_bars(_per_category([0.25] * 4), metric_label="Z", metric_key="z"))
    for layer in _layers(spec):  # no text pinned to the plot's right edge
        x = layer.get("encoding", {}).get("x", {})
        assert x.get("value") != "width"
    (rule,) = [layer for layer in _layers(spec) if "strokeDash" in layer.get("encoding", {})]
    legend = rule["encoding"]["strokeDash"]["legend"]
    assert legend["orient"] == "top" and legend["symbolStrokeColor"] == charts.WARNING_COLOR
    assert rule["encoding"]["strokeDash"]["field"] == "text"  # "chance 25%"


def _hue(colour: str) -> float:
    import colorsys

    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hls(r, g, b)[0] * 360


@pytest.mark.parametrize("n", [2, 4, 7, 10, 16])
def test_category_palette_has_distinct_hues(n: int) -> None:
    palette = charts.category_palette(n)
    assert len(palette) == len(set(palette)) == n
    hues = sorted(_hue(c) for c in palette)
    gaps = [b - a for a, b in itertools.pairwise(hues)] + [360 - hues[-1] + hues[0]]
    assert min(gaps) >= 360 / n - 2  # evenly spread: no two colours of one hue (no pairs)


def _points() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [-3.0, 0.0, 5.0, 1.0],
            "y": [10.0, 12.0, 11.0, 20.0],
            "kind": "image",
            "category": ["a", "b", "c", "d"],
            "filename": "f.png",
            "text": "t",
        }
    )


def test_pca_axes_carry_explained_variance_and_no_point_is_clipped() -> None:
    spec = _spec(
        charts.projection_scatter(_points(), title="PCA", method="pca", explained=(0.231, 0.1))
    )
    enc = spec["encoding"]
    assert enc["x"]["title"] == "PC1 (23.1% of variance)"
    assert enc["y"]["title"] == "PC2 (10.0% of variance)"
    for axis, values in (("x", _points()["x"]), ("y", _points()["y"])):
        lo, hi = enc[axis]["scale"]["domain"]
        assert lo < values.min() and hi > values.max()  # padded: edge points drawn whole
        assert enc[axis]["scale"]["nice"] is False and enc[axis]["scale"]["zero"] is False
    colours = enc["color"]["scale"]
    assert colours["domain"] == ["a", "b", "c", "d"]
    assert colours["range"] == charts.category_palette(4)


def test_tsne_says_once_that_its_axes_mean_nothing() -> None:
    spec = _spec(charts.projection_scatter(_points(), title="t-SNE", method="tsne"))
    assert spec["title"]["subtitle"] == charts.TSNE_AXES
    assert "title" not in spec["encoding"]["x"] or spec["encoding"]["x"]["title"] is None


def test_degenerate_bars_are_coloured_to_be_seen() -> None:
    df = pd.DataFrame({"CIDEr": [0.1, 0.5, 0.9, 1.2], "degenerate": [True, False, False, True]})
    spec = _spec(charts.score_histogram(df, value="CIDEr", color="degenerate", title="t"))
    scale = spec["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True)) == {
        "not degenerate": charts.BAR_COLOR,
        "degenerate": charts.WARNING_COLOR,
    }
    (data,) = spec["datasets"].values()
    assert [d["degenerate"] for d in data] == [
        "degenerate", "not degenerate", "not degenerate", "degenerate"
    ]  # fmt: skip


def test_verdicts_read_as_ticks_and_crosses() -> None:
    assert [charts.verdict(v) for v in (True, False, None, float("nan"))] == [
        "✓", "✗", charts.MISSING, charts.MISSING
    ]  # fmt: skip


def test_no_axis_label_is_dropped_for_overlapping() -> None:
    """Eleven metric names side by side: slanted, and every one drawn (Vega hides overlaps)."""
    df = pd.DataFrame({"label": [f"metric number {i}" for i in range(11)], "value": 0.5})
    df["ci_low"], df["ci_high"] = 0.4, 0.6
    axis = _spec(charts.bars_with_ci(df, x="label"))["layer"][0]["encoding"]["x"]["axis"]
    assert axis["labelOverlap"] is False and axis["labelAngle"] == -30
    few = _spec(charts.category_bars(_per_category([0.25] * 4), metric_label="Z", metric_key="z"))
    axis = few["layer"][0]["encoding"]["x"]["axis"]
    assert axis["labelOverlap"] is False and axis["labelAngle"] == 0
    assert charts.table_height(3) == 35 + 3 * 35 + 3
