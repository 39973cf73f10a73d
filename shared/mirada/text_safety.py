"""User text made safe for the place it is shown: terminals, spreadsheets, Markdown.

Captions, categories, file names, dataset names, model ids and error messages are data, never
markup. Every writer passes them through one function per sink:

- `printable`: control characters (C0 except newline and tab, DEL, C1) and bidirectional
  overrides become visible escapes like `\\x1b` or `\\u202e`, so text cannot retitle a
  terminal, move its cursor or reorder what the reader sees.
- `json_safe`: the same escapes inside JSON text (json already escapes C0; not DEL, C1, bidi).
- `csv_cell`: `printable`, then a `'` before text a spreadsheet would evaluate as a formula
  (OWASP "CSV injection"); numbers stay numbers.
- `markdown_text`: `printable`, newlines folded, and every character Markdown (or
  Streamlit's `:color[...]` / `:material/...:` directives, `$` math) gives meaning to is
  backslash-escaped, so it renders exactly as typed in the dashboard. The Markdown export,
  read on GitHub or by a Markdown library, escapes only what CommonMark/GFM would misread
  (`mirada.export.markdown.markdown_literal`), so model ids keep their `-` and `:`.
"""

from __future__ import annotations

import re
from typing import TypeVar

# C0 controls except \t and \n, DEL, C1 controls; bidi embeddings/overrides/isolates
# (U+202A-U+202E, U+2066-U+2069) and the bidi marks LRM, RLM, ALM.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NONE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What json.dumps leaves raw: it escapes C0 inside strings, and C0 outside strings is the
# document's own whitespace (newlines, indentation), which must stay.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# Text starting with one of these is run as a formula by Excel, LibreOffice or Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

# ASCII punctuation with a meaning somewhere in CommonMark, GFM, or Streamlit's Markdown
# (directives `:red[x]{…}`, `$math$`, entities `&lt;`, list markers `-`, `+`, `1.`). `=` is
# left alone: with newlines folded it cannot underline a heading. Escaping a character with no
# meaning at that spot is harmless (CommonMark allows `\` before any ASCII punctuation).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&])")

T = TypeVar("T")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = True) -> str:
    """`text` with control and bidi-override characters shown as visible escapes.

    Newlines and tabs are kept (multi-line errors stay readable) unless `keep_newlines` is
    False, as in one-line table cells.
    """
    pattern = _UNSAFE if keep_newlines else _UNSAFE_KEEP_NONE
    return pattern.sub(_escape, text)


def json_safe(text: str) -> str:
    """JSON text (from json.dumps) with DEL, C1 and bidi characters as \\uXXXX escapes.

    These characters only ever occur inside JSON strings, where \\uXXXX means the same
    character, so the document parses to exactly the same value.
    """
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def is_number_text(text: str) -> bool:
    """True for text a spreadsheet reads as a plain number, such as "-0.5" or "+1e3"."""
    return _NUMBER.fullmatch(text) is not None


def csv_cell(value: T) -> T | str:
    """A cell value for any CSV this product writes.

    Text is made `printable` and, if a spreadsheet would evaluate it as a formula (it starts
    with = + - @, tab or carriage return and is not a plain number), prefixed with `'`, the
    quote spreadsheets hide and read as "this is text". A lone "-" (the missing-value mark)
    carries no formula. Non-text values (numbers, booleans, None) are returned unchanged.
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_START) and value != "-" and not is_number_text(value):
        return printable("'" + value)
    return printable(value)


def markdown_text(text: object) -> str:
    """`text` as Markdown that renders exactly as typed, on one line.

    For user text that has to sit inside a Markdown sentence (st.markdown, st.caption,
    st.error, ... in the dashboard). Never put the result in a code span:
    backslashes are literal there.
    """
    flat = printable(" ".join(str(text).split()))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)
