"""Plain-text tables for human CLI output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mirada.text_safety import printable


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return printable(str(value).replace("\n", " "), keep_newlines=False)


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, width: int = 60
) -> str:
    cells = [[_cell(r.get(c))[:width] for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)
