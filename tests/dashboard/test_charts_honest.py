"""Per-category charts that cannot mislead, one colour per run, no None in tables; and the
Results query columns that feed them (interval method, chance, N)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
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
    assert len(_layers(spec)) == 5  # bars, 0% tick, whiskers, labels, chance ticks


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
