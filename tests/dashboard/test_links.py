"""Where the dashboard's links lead (pure functions, no Streamlit)."""

from __future__ import annotations

from mirada.dashboard import links


def test_a_run_opens_the_page_of_its_task() -> None:
    assert links.run_href("match", 2) == "results?run=2"
    assert links.run_href("caption", 5) == "captions?run=5"
    assert links.run_href("benchmark", 7) == "hardware?run=7"


def test_item_and_compare_links() -> None:
    assert links.item_href(links.RESULTS, 2, 17) == "results?run=2&item=17"
    assert links.item_href(links.CAPTIONS, 4, 1) == "captions?run=4&item=1"
    assert links.compare_href([3, 1]) == "compare?runs=3,1"
    expr = links.item_href_expr(links.RESULTS, 2)
    assert expr == '"results?run=2&item=" + datum["item_id"]'
