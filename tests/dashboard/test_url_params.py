"""Ids in dashboard URLs (?run=, ?item=, ?runs=): one parser, and every page that reads one
shows its default view with a one-line notice when the value is not an id (issue 22 §5)."""

from __future__ import annotations

import pytest
from dashboard_seed import Seeded
from streamlit.testing.v1 import AppTest
from test_pages import PAGES, open_page

from mirada.dashboard import links
from mirada.domain import MAX_ID
from mirada.text_safety import markdown_text

# The parser itself (mirada.domain.parse_id) is tested in tests/test_ids.py.
NOT_IDS = ["²", "1" * 23, "-1", "1,²", "", "٣", "9" * 5000]


@pytest.mark.parametrize("value", NOT_IDS)
def test_url_id_refuses_what_is_not_an_id(value: str) -> None:
    with pytest.raises(links.BadUrlParam) as info:
        links.url_id(value, "item")
    message = str(info.value)
    assert message.startswith("Ignored the URL parameter item=") and "\n" not in message
    assert len(message) < 200  # the value is cut short: a notice is one line


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("1", 1), ("007", 7), (" 12 ", 12), (str(MAX_ID), MAX_ID)],
)
def test_url_id_reads_ids(value: str | None, expected: int | None) -> None:
    assert links.url_id(value, "run") == expected


def test_url_ids() -> None:
    assert links.url_ids(None, "runs") == []
    assert links.url_ids("3, 5,3,7", "runs") == [3, 5, 7]
    assert links.url_ids(f"1,{MAX_ID}", "runs") == [1, MAX_ID]
    for value in ["1,²", "", "1,,2", "1,", "3,-1", f"1,{'1' * 23}", "1;2"]:
        with pytest.raises(links.BadUrlParam, match=r"^Ignored the URL parameter runs="):
            links.url_ids(value, "runs")


# --- every page that reads an id from its URL, under AppTest ------------------------------

# The values the issue names; each goes into every parameter of every page.
BAD = ["²", "³", "1" * 23, "-1", "1,²", ""]
# (page, parameter it reads, the seeded run its other parameters name, if any)
READERS = [
    ("results", "run", None),
    ("results", "item", "clip"),
    ("captions", "run", None),
    ("captions", "item", "caption"),
    ("compare", "runs", None),
    ("hardware", "run", None),
    ("runs", "run", None),  # the run the inspector shows
    ("runs", "dataset", None),  # the dataset the queue form starts on
]


def _view(at: AppTest) -> tuple[object, ...]:
    """What a page chose to show, and the URL it left: pickers, subheadings, charts, query."""
    return (
        [w.value for w in at.selectbox],
        [w.value for w in at.multiselect],
        [s.value for s in at.subheader],
        len(at.get("vega_lite_chart")),
        dict(at.query_params),
    )


def _notices(at: AppTest) -> list[str]:
    return [str(n.value) for n in [*at.warning, *at.info] if "URL parameter" in str(n.value)]


@pytest.fixture(scope="module")
def defaults() -> dict[tuple[str, str | None], tuple[object, ...]]:
    """Each page's default view, opened once per module."""
    return {}


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(("page", "param", "run"), READERS)
def test_a_bad_id_shows_the_default_view_and_one_notice(
    seeded_env: Seeded,
    defaults: dict[tuple[str, str | None], tuple[object, ...]],
    page: str,
    param: str,
    run: str | None,
    value: str,
) -> None:
    base = {"run": seeded_env.runs[run]} if run else {}
    if (page, run) not in defaults:
        default = open_page(page, **base)
        assert not _notices(default)
        defaults[page, run] = _view(default)
    at = open_page(page, **base, **{param: value})  # no exception: open_page checks
    [notice] = _notices(at)
    assert notice.startswith(markdown_text(f"Ignored the URL parameter {param}={value!r}:"))
    # the same view, and the same URL: the bad value left it (the picker's choice replaced a
    # run), so the next rerun and a copied link no longer carry it
    assert _view(at) == defaults[page, run]
    assert not any(s.value.startswith("Image:") for s in at.subheader)
    at.run()  # any widget reruns the page: the notice was shown once
    assert not at.exception and not _notices(at)


@pytest.mark.parametrize(("page", "reads"), [("datasets", ()), ("runs", ("run", "dataset"))])
def test_pages_ignore_the_id_parameters_they_do_not_read(
    seeded_env: Seeded, page: str, reads: tuple[str, ...]
) -> None:
    assert page in PAGES
    bad = {"run": "²", "item": "1" * 23, "runs": "1,²", "dataset": "-1"}
    at = open_page(page, **{k: v for k, v in bad.items() if k not in reads})
    assert not _notices(at)


def test_a_bad_run_also_drops_the_item_it_named(seeded_env: Seeded) -> None:
    at = open_page("results", run="²", item=5)
    assert "item" not in at.query_params
    assert not any(s.value.startswith("Image:") for s in at.subheader)


def test_the_notice_is_text_not_markdown(seeded_env: Seeded) -> None:
    value = "**bold** :red[x] [link](http://example.com) $x$ " + "z" * 80
    with pytest.raises(links.BadUrlParam) as refused:
        links.url_id(value, "item")
    at = open_page("results", item=value)
    assert _notices(at) == [markdown_text(str(refused.value))]
    assert "\\*\\*bold\\*\\*" in _notices(at)[0] and "…" in _notices(at)[0]


def test_an_id_that_names_no_such_run_says_so(seeded_env: Seeded) -> None:
    at = open_page("results", run=999_999, item=5)
    assert "Run 999999 is not a finished match run; showing the newest." in [
        i.value for i in at.info
    ]
    assert "item" not in at.query_params  # it was an image of that run
    caption = seeded_env.runs["caption"]
    at = open_page("results", run=caption)  # a run of another task
    assert f"Run {caption} is not a finished match run; showing the newest." in [
        i.value for i in at.info
    ]
    at = open_page("hardware", run=999_999)
    assert any(i.value.startswith("Run 999999 is not a benchmark run") for i in at.info)


def test_compare_with_nothing_chosen_leaves_no_empty_parameter(seeded_env: Seeded) -> None:
    a, b = seeded_env.runs["clip"], seeded_env.runs["clip_random"]
    at = open_page("compare", runs=f"{a},{b}")
    at.multiselect(key="compare_runs").set_value([]).run()
    assert not at.exception and "runs" not in at.query_params
    at.run()
    assert not at.exception and not _notices(at)


@pytest.mark.parametrize("tab", ["²", "", "no such tab", "Per category" * 20])
def test_an_unknown_tab_opens_the_first(seeded_env: Seeded, tab: str) -> None:
    first = open_page("results").get("vega_lite_chart")
    at = open_page("results", tab=tab)  # st.tabs(bind="query-params") reads it, not our parser
    assert [c.proto.spec for c in at.get("vega_lite_chart")] == [c.proto.spec for c in first]
