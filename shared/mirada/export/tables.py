"""The CSV export: one table per file (`mirada export RUN --format csv --table T`).

Each table is (columns, rows) from the export dict; `to_csv` writes it with every cell through
`csv_value`, the one cell writer shared with the dashboard's downloads: booleans
`true`/`false`, missing values empty, lists joined, dicts as JSON, and every text cell through
`mirada.text_safety.csv_cell`, so no cell starts a formula. Numbers stay raw (fractions, not
percent): scripts and spreadsheets compute with them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mirada.errors import MiradaError
from mirada.export.build import build_export
from mirada.metrics.formatting import MISSING
from mirada.metrics.names import metric_name
from mirada.metrics.probe import ITEM_KEYS
from mirada.text_safety import csv_cell

ITEM_COLUMNS = (
    "item_id",
    "position",
    "filename",
    "category",
    "correct",
    "rank",
    "score",
    "top_caption",
    "top_caption_score",
    "reranked_top_caption",
    "reranked_top_score",
    "category_correct",
    "category_top1",
    "zeroshot_pred",
    "zeroshot_prob",
    *(key for pair in ITEM_KEYS.values() for key in pair),
    "n_references",
    "references",
    "generated_caption",
)
# Run-level columns repeated on every per-item CSV row, so rows from several exported runs
# can be pasted into one sheet and still be told apart.
RUN_COLUMNS = ("run_id", "model", "dataset", "task")
REFERENCE_SEPARATOR = " || "


def csv_value(column: str, value: Any) -> Any:
    """One cell of any CSV Mirada writes (exports and the dashboard's downloads): missing
    (None, NaN) empty, booleans `true`/`false`, lists joined (`references` by " || ", others by
    "; "), dicts as JSON, every text cell through `csv_cell`; numbers stay raw."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        value = (REFERENCE_SEPARATOR if column == "references" else "; ").join(map(str, value))
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return csv_cell(value)


def ordered_keys(dicts: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        for key in d:
            seen.setdefault(key, None)
    return list(seen)


def item_table(export: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Per-image rows (run columns first, then ITEM_COLUMNS, caption_* and flag_*)."""
    items = export.get("items", [])
    score_keys = ordered_keys(it.get("caption_scores", {}) for it in items)
    flag_keys = ordered_keys(it.get("flags", {}) for it in items)
    columns = [
        *RUN_COLUMNS,
        *ITEM_COLUMNS,
        *(f"caption_{k}" for k in score_keys),
        *(f"flag_{k}" for k in flag_keys),
    ]
    run = export["run"]
    base = {
        "run_id": run["id"],
        "model": run["model"],
        "dataset": export["dataset"]["name"],
        "task": run["task"],
    }
    rows = []
    for it in items:
        row = {**base, **{c: it.get(c) for c in ITEM_COLUMNS}}
        row.update({f"caption_{k}": it.get("caption_scores", {}).get(k) for k in score_keys})
        row.update({f"flag_{k}": it.get("flags", {}).get(k) for k in flag_keys})
        rows.append(row)
    return columns, rows


METRIC_COLUMNS = (
    "run_id",
    "category",
    "n_images",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "interval_method",
    "unavailable",
    "chance",
    "chance_basis",
    "trivial",
    "per_image_mean",
    "per_image_mean_ci_low",
    "per_image_mean_ci_high",
    "prefix",
    "w",
    "label",
)


def _metric_row(
    run_id: Any, category: str | None, n_images: Any, name: str, m: Mapping[str, Any]
) -> dict[str, Any]:
    ci = m.get("per_image_mean_ci")
    lo, hi = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    return {
        **{k: v for k, v in m.items() if k != "per_image_mean_ci"},
        "run_id": run_id,
        "category": category,
        "n_images": n_images,
        "metric": name,
        "per_image_mean_ci_low": lo,
        "per_image_mean_ci_high": hi,
        "label": metric_name(name).label,
    }


def metric_table(export: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Long format (METRIC_COLUMNS): overall rows (category empty) first, then per-category
    rows. per_image_mean* only for BLEU-n and METEOR (their corpus value has no CI), prefix and
    w only for CLIPScore and RefCLIPScore; `label` (the metric's human name) is last."""
    run_id = export["run"]["id"]
    n = export["dataset"]["n_images"]
    rows = [_metric_row(run_id, None, n, k, m) for k, m in export.get("metrics", {}).items()]
    for category, cat in export.get("per_category", {}).items():
        rows += [
            _metric_row(run_id, category, cat.get("n_images"), k, m)
            for k, m in cat.get("metrics", {}).items()
        ]
    return list(METRIC_COLUMNS), rows


def _text(value: Any) -> str:
    """A setup value as text; a missing one as MISSING, never "None"."""
    return MISSING if value is None else str(value)


def setup_rows(export: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs describing what ran where; shared by the Markdown and CSV setup."""
    run = export["run"]
    fp = export.get("model_fingerprint") or {}
    hw = export.get("hardware") or {}
    ds = export["dataset"]
    device = run.get("resolved_device") or run.get("device")
    if run.get("resolved_device") and run.get("device") not in (None, run["resolved_device"]):
        device = f"{run['resolved_device']} (requested {run['device']})"
    rows = [
        ("Run", str(run["id"])),
        ("Task", _text(run.get("task"))),
        ("Model", _text(run.get("model"))),
        ("Model family", str(fp.get("family") or MISSING)),
        ("Model revision", str(fp.get("revision") or MISSING)),
        ("Model fingerprint", str(export.get("fingerprint_sha256") or MISSING)),
        ("Dataset", f"{ds['name']} (id {ds['id']})"),
        ("Images / captions", f"{ds['n_images']} / {ds['n_captions']}"),
        ("Device", _text(device)),
        ("dtype", _text(run.get("dtype"))),
        ("Batch size", _text(run.get("batch_size"))),
    ]
    if run.get("options"):
        rows.append(("Options", json.dumps(run["options"], sort_keys=True)))
    if hw:
        cpu = (
            f"{_text(hw.get('cpu_model'))} ({_text(hw.get('cpu_cores'))} cores), "
            f"{_text(hw.get('ram_gb'))} GB RAM"
        )
        rows.append(("CPU", cpu))
        gpu = hw.get("gpu_name")
        if gpu:
            mem = f", {hw['gpu_memory_gb']} GB" if hw.get("gpu_memory_gb") else ""
            rows.append(("GPU", f"{gpu}{mem}"))
        rows.append(("OS", _text(hw.get("os"))))
        software = ", ".join(
            f"{name} {hw[key]}"
            for name, key in (
                ("Python", "python"),
                ("torch", "torch"),
                ("CUDA", "cuda"),
                ("transformers", "transformers"),
                ("open_clip", "open_clip"),
            )
            if hw.get(key)
        )
        rows.append(("Software", software or MISSING))
    rows += [
        ("Worker", str(run.get("worker") or MISSING)),
        ("Finished", str(run.get("finished_at") or MISSING)),
        ("Mirada", _text(export.get("mirada_version"))),
    ]
    return rows


TIMING_COLUMNS = ("run_id", "name", "value", "unit", "batch_size")
SETUP_COLUMNS = ("key", "value")
# The fixed columns of each table, in order: the README's "CSV export" table lists the same (a
# test reads it). The items table adds caption_<score> and flag_<name> after these.
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "items": (*RUN_COLUMNS, *ITEM_COLUMNS),
    "metrics": METRIC_COLUMNS,
    "timings": TIMING_COLUMNS,
    "setup": SETUP_COLUMNS,
}
CSV_TABLES = tuple(CSV_COLUMNS)


def write_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV text of a table: header, then one line per row, every cell by `csv_value`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([csv_value(c, row.get(c)) for c in columns])
    return buf.getvalue()


def csv_table(export: Mapping[str, Any], table: str) -> tuple[list[str], list[dict[str, Any]]]:
    """One of CSV_TABLES as (columns, rows): items, metrics (long), timings or setup."""
    if table == "items":
        return item_table(export)
    if table == "metrics":
        return metric_table(export)
    if table == "timings":
        rows = [{"run_id": export["run"]["id"], **t} for t in export.get("timings", [])]
        return list(TIMING_COLUMNS), rows
    if table == "setup":
        return list(SETUP_COLUMNS), [{"key": k, "value": v} for k, v in setup_rows(export)]
    raise MiradaError(f"unknown CSV table {table!r}; choose one of: {', '.join(CSV_TABLES)}")


def to_csv(export: Mapping[str, Any], table: str = "items") -> str:
    """One table as CSV (`mirada export --format csv --table TABLE`)."""
    return write_csv(*csv_table(export, table))


def run_table(run_id: int, table: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Table `table` of a succeeded run, as `mirada export RUN --format csv --table TABLE`
    writes it: the dashboard's downloads of a run's per-image results and metrics use this, so
    both have one schema (`write_csv` gives the same bytes)."""
    return csv_table(build_export(run_id), table)
