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


def test_an_item_link_keeps_the_open_tab() -> None:
    """The share link of an item view opened from a tab brings the reader back to that tab;
    text is percent-encoded, so no "+" or "`" reaches the Markdown the link is shown in."""
    from urllib.parse import parse_qs, urlsplit

    shared = links.item_href(links.RESULTS, 2, 17, tab="Hardest images")
    assert shared == "results?run=2&item=17&tab=Hardest%20images"
    assert parse_qs(urlsplit(shared).query)["tab"] == ["Hardest images"]
    odd = links.item_href(links.RESULTS, 2, 17, tab="a`b+c&d")
    assert "`" not in odd and parse_qs(urlsplit(odd).query)["tab"] == ["a`b+c&d"]
