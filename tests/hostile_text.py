"""A dataset whose names, captions and categories are hostile text (issue 12 items 16-18).

Spreadsheet formulas at the start of cells, Markdown that would fetch an image, link, colour
or break out of a code span, raw HTML, terminal escapes (OSC retitle, CSI) and bidi overrides.
Imported through the real importer, so the test sees what the product really stores.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from data_import.builders import solid, write_files

from mirada.datasets import import_dataset

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
OSC_TITLE = "\x1b]0;pwned\x07"
CSI = "\x1b[2J\x1b[31m"
BIDI = "\u202eevil\u202c\u2066x\u2069"
BEACON = "![x](http://127.0.0.1:9/beacon.png)"
LINK = "[link](http://x)"
COLOUR = ":red[boom]"
BREAKOUT = "` ![y](http://127.0.0.1:9/b2.png) `"
HTML = "<img src=x>"
MARKDOWN_PAYLOADS = (BEACON, LINK, COLOUR, BREAKOUT, HTML)
DATASET_NAME = "=HYPERLINK(x) " + COLOUR + " \u202edemo"

# Raw bytes no output may carry: C0 except \t \n, DEL, C1 and bidi controls.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# (file name, category, captions); each caption has at least four words (the dashboard seed
# derives generated captions from them).
ROWS = [
    ("=cmd.png", "=cat " + OSC_TITLE, ["=1+1 a cat on " + BEACON, "+cmd|calc a small cat"]),
    ("+plus.png", "+cat " + CSI, ["-2+3 a cat " + LINK, "@SUM(A1) a sleepy cat"]),
    ("-minus.png", "-dog " + BIDI, ["\tTAB a dog " + COLOUR, "a dog with a ball " + HTML]),
    ("@at.png", "@dog " + BREAKOUT, ["\rCR a dog " + BREAKOUT, "a brown dog " + OSC_TITLE + CSI]),
]


def write_hostile_folder(folder: Path) -> Path:
    images = {name: solid((10 * i, 90, 200)) for i, (name, _, _) in enumerate(ROWS)}
    # JSON Lines (Hugging Face imagefolder): a CSV with this many control bytes is refused as
    # binary, while JSON carries them as escapes.
    lines = [
        json.dumps({"file_name": name, "text": cap, "category": cat})
        for name, cat, caps in ROWS
        for cap in caps
    ]
    return write_files(folder, {**images, "metadata.jsonl": "\n".join(lines).encode()})


def import_hostile(tmp_path: Path) -> int:
    """Import the hostile dataset into the current MIRADA_HOME; returns its id."""
    return import_dataset(write_hostile_folder(tmp_path / "hostile"), name=DATASET_NAME).id


def unescaped(markdown: str) -> str:
    """Markdown with every backslash-escaped character removed: what is left can be live."""
    return re.sub(r"\\.", "", markdown)


def live_markdown(markdown: str) -> list[str]:
    """The hostile constructs still live in `markdown` (an empty list when all are escaped)."""
    rest = unescaped(markdown)
    found = [p for p in ("![", "](", ":red[", "<img", "`") if p in rest]
    return found + ([m.group()] if (m := CONTROL.search(markdown)) else [])


def unsafe_csv_cells(text: str) -> list[str]:
    """Cells of CSV `text` a spreadsheet would run as a formula, and raw control characters.

    A cell may start with = + - @ tab or CR only if it is a plain number (or the lone "-"
    missing-value mark)."""
    from mirada.text_safety import is_number_text

    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    bad = [c for c in cells if c.startswith(FORMULA_STARTS) and c != "-" and not is_number_text(c)]
    return bad + ([m.group()] if (m := CONTROL.search(text)) else [])
