"""Plain-text tables for human CLI output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mirada.metrics.formatting import MISSING
from mirada.metrics.names import as_number
from mirada.text_safety import printable


def _cell(value: Any) -> str:
    """Metric and timing values arrive formatted (`format_metric`); other floats (cosines,
    speed-ups) get 4 significant digits. Missing values read as MISSING, never None or nan."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return MISSING if as_number(value) is None else f"{value:.4g}"
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
