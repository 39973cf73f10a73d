"""The Markdown export: a report for a paper appendix or an issue, for people to read.

Values go through `mirada.metrics.formatting` (as on the dashboard and in `mirada show`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mirada.export.tables import ordered_keys, setup_rows
from mirada.metrics.formatting import MISSING, format_metric, no_interval_reason
from mirada.metrics.names import interval_label, metric_name, timing_name
from mirada.text_safety import printable


def format_with_ci(m: Mapping[str, Any], name: str) -> str:
    """One exported metric entry as `format_metric` shows it ('96.7% [91.7, 98.7]',
    '0.850 [0.650, 0.950]'); 'n/a' for a metric the run could not compute."""
    if m.get("value") is None and m.get("unavailable"):
        return "n/a"
    return format_metric(name, m.get("value"), m.get("ci_low"), m.get("ci_high"))


# Characters that start Markdown syntax wherever they stand: code spans, emphasis, links and
# images, raw HTML and autolinks, table cells, GFM strikethrough, math on GitHub, and `\\`.
_ALWAYS = re.compile(r"([\\`*\[\]<|~$])")
# `_` opens or closes emphasis only at a word boundary: snake_case and model ids stay as typed.
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")  # `&amp;` would render as `&`
# What makes a line a block (heading, quote, list item, thematic break) where the text starts
# one, e.g. a list item's text: `# x`, `> x`, `- x`, `+ x`, `--`, `1. x`, `1) x`.
_LEADING = re.compile(r"^(?:#{1,6}(?=\s|$)|>|[-+](?=[\s+-]|$))")
_ORDERED = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")


def markdown_literal(text: object) -> str:
    """`text` as CommonMark/GFM that renders as exactly this text, on one line.

    Only what Markdown would misread is backslash-escaped (see the patterns above), so
    `hf-clip:mirada/demo-clip (id 2)` stays as typed while `*`, `[`, `<`, `|`, `` ` `` and a
    leading `# ` do not become markup. Control and bidi characters become visible escapes
    (`mirada.text_safety.printable`) and whitespace runs one space. For the exported report,
    which GitHub or a Markdown library renders; the dashboard's Streamlit Markdown has more
    syntax (`:red[...]`, `:material/...:`) and uses `mirada.text_safety.markdown_text`.
    """
    flat = printable(" ".join(str(text).split()))
    out = _ALWAYS.sub(r"\\\1", flat)
    out = _UNDERSCORE.sub(r"\\_", out)
    out = _ENTITY.sub(r"\\&", out)
    out = _ORDERED.sub(r"\1\\\2", out)
    return _LEADING.sub(lambda m: "\\" + m.group(), out)


class _Markdown(str):
    """Markdown written here (formatted numbers, headers): put in the report as it is."""


def _md_cell(value: Any) -> str:
    """One table cell or line: our own Markdown as is, any other text (model ids, names,
    categories, stored reasons) through `markdown_literal`."""
    if isinstance(value, _Markdown):
        return str(value)
    return markdown_literal(MISSING if value is None else value)


def _interval(name: str, m: Mapping[str, Any]) -> str:
    """'95% Wilson' / '95% bootstrap', or why the metric has none (our words, as they are;
    a stored `unavailable` reason is text from the run, escaped like any other)."""
    if m.get("ci_low") is not None and m.get("ci_high") is not None:
        return interval_label(m)
    if m.get("unavailable"):
        return no_interval_reason(name, m)
    if m.get("value") is None:
        return MISSING
    return _Markdown(no_interval_reason(name, m))


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    aligns = align or "l" + "r" * (len(header) - 1)
    lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in aligns) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def to_markdown(export: Mapping[str, Any]) -> str:
    """A report for a paper appendix or an issue: setup, metrics with CIs, categories, timings."""
    run = export["run"]
    ds = export["dataset"]
    model, dataset = markdown_literal(run["model"]), markdown_literal(ds["name"])
    out = [
        f"# Mirada run {run['id']}: {model} on {dataset} ({run['task']})",
        "",
        "## Setup",
        "",
        *_md_table(["", "Value"], setup_rows(export), align="ll"),
        "",
    ]
    metrics = export.get("metrics", {})
    if metrics:
        has_ci = any(m.get("ci_low") is not None for m in metrics.values())
        label = _Markdown("Value [95% CI]" if has_ci else "Value")
        out += [
            "## Metrics",
            "",
            f"N = {ds['n_images']} images, {ds['n_captions']} captions.",
            "",
            *_md_table(
                ["Metric", "Key", label, "Interval"],
                [
                    (metric_name(n).label, n, _Markdown(format_with_ci(m, n)), _interval(n, m))
                    for n, m in metrics.items()
                ],
                align="llrl",
            ),
            "",
        ]
    per_category = export.get("per_category", {})
    if per_category:
        names = ordered_keys(cat.get("metrics", {}) for cat in per_category.values())
        rows = [
            [
                category,
                cat.get("n_images"),
                *(
                    _Markdown(format_with_ci(cat["metrics"][n], n)) if n in cat["metrics"] else None
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
                _Markdown(format_metric(t["name"], t["value"], unit=False)),  # Unit has it
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
