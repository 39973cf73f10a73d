"""Export one finished run as JSON, CSV or a Markdown report (what `mirada export` writes).

`build_export(run_id)` reads the run with read-only queries and returns one plain dict; the
renderers (`to_json`, `to_csv`, `to_markdown`) are pure functions of that dict, and
`write_atomic` puts the text on disk without ever leaving a half-written file.

Export dict (JSON is exactly this):
- "run": id, model, task, status, device (requested), resolved_device, dtype, batch_size,
  options, worker, attempts, created/started_at/finished_at.
- "dataset": id, name, n_images, n_captions.
- "model_fingerprint" (as the adapter reported it) and "fingerprint_sha256" (short id of it).
- "hardware": the worker machine (see mirada.queries.runs.hardware_dict).
- "metrics": {name: {value, ci_low, ci_high, interval_method, unavailable, chance, chance_basis,
  trivial}} for the whole dataset (interval_method "wilson" or "bootstrap" where there is a CI;
  chance what a random model scores, where defined; see mirada.metrics.report). BLEU-n and
  METEOR add per_image_mean and per_image_mean_ci (their corpus value has no CI); CLIPScore
  and RefCLIPScore add prefix and w (mirada.metrics.clipscore.definition).
- "per_category": {category: {n_images, metrics: {name: {...}}}}.
- "timings": [{name, value, unit, batch_size}].
- "items": one dict per image with a result (see ITEM_COLUMNS), in dataset order.
- "notes": how the metrics were computed, as sentences.

JSON and CSV keep raw numbers (fractions, not percent; empty cells for missing values), since
scripts and spreadsheets compute with them; CSV is one table per file (`mirada.export.tables`:
CSV_COLUMNS), written by the same `write_csv` as the dashboard's downloads. The Markdown report
is for people: its values go through
`mirada.metrics.formatting.format_metric`, as on the dashboard and in `mirada show`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mirada import atomic_file
from mirada.errors import MiradaError
from mirada.export.build import build_export, ci_note, fingerprint_sha256, metric_notes
from mirada.export.markdown import format_with_ci, to_markdown
from mirada.export.tables import (
    CSV_COLUMNS,
    CSV_TABLES,
    ITEM_COLUMNS,
    REFERENCE_SEPARATOR,
    RUN_COLUMNS,
    csv_table,
    item_table,
    metric_table,
    run_table,
    setup_rows,
    to_csv,
    write_csv,
)
from mirada.text_safety import json_safe

__all__ = [
    "CSV_COLUMNS",
    "CSV_TABLES",
    "FORMATS",
    "ITEM_COLUMNS",
    "REFERENCE_SEPARATOR",
    "RUN_COLUMNS",
    "build_export",
    "ci_note",
    "csv_table",
    "fingerprint_sha256",
    "format_for_path",
    "format_with_ci",
    "item_table",
    "metric_notes",
    "metric_table",
    "render",
    "run_table",
    "setup_rows",
    "to_csv",
    "to_json",
    "to_markdown",
    "write_atomic",
    "write_csv",
]

FORMATS = ("csv", "json", "markdown")
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}


def to_json(export: Mapping[str, Any]) -> str:
    return json_safe(json.dumps(export, indent=2, ensure_ascii=False, default=str)) + "\n"


def render(export: Mapping[str, Any], fmt: str, *, table: str = "items") -> str:
    if fmt == "json":
        return to_json(export)
    if fmt == "csv":
        return to_csv(export, table)
    if fmt == "markdown":
        return to_markdown(export)
    raise MiradaError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def format_for_path(path: str | os.PathLike[str] | None) -> str | None:
    """The format implied by an output file's suffix (.csv, .json, .md), or None."""
    if path is None:
        return None
    return SUFFIX_FORMATS.get(Path(path).suffix.lower())


# ------------------------------------------------------------------------------------------
# Writing


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically (`mirada.atomic_file.write_atomic`)."""
    data = text.encode("utf-8")
    return atomic_file.write_atomic(path, lambda fh: fh.write(data))
