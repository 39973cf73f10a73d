"""What a benchmark run measured, per variant, and under which conditions: the "variants" and
"measurement" artifacts (`mirada.benchmark_records`), as `mirada show` prints them and `--json`
returns them (`variants`, `measurement`). Read only through `load_records` / `load_measurement`,
so a run measured before a field existed shows it missing instead of failing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from mirada.benchmark_records import (
    Measurement,
    VariantRecord,
    load_measurement,
    load_records,
    to_json,
)
from mirada.db import read_session
from mirada.db.models import RunArtifact
from mirada.metrics.formatting import MISSING, format_value
from mirada.metrics.names import MetricKind, label
from mirada.queries.speed_advice import interval, points, speedup_of, times
from mirada.results import MEASUREMENT_ARTIFACT, VARIANTS_ARTIFACT

# the columns `mirada show` prints, in order (a column no variant fills is left out)
VARIANT_COLUMNS = (
    "name",
    "images/s [95% CI]",
    "texts/s [95% CI]",
    "captions/s [95% CI]",
    "speed-up [95% CI]",
    "accuracy Δ points [95% CI]",
    "min cosine",
    "identical captions",
    "BLEU-4 to fp32",
    "rounds",
    "added peak MB",
    "compile s",
    "contended",
    "unavailable",
)


def _artifact(run_id: int, name: str) -> bytes | None:
    with read_session() as s:
        blob: bytes | None = s.scalar(
            select(RunArtifact.data).where(RunArtifact.run_id == run_id, RunArtifact.name == name)
        )
    return blob


def run_records(run_id: int) -> list[VariantRecord] | None:
    """The run's variant records, the reference first; None for a run without the artifact."""
    blob = _artifact(run_id, VARIANTS_ARTIFACT)
    return None if blob is None else load_records(blob, f"run {run_id} variants")


def run_variants(run_id: int) -> list[dict[str, Any]] | None:
    """`mirada show --json`'s `variants`: every VariantRecord field of each variant as JSON
    (name, images_per_s, images_per_s_ci, speedup, speedup_ci, contended, rounds,
    task_metrics, batches, ...); None for a run measured without variants."""
    records = run_records(run_id)
    return None if records is None else [to_json(r) for r in records]


def run_measurement(run_id: int) -> Measurement | None:
    """The conditions a benchmark run was measured under; None for a run from before they were
    recorded."""
    blob = _artifact(run_id, MEASUREMENT_ARTIFACT)
    return None if blob is None else load_measurement(blob, f"run {run_id} measurement")


def _fixed(value: float | None, digits: int) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _lowest(record: VariantRecord) -> str:
    """The task metric closest to losing accuracy: `−0.8 [−2.1, +0.4] Image→text R@1`."""
    if not record.task_metrics:
        return MISSING
    key = min(
        record.task_metrics,
        key=lambda k: (
            ci[0] if (ci := record.task_metrics[k].delta_ci) is not None else float("-inf")
        ),
    )
    metric = record.task_metrics[key]
    return f"{points(metric.delta, metric.delta_ci)} {label(key)}"


def variant_rows(records: Sequence[VariantRecord]) -> list[dict[str, str]]:
    """Records as `mirada show` prints them (VARIANT_COLUMNS, every cell text): rates with
    their CI, the speed-up over the reference with its CI, the task metric that loses most,
    cosines to 6 decimals (their interesting digits are the last ones)."""
    rows = []
    for r in records:
        speed, speed_ci = speedup_of(r)
        if r.reference and speed is None and len(records) > 1:
            speed = 1.0
        rows.append(
            {
                "name": r.name + (" (reference)" if r.reference else ""),
                "images/s [95% CI]": interval(
                    MetricKind.per_second, r.images_per_s, r.images_per_s_ci
                ),
                "texts/s [95% CI]": interval(
                    MetricKind.per_second, r.texts_per_s, r.texts_per_s_ci
                ),
                "captions/s [95% CI]": interval(
                    MetricKind.per_second, r.captions_per_s, r.captions_per_s_ci
                ),
                "speed-up [95% CI]": times(speed, speed_ci),
                "accuracy Δ points [95% CI]": _lowest(r),
                "min cosine": _fixed(r.min_cosine_to_fp32, 6),
                "identical captions": format_value(
                    MetricKind.proportion, r.caption_identical_share
                ),
                "BLEU-4 to fp32": _fixed(r.caption_bleu4_to_fp32, 3),
                "rounds": format_value(MetricKind.number, r.rounds),
                "added peak MB": format_value(MetricKind.megabytes, r.added_peak_mb, unit=False),
                "compile s": format_value(MetricKind.seconds, r.compile_s, unit=False),
                "contended": "yes" if r.contended else MISSING,
                "unavailable": (r.unavailable_reason or "?") if not r.available else MISSING,
            }
        )
    return rows


def task_metric_lines(records: Sequence[VariantRecord]) -> list[str]:
    """One line per variant with task metrics: every metric's value, its difference to the
    reference with the CI, and the test's p-value (`McNemar p 0.50`)."""
    lines = []
    for r in records:
        if r.reference or not r.task_metrics:
            continue
        parts = []
        for key, m in r.task_metrics.items():
            test = "McNemar" if m.test == "mcnemar_exact" else "bootstrap"
            p = "" if m.p_value is None else f", {test} p {m.p_value:.3g}"
            changed = "" if m.changed is None else f", {m.changed} of {m.n} changed"
            parts.append(
                f"{label(key)} {m.value:.1f} ({points(m.delta, m.delta_ci)} points{p}{changed})"
            )
        top1 = "" if r.top1_changed is None else f"; top-1 changed for {r.top1_changed} images"
        lines.append(f"{r.name}: " + "; ".join(parts) + top1)
    return lines


def measurement_line(m: Measurement) -> str:
    """The conditions in one line: `quiet: load 0.4 -> 0.5, other processes used 3% of the
    CPUs, CPU efficiency 97%, 2 threads on 2 CPUs, 24.1 s`."""
    parts = ["contended" if m.contended else "quiet"]
    if m.load_before is not None or m.load_after is not None:
        parts.append(f"load {_fixed(m.load_before, 2)} -> {_fixed(m.load_after, 2)}")
    if m.other_cpu_share is not None:
        parts.append(f"other processes used {m.other_cpu_share:.0%} of the CPUs")
    if m.cpu_efficiency is not None:
        parts.append(f"CPU efficiency {m.cpu_efficiency:.0%}")
    if m.threads is not None:
        cpus = f" on {m.cpus} CPUs" if m.cpus is not None else ""
        parts.append(f"{m.threads} threads{cpus}")
    if m.gpu_name:
        clocks = ", ".join(f"{k} {v:.0f} MHz" for k, v in (m.gpu_clocks_mhz or {}).items())
        parts.append(m.gpu_name + (f" ({clocks})" if clocks else ""))
    if m.seconds is not None:
        parts.append(format_value(MetricKind.seconds, m.seconds))
    line = ", ".join(parts)
    pipeline = m.input_pipeline
    if pipeline is not None:
        model = pipeline.model_images_per_s
        line += (
            f"\ninput pipeline: decode + preprocess {pipeline.per_core_images_per_s:.1f} "
            f"images/s per core"
            + (
                f", {pipeline.loader_images_per_s:.1f} images/s with the worker's loader "
                f"({pipeline.loader_workers} workers)"
                if pipeline.loader_images_per_s is not None
                else ""
            )
            + (f", model {model:.1f} images/s" if model is not None else "")
            + (
                f": the {'input pipeline' if pipeline.bound == 'input' else pipeline.bound} "
                "limits the end-to-end rate"
                if pipeline.bound
                else ""
            )
        )
    return line
