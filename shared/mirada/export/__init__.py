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
  chance what a random model scores, where defined; see mirada.metrics.report).
- "per_category": {category: {n_images, metrics: {name: {...}}}}.
- "timings": [{name, value, unit, batch_size}].
- "items": one dict per image with a result (see ITEM_COLUMNS), in dataset order.
- "notes": how the metrics were computed, as sentences.

JSON and CSV keep raw numbers (fractions, not percent; empty cells for missing values), since
scripts and spreadsheets compute with them; CSV text cells still go through `csv_cell`, so no
cell starts a formula. The Markdown report is for people: its values go through
`mirada.metrics.formatting.format_metric`, as on the dashboard and in `mirada show`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mirada import atomic_file
from mirada.db import read_session
from mirada.db.models import (
    Caption,
    GeneratedCaption,
    Item,
    ItemResult,
    Metric,
    Run,
)
from mirada.domain import RunStatus, Task
from mirada.errors import MiradaError
from mirada.metrics.formatting import MISSING, format_metric
from mirada.metrics.names import chance_note, metric_name, timing_name
from mirada.queries.runs import run_detail
from mirada.text_safety import csv_cell, json_safe, markdown_text, printable
from mirada.version import __version__

FORMATS = ("csv", "json", "markdown")
CSV_TABLES = ("items", "metrics", "timings", "setup")
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}

# Fixed per-item columns (CSV header order); caption_<score> and flag_<name> columns follow.
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
    "n_references",
    "references",
    "generated_caption",
)
# Run-level columns repeated on every per-item CSV row, so rows from several exported runs
# can be pasted into one sheet and still be told apart.
RUN_COLUMNS = ("run_id", "model", "dataset", "task")
REFERENCE_SEPARATOR = " || "

NOTES_RETRIEVAL = (
    "Recall@k with several captions per image: image-to-text counts a hit when any of the "
    "image's own captions is in the top k (rank = rank of its best-scoring own caption among "
    "all captions); text-to-image counts a hit when a caption's image is in the top k. "
    "Ties count against the model. MRR is the mean of 1/rank (image-to-text).",
)
NOTES_CAPTION = (
    "Caption metrics come from pycocoevalcap with the PTB tokenizer (Java): BLEU-1..4 "
    "corpus-level with the closest reference length, METEOR 1.5, ROUGE-L (LCS F-score, "
    "beta 1.2) and CIDEr-D with the IDF of this set's own references. Because of that IDF, "
    "CIDEr is comparable only between runs on the same reference set, not with published "
    "COCO numbers. Scores are on pycocoevalcap's scale (CIDEr 1.335 is the 133.5 papers "
    "report). SPICE is not computed.",
)
NOTES_BENCHMARK = (
    "Latencies are per item, measured after warm-up batches; throughput is items per second "
    "at the given batch size; memory is the peak resident memory of the worker process.",
)


def ci_note(n_resamples: int) -> str:
    return (
        "95% confidence intervals: proportions (recalls, accuracies, shares of images) use the "
        "Wilson score interval, which never shrinks to a point at 0% or 100%; MRR and other "
        f"means use percentile bootstrap intervals over images ({n_resamples:,} resamples)."
    )


# ------------------------------------------------------------------------------------------
# Reading


def _metric_entry(m: Metric) -> dict[str, Any]:
    details = m.details or {}
    has_ci = m.ci_low is not None or m.ci_high is not None
    return {
        "value": m.value,
        "ci_low": m.ci_low,
        "ci_high": m.ci_high,
        # rows stored before the method was recorded were all bootstrap intervals
        "interval_method": details.get("interval_method", "bootstrap") if has_ci else None,
        "unavailable": details.get("unavailable"),
        "chance": details.get("chance"),
        "chance_basis": details.get("chance_basis"),
        "trivial": details.get("trivial"),
    }


def _not_exportable(run_id: int, status: str, error: str | None) -> MiradaError:
    if status in (RunStatus.queued.value, RunStatus.running.value):
        return MiradaError(
            f"run {run_id} is {status}, not finished; export needs a succeeded run "
            f"(watch it with `mirada show {run_id}`)"
        )
    if status == RunStatus.failed.value:
        why = f": {error.splitlines()[0]}" if error else ""
        return MiradaError(
            f"run {run_id} failed{why}; nothing to export (re-queue it with "
            f"`mirada retry {run_id}`)"
        )
    return MiradaError(
        f"run {run_id} is {status}; only succeeded runs can be exported "
        f"(re-queue it with `mirada retry {run_id}`)"
    )


def fingerprint_sha256(fingerprint: Mapping[str, Any] | None) -> str | None:
    """A short stable id of a model fingerprint (same weights+revision+preprocessing+dtype)."""
    if not fingerprint:
        return None
    blob = json.dumps(fingerprint, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _details(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_pair(value: Any) -> tuple[int | None, float | None]:
    """[[caption_id, score], ...] -> the first pair, tolerant of missing or odd values."""
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, (list, tuple)) and len(first) >= 2:
            cid, score = first[0], first[1]
            return (int(cid) if cid is not None else None, score)
    return None, None


def build_export(run_id: int) -> dict[str, Any]:
    """Everything worth keeping about a succeeded run, as one JSON-ready dict."""
    detail = run_detail(run_id, with_captions=False)  # NotFoundError for unknown ids
    if detail["status"] != RunStatus.succeeded.value:
        raise _not_exportable(run_id, detail["status"], detail.get("error"))
    dataset_id = detail["dataset"]["id"]

    with read_session() as s:
        metric_rows = s.scalars(
            select(Metric).where(Metric.run_id == run_id).order_by(Metric.id)
        ).all()
        item_rows = s.execute(
            select(Item, ItemResult, GeneratedCaption)
            .outerjoin(ItemResult, (ItemResult.item_id == Item.id) & (ItemResult.run_id == run_id))
            .outerjoin(
                GeneratedCaption,
                (GeneratedCaption.item_id == Item.id) & (GeneratedCaption.run_id == run_id),
            )
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Item.id)
        ).all()
        caption_rows = s.execute(
            select(Caption.id, Caption.item_id, Caption.text)
            .join(Item, Item.id == Caption.item_id)
            .where(Item.dataset_id == dataset_id)
            .order_by(Caption.item_id, Caption.position, Caption.id)
        ).all()
        # Re-read the status in the same snapshot as the results (a retry could have
        # re-queued the run between run_detail and here).
        status = s.scalar(select(Run.status).where(Run.id == run_id))
    if status != RunStatus.succeeded.value:
        raise _not_exportable(run_id, str(status), None)

    caption_text: dict[int, str] = {}
    references: dict[int, list[str]] = defaultdict(list)
    for cid, item_id, text in caption_rows:
        caption_text[cid] = text
        references[item_id].append(text)

    metrics: dict[str, dict[str, Any]] = {}
    per_category: dict[str, dict[str, Any]] = {}
    category_sizes = Counter(item.category for item, _, _ in item_rows if item.category)
    for m in metric_rows:
        if m.category is None:
            metrics[m.name] = _metric_entry(m)
        else:
            entry = per_category.setdefault(
                m.category, {"n_images": category_sizes.get(m.category, 0), "metrics": {}}
            )
            entry["metrics"][m.name] = _metric_entry(m)

    items: list[dict[str, Any]] = []
    for item, result, generated in item_rows:
        if result is None and generated is None:
            continue  # benchmark runs (and images a run skipped) have no per-image result
        details = _details(result.details) if result is not None else {}
        top_id, top_score = _first_pair(details.get("top"))
        rr_id, rr_score = _first_pair(details.get("reranked"))
        refs = references.get(item.id, [])
        items.append(
            {
                "item_id": item.id,
                "position": item.position,
                "filename": item.filename,
                "category": item.category,
                "correct": result.correct if result is not None else None,
                "rank": result.rank if result is not None else None,
                "score": result.score if result is not None else None,
                "top_caption": caption_text.get(top_id) if top_id is not None else None,
                "top_caption_score": top_score,
                "reranked_top_caption": caption_text.get(rr_id) if rr_id is not None else None,
                "reranked_top_score": rr_score,
                "category_correct": details.get("category_correct"),
                "category_top1": details.get("category_top1"),
                "zeroshot_pred": details.get("zeroshot_pred"),
                "n_references": len(refs),
                "references": refs,
                "generated_caption": generated.text if generated is not None else None,
                "caption_scores": dict(generated.scores or {}) if generated is not None else {},
                "flags": dict(generated.flags or {}) if generated is not None else {},
            }
        )

    fingerprint = detail.get("model_fingerprint")
    export = {
        "mirada_version": __version__,
        "run": {
            key: detail.get(key)
            for key in (
                "id",
                "model",
                "task",
                "status",
                "device",
                "resolved_device",
                "dtype",
                "batch_size",
                "options",
                "worker",
                "attempts",
                "created",
                "started_at",
                "finished_at",
            )
        },
        "dataset": {
            "id": dataset_id,
            "name": detail["dataset"]["name"],
            "n_images": len(item_rows),
            "n_captions": len(caption_rows),
        },
        "model_fingerprint": fingerprint,
        "fingerprint_sha256": fingerprint_sha256(fingerprint),
        "hardware": detail.get("hardware"),
        "metrics": metrics,
        "per_category": per_category,
        "timings": detail.get("timings", []),
        "items": items,
    }
    export["notes"] = list(metric_notes(export))
    return export


def metric_notes(export: Mapping[str, Any]) -> Iterable[str]:
    """The sentences a reader needs to interpret this run's numbers."""
    task = export["run"].get("task")
    names = set(export.get("metrics", {}))
    tasks = {metric_name(n).task for n in names}
    has_ci = any(
        m.get("ci_low") is not None
        for m in [
            *export.get("metrics", {}).values(),
            *(
                mm
                for cat in export.get("per_category", {}).values()
                for mm in cat.get("metrics", {}).values()
            ),
        ]
    )
    if task == Task.match or Task.match in tasks:
        yield from NOTES_RETRIEVAL
    if has_ci:
        options = export["run"].get("options") or {}
        yield ci_note(int(options.get("n_resamples", 1000)))
    if task == Task.caption or Task.caption in tasks:
        yield from NOTES_CAPTION
        flagged = sum(1 for it in export.get("items", []) if it.get("flags", {}).get("degenerate"))
        with_captions = sum(1 for it in export.get("items", []) if it.get("generated_caption"))
        if with_captions:
            yield (
                f"{flagged} of {with_captions} generated captions are flagged degenerate "
                "(repeated n-grams or a verbatim repeat of another caption)."
            )
    if task == Task.benchmark:
        yield from NOTES_BENCHMARK
    for name, m in export.get("metrics", {}).items():
        if m.get("unavailable"):
            yield f"{metric_name(name).label} is unavailable: {str(m['unavailable']).rstrip('.')}."
        note = chance_note(m.get("ci_low"), m.get("ci_high"), m)
        if note:
            yield f"{metric_name(name).label} ({name}) is {note}."


# ------------------------------------------------------------------------------------------
# Rendering


def to_json(export: Mapping[str, Any]) -> str:
    return json_safe(json.dumps(export, indent=2, ensure_ascii=False, default=str)) + "\n"


def _csv_cell(column: str, value: Any) -> Any:
    """Lists and dicts flattened to text; every text cell through `csv_cell`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        value = (REFERENCE_SEPARATOR if column == "references" else "; ").join(map(str, value))
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return csv_cell(value)


def _ordered_keys(dicts: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        for key in d:
            seen.setdefault(key, None)
    return list(seen)


def item_table(export: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Per-image rows (run columns first, then ITEM_COLUMNS, caption_* and flag_*)."""
    items = export.get("items", [])
    score_keys = _ordered_keys(it.get("caption_scores", {}) for it in items)
    flag_keys = _ordered_keys(it.get("flags", {}) for it in items)
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


def metric_table(export: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Long format: overall rows (category empty) first, then per-category rows; `label` (the
    metric's human name, `mirada.metrics.names`) is the last column."""
    columns = ["run_id", "category", "n_images", "metric", "value", "ci_low", "ci_high"]
    columns += ["interval_method", "unavailable", "chance", "chance_basis", "trivial", "label"]
    run_id = export["run"]["id"]
    rows = [
        {
            "run_id": run_id,
            "category": None,
            "n_images": export["dataset"]["n_images"],
            "metric": name,
            **m,
            "label": metric_name(name).label,
        }
        for name, m in export.get("metrics", {}).items()
    ]
    for category, cat in export.get("per_category", {}).items():
        rows += [
            {
                "run_id": run_id,
                "category": category,
                "n_images": cat.get("n_images"),
                "metric": name,
                **m,
                "label": metric_name(name).label,
            }
            for name, m in cat.get("metrics", {}).items()
        ]
    return columns, rows


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


def _write_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(c, row.get(c)) for c in columns])
    return buf.getvalue()


def to_csv(export: Mapping[str, Any], table: str = "items") -> str:
    """One table as CSV: items (default), metrics (long), timings or setup (key,value)."""
    if table == "items":
        columns, rows = item_table(export)
    elif table == "metrics":
        columns, rows = metric_table(export)
    elif table == "timings":
        columns = ["run_id", "name", "value", "unit", "batch_size"]
        rows = [{"run_id": export["run"]["id"], **t} for t in export.get("timings", [])]
    elif table == "setup":
        columns = ["key", "value"]
        rows = [{"key": k, "value": v} for k, v in setup_rows(export)]
    else:
        raise MiradaError(f"unknown CSV table {table!r}; choose one of: {', '.join(CSV_TABLES)}")
    return _write_csv(columns, rows)


def format_with_ci(m: Mapping[str, Any], name: str) -> str:
    """One exported metric entry as `format_metric` shows it ('96.7% [91.7, 98.7]',
    '0.850 [0.650, 0.950]'); 'n/a' for a metric the run could not compute."""
    if m.get("value") is None and m.get("unavailable"):
        return "n/a"
    return format_metric(name, m.get("value"), m.get("ci_low"), m.get("ci_high"))


class _Markdown(str):
    """Text already escaped for Markdown (user text through `markdown_text`)."""


def _user(value: Any) -> _Markdown:
    """User text (names, categories, model ids, options) for the report: rendered as typed."""
    return _Markdown(markdown_text(MISSING if value is None else value))


def _md_cell(value: Any) -> str:
    if isinstance(value, _Markdown):
        return str(value)
    text = MISSING if value is None else printable(str(value), keep_newlines=False)
    return " ".join(text.split()).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    aligns = align or "l" + "r" * (len(header) - 1)
    lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in aligns) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


# Setup rows whose value is user text (the rest is numbers, versions and machine facts).
_USER_SETUP = frozenset({"Model", "Dataset", "Options", "Worker"})


def to_markdown(export: Mapping[str, Any]) -> str:
    """A report for a paper appendix or an issue: setup, metrics with CIs, categories, timings."""
    run = export["run"]
    ds = export["dataset"]
    setup = [(k, _user(v) if k in _USER_SETUP else v) for k, v in setup_rows(export)]
    out = [
        f"# Mirada run {run['id']}: {_user(run['model'])} on {_user(ds['name'])} ({run['task']})",
        "",
        "## Setup",
        "",
        *_md_table(["", "Value"], setup, align="ll"),
        "",
    ]
    metrics = export.get("metrics", {})
    if metrics:
        has_ci = any(m.get("ci_low") is not None for m in metrics.values())
        label = "Value [95% CI]" if has_ci else "Value"
        out += [
            "## Metrics",
            "",
            f"N = {ds['n_images']} images, {ds['n_captions']} captions.",
            "",
            *_md_table(
                ["Metric", "Key", label],
                [(metric_name(n).label, n, format_with_ci(m, n)) for n, m in metrics.items()],
                align="llr",
            ),
            "",
        ]
    per_category = export.get("per_category", {})
    if per_category:
        names = _ordered_keys(cat.get("metrics", {}) for cat in per_category.values())
        rows = [
            [
                _user(category),
                cat.get("n_images"),
                *(
                    format_with_ci(cat["metrics"][n], n) if n in cat["metrics"] else MISSING
                    for n in names
                ),
            ]
            for category, cat in per_category.items()
        ]
        header = ["Category", "N", *(metric_name(n).label for n in names)]
        out += ["## Per category", "", *_md_table(header, rows), ""]
    timings = export.get("timings", [])
    if timings:
        timing_rows = [
            (
                timing_name(t["name"]).label,
                t["name"],
                format_metric(t["name"], t["value"], unit=False),  # the Unit column has it
                t.get("unit"),
                t.get("batch_size"),
            )
            for t in timings
        ]
        out += [
            "## Timings",
            "",
            *_md_table(
                ["Timing", "Key", "Value", "Unit", "Batch size"], timing_rows, align="llrlr"
            ),
            "",
        ]
    notes = export.get("notes") or []
    if notes:
        out += ["## Notes on the metrics", "", *(f"- {_md_cell(n)}" for n in notes), ""]
    out.append(
        f"_Exported by Mirada {export.get('mirada_version')}; per-image results: "
        f"`mirada export {run['id']} --format csv`._"
    )
    return "\n".join(out) + "\n"


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
