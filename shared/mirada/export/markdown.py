"""The Markdown export: a report for a paper appendix or an issue, for people to read.

Values go through `mirada.metrics.formatting` (as on the dashboard and in `mirada show`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mirada.export.tables import ordered_keys, setup_rows
from mirada.metrics.formatting import MISSING, format_metric
from mirada.metrics.names import metric_name, timing_name
from mirada.text_safety import markdown_text, printable


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
        names = ordered_keys(cat.get("metrics", {}) for cat in per_category.values())
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
