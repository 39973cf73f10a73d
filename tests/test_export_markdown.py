"""The Markdown export escapes only what Markdown would misread: rendered by a CommonMark
library (markdown-it-py, with GFM tables and strikethrough), every model name, dataset name,
category and caption reads back as typed, with no link, image, emphasis, code or HTML."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hostile_text import DATASET_NAME, MARKDOWN_PAYLOADS, ROWS, import_hostile
from markdown_it import MarkdownIt
from test_export import Seeded, seeded  # noqa: F401 - the fixture

from mirada.export import build_export, to_markdown
from mirada.export.markdown import markdown_literal
from mirada.text_safety import printable

RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# Markup user text must never produce inside a cell, a heading or a list item.
LIVE_TAGS = re.compile(r"<(?!/?(?:table|thead|tbody|tr|th|td|p|h1|h2|ul|li)\b)[a-z]")

MODEL_IDS = [
    "hf-clip:mirada/demo-clip",
    "open-clip:ViT-B-32/laion2b_s34b_b79k",
    "blip-caption:Salesforce/blip-image-captioning-base",
    "hf-clip:openai/clip-vit-base-patch32@3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268",
]
CAPTIONS = [
    "a cat (a tabby) sits on a mat - next to 2 dogs: one brown",
    "__init__ and *stars* and _under_ and **bold** and a_b_c",
    "1. not a list",
    "2) nor this",
    "# not a heading",
    "> not a quote",
    "- not an item",
    "+ nor this",
    "---",
    "x | y || z",
    "AT&T &amp; &copy; &#42;",
    "~~not struck~~ ~x~",
    "$x^2$ costs $5",
    "back\\slash and trailing \\",
    "`code` and ``more``",
    "<b>bold</b> <http://x.y> <a@b.c>",
    "[ref]: http://x.y",
    "[^1] footnote",
    "line one\nline two\t tabbed",
    "!important [x] (y)",
]
TEXTS = [
    *MODEL_IDS,
    *CAPTIONS,
    *MARKDOWN_PAYLOADS,
    DATASET_NAME,
    *(text for name, category, captions in ROWS for text in (name, category, *captions)),
]


class _Text(HTMLParser):
    """The text content of rendered HTML (entities decoded), cell by cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[str] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("td", "th", "h1", "li"):
            self.cells.append("")
            self._open = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "h1", "li"):
            self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            self.cells[-1] += data


def _rendered(markdown: str) -> tuple[str, list[str]]:
    out = RENDERER.render(markdown)
    parser = _Text()
    parser.feed(out)
    return out, parser.cells


def _expected(text: str) -> str:
    """What the reader should see: the text on one line, controls as visible escapes."""
    return printable(" ".join(text.split()))


@pytest.mark.parametrize("text", TEXTS)
def test_every_text_renders_as_typed_in_a_cell_a_heading_and_a_list_item(text: str) -> None:
    safe = markdown_literal(text)
    for markdown, where in (
        (f"| a | b |\n|---|---|\n| {safe} | x |\n", "cell"),
        (f"# run 1: {safe} on {safe}\n", "heading"),
        (f"- {safe}\n", "list item"),
    ):
        out, cells = _rendered(markdown)
        assert not LIVE_TAGS.search(out), (where, out)
        want = {
            "cell": ["a", "b", _expected(text), "x"],
            "heading": [f"run 1: {_expected(text)} on {_expected(text)}"],
            "list item": [_expected(text)],
        }[where]
        assert cells == want, (where, markdown, out)


@pytest.mark.parametrize(
    "text", [*MODEL_IDS, "pets (id 2)", "a dog - running: fast (very)", "3.11.9", "-0.5", "a_b"]
)
def test_plain_text_is_left_alone(text: str) -> None:
    assert markdown_literal(text) == text


def test_escapes_are_minimal() -> None:
    assert markdown_literal("__init__") == r"\_\_init\_\_"
    assert markdown_literal("1. x") == r"1\. x" and markdown_literal("1.5 x") == "1.5 x"
    assert markdown_literal("- x") == r"\- x" and markdown_literal("-x") == "-x"
    assert markdown_literal("a | b") == r"a \| b"
    assert markdown_literal("AT&T &amp;") == r"AT&T \&amp;"


def test_hostile_report_renders_names_as_typed(
    db_url: str, mirada_home: Path, tmp_path: Path
) -> None:
    """A report on the hostile dataset: the heading, setup and per-category cells read back
    the dataset name, model id and categories exactly, and nothing in it is live markup."""
    from test_export import HARDWARE, MODEL, _claim_and_finish

    from mirada.datasets import load_items
    from mirada.queue import enqueue, register_worker
    from mirada.results import ItemOutcome, MetricValue, RunResults

    dataset_id = import_hostile(tmp_path)
    items = load_items(dataset_id)
    worker_id, profile_id = register_worker("w1", "test-host", 1, [], ["cpu"], HARDWARE)
    enqueue(dataset_id, MODEL, "match", device="cpu", dtype="fp32", batch_size=8)
    categories = sorted({it.category for it in items if it.category})
    results = RunResults(
        metrics=[
            MetricValue("i2t_recall@1", 1.0, ci_low=0.5, ci_high=1.0),
            *(MetricValue("i2t_recall@1", 1.0, category=c) for c in categories),
        ],
        items=[
            ItemOutcome(item_id=it.item_id, correct=True, rank=1, score=0.5, details={})
            for it in items
        ],
    )
    run_id = _claim_and_finish(worker_id, profile_id, results)
    md = to_markdown(build_export(run_id))
    body = md.rsplit("\n_Exported by Mirada", 1)[0]  # the footer is ours: `code`, _em_
    out, cells = _rendered(body)
    assert not LIVE_TAGS.search(out), out
    heading = f"Mirada run {run_id}: {MODEL} on {_expected(DATASET_NAME)} (match)"
    assert cells[0] == heading
    assert f"{_expected(DATASET_NAME)} (id {dataset_id})" in cells
    for category in categories:
        assert _expected(category) in cells
    assert html.unescape(out).count("<img") == 0  # the payloads' <img src=x> is text


def test_our_own_words_carry_no_escapes(seeded: Seeded) -> None:  # noqa: F811
    """Formatted values and reasons (`96.7% [91.7, 98.7]`, "per-image mean 0.200 [0.100,
    0.300]") are written as they are: no backslash anywhere in a plain report."""
    ex = build_export(seeded.caption_run)
    ex["metrics"]["BLEU-4"] |= {"per_image_mean": 0.2, "per_image_mean_ci": [0.1, 0.3]}
    md = to_markdown(ex)
    assert "per-image mean 0.200 [0.100, 0.300] (95% bootstrap) |" in md
    assert "\\" not in md
