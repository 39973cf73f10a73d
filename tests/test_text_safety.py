"""mirada.text_safety: one function per sink for user text (issue 12 items 16-18)."""

from __future__ import annotations

import json

import pytest

from mirada.text_safety import csv_cell, is_number_text, json_safe, markdown_text, printable


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cell_quotes_formulas(start: str) -> None:
    cell = csv_cell(start + 'HYPERLINK("http://x")')
    assert isinstance(cell, str) and cell.startswith("'")


@pytest.mark.parametrize("text", ["-0.5", "+3", "1e-3", "-.25", "42"])
def test_csv_cell_keeps_numbers(text: str) -> None:
    assert is_number_text(text)
    assert csv_cell(text) == text


def test_csv_cell_leaves_non_text_and_plain_text() -> None:
    assert csv_cell(-0.5) == -0.5 and csv_cell(None) is None and csv_cell(True) is True
    assert csv_cell("a cat") == "a cat" and csv_cell("-") == "-"
    assert csv_cell("-2+3") == "'-2+3" and csv_cell("-inf") == "'-inf"
    assert csv_cell("a\x1b[31mred") == "a\\x1b[31mred"


def test_printable_escapes_controls_and_bidi() -> None:
    text = "a\x1b]0;pwned\x07b\x7f\x9b\u202eevil\u202c\u2066x\u2069\tline\nnext\r"
    out = printable(text)
    assert out == (
        "a\\x1b]0;pwned\\x07b\\x7f\\x9b\\u202eevil\\u202c\\u2066x\\u2069\tline\nnext\\x0d"
    )
    assert printable("a\tb\nc", keep_newlines=False) == "a\\x09b\\x0ac"
    assert printable("ünïcode ✓ 中文") == "ünïcode ✓ 中文"


def test_json_safe_is_the_same_json() -> None:
    value = {"a": "\x7f\x85\u202e\u2069 ok", "b": ["\x1b", 1]}
    text = json_safe(json.dumps(value, indent=2, ensure_ascii=False))
    assert json.loads(text) == value
    assert not any(c in text for c in "\x7f\x85\u202e\u2069\x1b")


@pytest.mark.parametrize(
    "text",
    [
        "![x](http://127.0.0.1:9/beacon.png)",
        "[link](http://x)",
        ":red[boom] :material/home:",
        "` ![y](http://h/b.png) `",
        "<img src=x>",
        "# heading",
        "- item",
        "1. item",
        "$x^2$ ~~del~~ *em* _em_ &lt; a|b \\",
    ],
)
def test_markdown_text_escapes_every_construct(text: str) -> None:
    out = markdown_text(text)
    # every Markdown-significant character is preceded by a backslash ...
    unescaped = out
    for ch in "\\`*_{}[]()<>#+-.!|~:$&":
        unescaped = unescaped.replace("\\" + ch, "")
    assert not any(ch in unescaped for ch in "\\`*_{}[]()<>#+-.!|~:$&"), out
    # ... and removing the escapes gives back the text as typed
    assert out.replace("\\\\", "\x00").replace("\\", "").replace("\x00", "\\") == text


def test_markdown_text_is_one_printable_line() -> None:
    assert markdown_text("a\nb\r\n# c\x1b") == "a b \\# c\\\\x1b"
