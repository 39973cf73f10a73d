"""Compare, Captions and the Results drill-down as a reader sees them (issue 23 §2): no None,
verdicts as ✓/✗, every headline metric tested or said why not, legends without empty runs."""

from __future__ import annotations

import json

import pandas as pd
from dashboard_seed import Seeded
from streamlit.testing.v1 import AppTest
from test_pages import APP, PAGES, open_page, texts

from mirada.dashboard import charts
from mirada.metrics import names
from mirada.queries.compare import BALANCED_WHY, T2I_WHY
from mirada.text_safety import markdown_text


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def _cells(df: pd.DataFrame) -> list[str]:
    return [str(v) for v in df.astype(object).to_numpy().ravel()]


def test_compare_tests_every_headline_metric(seeded_env: Seeded) -> None:
    a, b = seeded_env.runs["clip"], seeded_env.runs["clip_random"]
    at = open_page("compare", runs=f"{a},{b}")
    tested = [m.value for m in at.markdown if " — " in m.value and "p = " in m.value]
    for key in (*(names.i2t_recall(k) for k in names.RECALL_KS), names.MRR,
                names.CATEGORY_ACCURACY, names.ZEROSHOT_ACCURACY):  # fmt: skip
        assert sum(f"**{names.label(key)}** — " in m for m in tested) == 1, key
    shown = texts(at)
    t2i = ", ".join(names.label(names.t2i_recall(k)) for k in names.RECALL_KS)
    assert t2i in shown and "runs store no per\\-caption ranks" in shown  # one line, three keys
    assert markdown_text(names.label(names.ZEROSHOT_BALANCED_ACCURACY)) in shown
    assert T2I_WHY and BALANCED_WHY  # the reasons the query table gives


def test_difference_legend_leaves_out_the_reference(seeded_env: Seeded) -> None:
    ref, other = seeded_env.runs["clip"], seeded_env.runs["clip_random"]
    at = open_page("compare", runs=f"{ref},{other}")
    (diff,) = [s for s in _specs(at) if "minus" in json.dumps(s.get("title", ""))]
    domain = diff["encoding"]["color"]["scale"]["domain"]
    assert len(domain) == 1 and domain[0].startswith(f"#{other} ")


def test_compare_with_one_run_says_so(seeded_env: Seeded) -> None:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGES["compare"])
    at.run()
    at.segmented_control(key="compare_task").set_value("caption").run()  # one caption run
    assert not at.exception
    shown = texts(at)
    assert "Only one finished caption run" in shown and "Pick at least two" not in shown
    (link,) = at.get("page_link")
    assert link.proto.query_string == f"run={seeded_env.runs['caption']}"


def test_disagreements_are_paged(seeded_env: Seeded) -> None:
    a, b = seeded_env.runs["clip"], seeded_env.runs["clip_random"]
    at = open_page("compare", runs=f"{a},{b}")
    pager = at.number_input(key="compare_disagree_page")
    first = at.dataframe[-1].value
    assert len(first) == 20 and pager.max > 1
    pager.set_value(2).run()
    second = at.dataframe[-1].value
    assert not set(first["item_id"]) & set(second["item_id"])
    assert pager.label == f"Page (of {int(pager.max)}, 20 images each)"


def test_captions_corpus_table_has_no_none_and_says_why_no_interval(seeded_env: Seeded) -> None:
    at = open_page("captions")
    table = at.table[0].value.set_index("key")
    cells = _cells(table.reset_index())
    assert not [c for c in cells if c in ("None", "nan", "NaN", "")], cells
    for key in (names.BLEU_4, names.METEOR):
        if table.loc[key, "value"] != "unavailable":
            assert table.loc[key, "95% interval"].startswith("corpus-level score"), key
    assert "per-image mean" in table.loc[names.BLEU_4, "95% interval"]
    assert table.loc[names.CIDER, "95% interval"].startswith("[")  # the bootstrap CI itself
    assert table.loc[names.DEGENERATE_SHARE, "value"].endswith("%")  # a share, in percent
    (hist,) = _specs(at)
    assert charts.WARNING_COLOR in hist["encoding"]["color"]["scale"]["range"]


def test_card_names_wrap_and_drilldown_verdicts_read_as_ticks(seeded_copy: Seeded) -> None:
    at = open_page("results", tab="Drill-down")
    names_shown = [m.value for m in at.markdown]
    assert f"**{names.label(names.ZEROSHOT_BALANCED_ACCURACY)}**" in names_shown
    table = at.dataframe[0].value
    assert set(table["correct"]) <= {"✓", "✗"} and set(table["correct"]) == {"✓", "✗"}
    assert set(table["category_correct"]) <= {"✓", "✗", charts.MISSING}


def test_captions_show_how_they_were_generated(seeded_env: Seeded) -> None:
    from mirada.queries.captions import generation_options

    options = generation_options(seeded_env.runs["caption"])
    assert options  # decoding and max new tokens at least
    at = open_page("captions")
    (line,) = [c.value for c in at.caption if c.value.startswith("Generated with ")]
    for key, value in options.items():
        assert f"{markdown_text(key)}: **{markdown_text(value)}**" in line
