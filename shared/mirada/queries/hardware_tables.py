"""The Hardware page's tables as people read them: every cell text, numbers through
`mirada.metrics.formatting` (a missing one is its MISSING dash, never None or nan), units in
the column labels, a value and its 95% CI in one cell. Pure: frames of `mirada.queries.hardware`
in, frames of strings out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mirada.metrics.formatting import MISSING, format_value
from mirada.metrics.names import (
    LATENCY_P50_MS,
    LATENCY_P95_MS,
    LOAD_S,
    OPERATIONS,
    PEAK_RSS_MB,
    MetricKind,
    as_number,
)
from mirada.queries.common import short_model
from mirada.queries.hardware import BenchmarkRun
from mirada.queries.speed_advice import interval, points, times


def _fixed(value: Any, kind: MetricKind) -> str:
    return format_value(kind, value, unit=False)


def overview_display(df: pd.DataFrame) -> pd.DataFrame:
    """The overview as the page shows it: every cell text (numbers through
    `mirada.metrics.formatting`, missing ones as its MISSING dash, never None or nan), units in
    the column labels, value and 95% CI in one cell. Same rows and order as `df`."""
    rows = []
    for r in df.to_dict("records"):
        where = (
            f"{OPERATIONS[r['op']].lower()} @ batch {int(r['batch_size'])}"
            if r["op"] in OPERATIONS and as_number(r["batch_size"]) is not None
            else MISSING
        )
        if not r["available"]:
            where = f"unavailable: {_text(r['unavailable_reason'], '?')}"
        contended = r["contended"]
        rows.append(
            {
                "model": short_model(r["model"]) + (" [latency only]" if r["latency_only"] else ""),
                "host": r["host"],
                "device": r["device"],
                "variant": r["variant"] + (" (reference)" if r["reference"] else ""),
                "measured": where,
                "throughput (items/s, 95% CI)": interval(
                    MetricKind.per_second,
                    as_number(r["throughput"]),
                    _pair(r["throughput_ci_low"], r["throughput_ci_high"]),
                ),
                "speed-up (×, 95% CI)": times(
                    as_number(r["speedup"]), _pair(r["speedup_ci_low"], r["speedup_ci_high"])
                ),
                "p50 (ms/item)": _fixed(r[LATENCY_P50_MS], MetricKind.milliseconds),
                "p95 (ms/item)": _fixed(r[LATENCY_P95_MS], MetricKind.milliseconds),
                "load (s)": _fixed(r[LOAD_S], MetricKind.seconds),
                "added peak (MB)": _fixed(r["added_peak_mb"], MetricKind.megabytes),
                "process RSS (MB)": _fixed(r[PEAK_RSS_MB], MetricKind.megabytes),
                "accuracy Δ (points, 95% CI)": points(
                    as_number(r["accuracy_delta"]),
                    _pair(r["accuracy_ci_low"], r["accuracy_ci_high"]),
                ),
                "lowest metric": _text(r["accuracy_metric"]),
                "Δ p-value": _p(r["accuracy_p_value"]),
                "min cosine": _cosine(r["min_cosine_to_fp32"]),
                "rounds": _fixed(r["rounds"], MetricKind.number),
                "contended": MISSING
                if contended is None or pd.isna(contended)
                else ("yes ⚠" if contended else "no"),
                "origin": r["origin"],
                "run_id": int(r["run_id"]),
            }
        )
    return pd.DataFrame(rows, columns=DISPLAY_COLUMNS)


def _pair(lo: Any, hi: Any) -> tuple[float, float] | None:
    low, high = as_number(lo), as_number(hi)
    return (low, high) if low is not None and high is not None else None


def _text(value: Any, missing: str = MISSING) -> str:
    return (
        missing if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    )


def _p(value: Any) -> str:
    v = as_number(value)
    return MISSING if v is None else ("< 0.001" if v < 0.001 else f"{v:.3f}")


def _cosine(value: Any) -> str:
    v = as_number(value)
    return MISSING if v is None else f"{v:.6f}"


DISPLAY_COLUMNS = [
    "model",
    "host",
    "device",
    "variant",
    "measured",
    "throughput (items/s, 95% CI)",
    "speed-up (×, 95% CI)",
    "p50 (ms/item)",
    "p95 (ms/item)",
    "load (s)",
    "added peak (MB)",
    "process RSS (MB)",
    "accuracy Δ (points, 95% CI)",
    "lowest metric",
    "Δ p-value",
    "min cosine",
    "rounds",
    "contended",
    "origin",
    "run_id",
]


def cross_host_display(df: pd.DataFrame) -> pd.DataFrame:
    """The cross-machine ratios as the page shows them: text cells, units in the labels."""
    return pd.DataFrame(
        [
            {
                "model": short_model(r["model"]),
                "variant": r["variant"],
                "measured": f"{OPERATIONS[r['op']].lower()} @ batch {int(r['batch_size'])}",
                "faster": f"{r['faster']}, run {int(r['faster_run'])}",
                "slower": f"{r['slower']}, run {int(r['slower_run'])}",
                "throughput ratio (×, 95% CI)": times(
                    as_number(r["ratio"]), _pair(r["ci_low"], r["ci_high"])
                ),
                "note": _text(r["note"]),
            }
            for r in df.to_dict("records")
        ],
        columns=["model", "variant", "measured", "faster", "slower",
                 "throughput ratio (×, 95% CI)", "note"],
    )  # fmt: skip


INPUT_COLUMNS = [
    "run",
    "host",
    "decode + preprocess, one core (images/s, 95% CI)",
    "with the loader (images/s)",
    "model only (images/s)",
    "limits the rate",
]


def input_pipeline_rows(runs: Sequence[BenchmarkRun], model: str) -> pd.DataFrame:
    """INPUT_COLUMNS (text): each run of `model` that measured its input pipeline, the decode
    plus preprocess rate on the dataset's files against the model-only rate."""
    out = []
    for run in runs:
        pipeline = run.measurement.input_pipeline if run.measurement is not None else None
        if run.model != model or pipeline is None:
            continue
        loader = _fixed(pipeline.loader_images_per_s, MetricKind.per_second)
        if pipeline.loader_images_per_s is not None:
            loader += f" ({pipeline.loader_workers} workers)"
        out.append(
            {
                "run": f"run {run.run_id}",
                "host": f"{run.host} ({run.device})",
                INPUT_COLUMNS[2]: interval(
                    MetricKind.per_second, pipeline.per_core_images_per_s, pipeline.per_core_ci
                ),
                INPUT_COLUMNS[3]: loader,
                INPUT_COLUMNS[4]: _fixed(pipeline.model_images_per_s, MetricKind.per_second),
                INPUT_COLUMNS[5]: {"input": "the input pipeline", "model": "the model"}.get(
                    pipeline.bound or "", MISSING
                ),
            }
        )
    return pd.DataFrame(out, columns=INPUT_COLUMNS)
