"""Read models of the Hardware page: "how fast is it on my hardware?".

Every succeeded benchmark run reads as a `BenchmarkRun`: its variant records (the "variants"
artifact, through `benchmark_records.load_records`, which fills fields older runs lack) and its
measurement conditions. A run measured before variants existed has no artifact; its timings
(`<op>_<stat>` per batch size) become one record, so every reader below sees one shape.

- `overview`: one row per (run, variant): throughput and speed-up with CIs at the largest
  batch size of the speed operation, latency, load time, memory, the accuracy cost, contention;
- `detail`: one row per (run, variant, operation, batch size) of one model, each run its own
  labelled series ("run 12 · lab-cpu · fp32"), so repeated runs are never drawn as one;
- `cross_host`: the same model and variant on two hosts as a throughput ratio with its CI;
- `recommend`: `speed_advice.advise` per (model, host, device) on its newest quiet run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from mirada.benchmark_records import (
    BatchRow,
    Measurement,
    VariantRecord,
    load_measurement,
    load_records,
)
from mirada.db import read_session
from mirada.db.models import HardwareProfile, Metric, Run, RunArtifact, Timing, Worker
from mirada.domain import Dtype, RunStatus, Task
from mirada.errors import MiradaError
from mirada.metrics.names import (
    CAPTION,
    CUDA_MAX_ALLOCATED_MB,
    IMAGE_ENCODE,
    LATENCY_P50_MS,
    LATENCY_P95_MS,
    LOAD_S,
    LOAD_SECONDS,
    OPERATIONS,
    PEAK_RSS_MB,
    TEXT_ENCODE,
    THROUGHPUT_PER_S,
    TIMED_BATCHES,
    TIMING_PATTERN,
    label,
)
from mirada.metrics.speed import rate_ratio
from mirada.queries.runs import HARDWARE_KEYS, hardware_dict
from mirada.queries.speed_advice import (
    DEFAULT_COSINE,
    DEFAULT_TOLERANCE,
    Advice,
    advise,
    contended_reason,
    speedup_of,
    worst_task_metric,
)
from mirada.results import MEASUREMENT_ARTIFACT, VARIANTS_ARTIFACT
from mirada.vlm.ids import parse_model_id

# the operation a variant's speed is read from: images encoded, else captions, else texts
SPEED_OPS = (IMAGE_ENCODE, CAPTION, TEXT_ENCODE)
OP_UNITS = {IMAGE_ENCODE: "images/s", TEXT_ENCODE: "texts/s", CAPTION: "captions/s"}


@dataclass(frozen=True)
class BenchmarkRun:
    run_id: int
    model: str
    host: str  # the origin host of an imported run, else its hardware hostname or worker
    device: str
    gpu: str | None
    origin: str  # "local", or "imported" (from another home's bundle)
    latency_only: bool  # random weights at a real size (mirada.vlm.presets)
    load_s: float | None
    records: tuple[VariantRecord, ...]  # the reference first
    measurement: Measurement | None  # None: measured before conditions were recorded
    from_timings: bool = False  # no variants artifact: one record rebuilt from the timings

    @property
    def contention(self) -> str | None:
        """Why its numbers carry no recommendation (None: quiet, or never checked)."""
        return contended_reason(self.records, self.measurement)


def series_label(run_id: int, host: str, variant: str) -> str:
    """One chart series per run: repeated runs of a configuration stay apart."""
    return f"run {run_id} · {host} · {variant}"


def _latency_only(model_id: str) -> bool:
    try:
        return parse_model_id(model_id).latency_only
    except MiradaError:  # an id from an older or newer Mirada: not one of ours
        return False


def _number(value: Any) -> float:
    return float(value) if value is not None else math.nan


def _from_timings(
    dtype: str | None, timings: Iterable[tuple[str, float | None, int | None]], repeats: int | None
) -> VariantRecord:
    """A run without a variants artifact as one reference record: its `<op>_<stat>` timings
    per batch size become batch rows (a stat it lacks reads NaN, shown as missing)."""
    stats: dict[tuple[str, int], dict[str, float | None]] = {}
    for name, value, bs in timings:
        m = TIMING_PATTERN.match(name)
        if m and bs is not None:
            stats.setdefault((m["op"], bs), {})[m["stat"]] = value
    batches = tuple(
        BatchRow(
            op=op,
            batch_size=bs,
            repeats=repeats or 0,
            throughput_per_s=_number(s.get(THROUGHPUT_PER_S)),
            latency_p50_ms=_number(s.get(LATENCY_P50_MS)),
            latency_p95_ms=_number(s.get(LATENCY_P95_MS)),
            peak_rss_mb=s.get(PEAK_RSS_MB),
            cuda_max_allocated_mb=s.get(CUDA_MAX_ALLOCATED_MB),
        )
        for (op, bs), s in sorted(stats.items())
    )
    try:
        typed = Dtype(dtype) if dtype else None
    except ValueError:
        typed = None
    record = VariantRecord(name=dtype or "?", dtype=typed, reference=True, batches=batches)
    rates = {op: _largest(record, op) for op in OPERATIONS}
    return replace(
        record,
        images_per_s=_rate(rates[IMAGE_ENCODE]),
        texts_per_s=_rate(rates[TEXT_ENCODE]),
        captions_per_s=_rate(rates[CAPTION]),
    )


def _rate(row: BatchRow | None) -> float | None:
    if row is None or math.isnan(row.throughput_per_s):
        return None
    return row.throughput_per_s


def _largest(record: VariantRecord, op: str) -> BatchRow | None:
    rows = [b for b in record.batches if b.op == op]
    return max(rows, key=lambda b: b.batch_size) if rows else None


def speed_row(record: VariantRecord) -> BatchRow | None:
    """The batch row a variant's speed is read from: the speed op at its largest batch."""
    for op in SPEED_OPS:
        row = _largest(record, op)
        if row is not None:
            return row
    return None


def benchmark_runs() -> list[BenchmarkRun]:
    """Every succeeded benchmark run, oldest first."""
    succeeded = [Run.task == Task.benchmark, Run.status == RunStatus.succeeded]
    runs_stmt = (
        select(
            Run.id,
            Run.model_id,
            Run.resolved_device,
            Run.device,
            Run.dtype,
            Run.origin_host,
            Run.options,
            HardwareProfile.hostname,
            HardwareProfile.gpu_name,
            Worker.name,
        )
        .outerjoin(HardwareProfile, HardwareProfile.id == Run.hardware_profile_id)
        .outerjoin(Worker, Worker.id == Run.worker_id)
        .where(*succeeded)
        .order_by(Run.id)
    )
    artifacts_stmt = (
        select(RunArtifact.run_id, RunArtifact.name, RunArtifact.data)
        .join(Run, Run.id == RunArtifact.run_id)
        .where(*succeeded, RunArtifact.name.in_([VARIANTS_ARTIFACT, MEASUREMENT_ARTIFACT]))
    )
    timings_stmt = (
        select(Timing.run_id, Timing.name, Timing.value, Timing.batch_size)
        .join(Run, Run.id == Timing.run_id)
        .where(*succeeded)
        .order_by(Timing.id)
    )
    repeats_stmt = (
        select(Metric.run_id, Metric.value)
        .join(Run, Run.id == Metric.run_id)
        .where(*succeeded, Metric.name == TIMED_BATCHES, Metric.category.is_(None))
    )
    with read_session() as s:
        runs = s.execute(runs_stmt).all()
        artifacts = s.execute(artifacts_stmt).all()
        timings = s.execute(timings_stmt).all()
        repeats = {r: int(v) for r, v in s.execute(repeats_stmt).all() if v is not None}
    blobs = {(run_id, name): data for run_id, name, data in artifacts}
    by_run: dict[int, list[tuple[str, float | None, int | None]]] = {}
    for run_id, name, value, bs in timings:
        by_run.setdefault(run_id, []).append((name, value, bs))
    out = []
    for run_id, model, rdev, dev, dtype, origin, opts, host, gpu, worker in runs:
        where = f"run {run_id}"
        records: list[VariantRecord] = []
        blob = blobs.get((run_id, VARIANTS_ARTIFACT))
        if blob is not None:
            try:
                records = load_records(blob, f"{where} variants")
            except MiradaError:  # unreadable: the timings still say something
                records = []
        measurement = None
        blob = blobs.get((run_id, MEASUREMENT_ARTIFACT))
        if blob is not None:
            try:
                measurement = load_measurement(blob, f"{where} measurement")
            except MiradaError:
                measurement = None
        rows = by_run.get(run_id, [])
        from_timings = not records
        if from_timings:
            n = repeats.get(run_id, (opts or {}).get(TIMED_BATCHES))
            records = [_from_timings(dtype, rows, int(n) if n else None)]
        load = next((v for name, v, _ in rows if name == LOAD_SECONDS.key), None)
        out.append(
            BenchmarkRun(
                run_id=run_id,
                model=model,
                host=origin or host or worker or "unknown",
                device=str(rdev or dev),
                gpu=gpu,
                origin="imported" if origin else "local",
                latency_only=_latency_only(model),
                load_s=load,
                records=tuple(records),
                measurement=measurement,
                from_timings=from_timings,
            )
        )
    return out


# ---- overview ---------------------------------------------------------------------------------

OVERVIEW_COLUMNS = [
    "run_id",
    "model",
    "host",
    "device",
    "gpu",
    "variant",
    "reference",
    "available",
    "unavailable_reason",
    "op",  # the speed operation (image_encode, else caption, else text_encode)
    "unit",  # of the throughput: images/s, captions/s, texts/s
    "batch_size",  # the largest measured: throughput, speed-up and latency are read there
    "throughput",
    "throughput_ci_low",
    "throughput_ci_high",
    "speedup",  # over the run's reference: median of per-round paired ratios
    "speedup_ci_low",
    "speedup_ci_high",
    LATENCY_P50_MS,  # per item
    LATENCY_P95_MS,
    LOAD_S,
    "added_peak_mb",  # weights plus activations this variant adds
    PEAK_RSS_MB,  # the whole process (older runs recorded only this)
    "accuracy_metric",  # label of the task metric with the lowest difference CI bound
    "accuracy_delta",  # points, against the reference on the same items
    "accuracy_ci_low",
    "accuracy_ci_high",
    "accuracy_p_value",
    "min_cosine_to_fp32",
    "rounds",
    "contended",  # True/False; None: measured before contention was checked
    "contention_reason",
    "origin",
    "latency_only",
]


def _ci(ci: tuple[float, float] | None) -> tuple[float | None, float | None]:
    return (ci[0], ci[1]) if ci is not None else (None, None)


def _overview_row(run: BenchmarkRun, record: VariantRecord) -> dict[str, Any]:
    row = speed_row(record)
    op = row.op if row is not None else None
    throughput = _rate(row)
    throughput_ci = row.throughput_ci if row is not None else None
    if op == IMAGE_ENCODE and record.images_per_s is not None:  # the record's own summary
        throughput, throughput_ci = record.images_per_s, record.images_per_s_ci or throughput_ci
    speed, speed_ci = speedup_of(record)
    if record.reference and speed is None and len(run.records) > 1:
        speed = 1.0  # by definition; a lone record has nothing to be faster than
    worst = worst_task_metric(record)
    metric = record.task_metrics[worst[0]] if worst is not None else None
    cosine = record.min_cosine_to_fp32
    if cosine is None and record.reference and len(run.records) > 1:
        cosine = 1.0
    reason = run.contention
    added = record.added_peak_mb
    if added is None and row is not None:
        added = row.added_peak_mb
    return {
        "run_id": run.run_id,
        "model": run.model,
        "host": run.host,
        "device": run.device,
        "gpu": run.gpu,
        "variant": record.name,
        "reference": record.reference and len(run.records) > 1,
        "available": record.available,
        "unavailable_reason": record.unavailable_reason,
        "op": op,
        "unit": OP_UNITS.get(op or "", None),
        "batch_size": row.batch_size if row is not None else None,
        "throughput": throughput,
        "throughput_ci_low": _ci(throughput_ci)[0],
        "throughput_ci_high": _ci(throughput_ci)[1],
        "speedup": speed,
        "speedup_ci_low": _ci(speed_ci)[0],
        "speedup_ci_high": _ci(speed_ci)[1],
        LATENCY_P50_MS: row.latency_p50_ms if row is not None else None,
        LATENCY_P95_MS: row.latency_p95_ms if row is not None else None,
        LOAD_S: run.load_s,
        "added_peak_mb": added,
        PEAK_RSS_MB: row.peak_rss_mb if row is not None else None,
        "accuracy_metric": label(worst[0]) if worst is not None else None,
        "accuracy_delta": metric.delta if metric is not None else None,
        "accuracy_ci_low": _ci(metric.delta_ci)[0] if metric is not None else None,
        "accuracy_ci_high": _ci(metric.delta_ci)[1] if metric is not None else None,
        "accuracy_p_value": metric.p_value if metric is not None else None,
        "min_cosine_to_fp32": cosine,
        "rounds": record.rounds,
        "contended": (reason is not None) if run.measurement is not None or reason else None,
        "contention_reason": reason,
        "origin": run.origin,
        "latency_only": run.latency_only,
    }


def overview_rows(runs: Sequence[BenchmarkRun]) -> pd.DataFrame:
    """OVERVIEW_COLUMNS, one row per (run, variant), sorted by model, host, device, run."""
    rows = [_overview_row(run, r) for run in runs for r in run.records]
    df = pd.DataFrame(rows, columns=OVERVIEW_COLUMNS)
    return df.sort_values(["model", "host", "device", "run_id"], kind="stable").reset_index(
        drop=True
    )


def overview() -> pd.DataFrame:
    """Every model x host x variant of every succeeded benchmark run (see `overview_rows`)."""
    return overview_rows(benchmark_runs())


# ---- detail -----------------------------------------------------------------------------------

DETAIL_COLUMNS = [
    "run_id",
    "series",  # "run 12 · lab-cpu · fp32": one per run and variant
    "model",
    "host",
    "device",
    "variant",
    "op",
    "batch_size",
    "repeats",
    "throughput",
    "throughput_ci_low",
    "throughput_ci_high",
    LATENCY_P50_MS,
    "latency_p50_ci_low",
    "latency_p50_ci_high",
    LATENCY_P95_MS,
    "speedup",
    "speedup_ci_low",
    "speedup_ci_high",
    "added_peak_mb",
    PEAK_RSS_MB,
    CUDA_MAX_ALLOCATED_MB,
    "contended",
]


def detail_rows(runs: Sequence[BenchmarkRun], model: str) -> pd.DataFrame:
    """DETAIL_COLUMNS for one model: every (run, variant, op, batch size) with its CIs."""
    out = []
    for run in runs:
        if run.model != model:
            continue
        contended = run.contention is not None
        for r in run.records:
            for b in r.batches:
                out.append(
                    {
                        "run_id": run.run_id,
                        "series": series_label(run.run_id, run.host, r.name),
                        "model": run.model,
                        "host": run.host,
                        "device": run.device,
                        "variant": r.name,
                        "op": b.op,
                        "batch_size": b.batch_size,
                        "repeats": b.repeats,
                        "throughput": b.throughput_per_s,
                        "throughput_ci_low": _ci(b.throughput_ci)[0],
                        "throughput_ci_high": _ci(b.throughput_ci)[1],
                        LATENCY_P50_MS: b.latency_p50_ms,
                        "latency_p50_ci_low": _ci(b.latency_p50_ci)[0],
                        "latency_p50_ci_high": _ci(b.latency_p50_ci)[1],
                        LATENCY_P95_MS: b.latency_p95_ms,
                        "speedup": b.speedup,
                        "speedup_ci_low": _ci(b.speedup_ci)[0],
                        "speedup_ci_high": _ci(b.speedup_ci)[1],
                        "added_peak_mb": b.added_peak_mb,
                        PEAK_RSS_MB: b.peak_rss_mb,
                        CUDA_MAX_ALLOCATED_MB: b.cuda_max_allocated_mb,
                        "contended": contended,
                    }
                )
    df = pd.DataFrame(out, columns=DETAIL_COLUMNS)
    return df.sort_values(["op", "run_id", "variant", "batch_size"], kind="stable").reset_index(
        drop=True
    )


def detail(model: str) -> pd.DataFrame:
    return detail_rows(benchmark_runs(), model)


# ---- across machines --------------------------------------------------------------------------

CROSS_COLUMNS = [
    "model",
    "variant",
    "op",
    "batch_size",
    "faster",  # "gpu-box (cuda)"
    "faster_run",
    "slower",
    "slower_run",
    "ratio",  # the faster side's throughput over the slower's
    "ci_low",
    "ci_high",
    "note",
]


def _side(run: BenchmarkRun) -> str:
    return f"{run.host} ({run.device})"


def cross_host_rows(runs: Sequence[BenchmarkRun]) -> pd.DataFrame:
    """CROSS_COLUMNS: each model and variant measured on two or more hosts, every pair of
    hosts (the newest run of each host and device), at the largest batch size of the speed
    operation both measured. The CI is `metrics.speed.rate_ratio` over both sides' timed
    batches; a side measured before batch times were stored gives a ratio without one."""
    newest: dict[tuple[str, str, str, str], tuple[BenchmarkRun, VariantRecord]] = {}
    for run in runs:  # oldest first: a later run replaces an earlier one
        for r in run.records:
            if r.available:
                newest[(run.model, r.name, run.host, run.device)] = (run, r)
    groups: dict[tuple[str, str], list[tuple[BenchmarkRun, VariantRecord]]] = {}
    for (model, variant, _, _), side in sorted(newest.items()):
        groups.setdefault((model, variant), []).append(side)
    out = []
    for (model, variant), sides in groups.items():
        for (run_a, rec_a), (run_b, rec_b) in itertools.combinations(sides, 2):
            if run_a.host == run_b.host:
                continue
            pair = _common_row(rec_a, rec_b)
            if pair is None:
                continue
            a, b = pair
            if b.throughput_per_s > a.throughput_per_s:
                (run_a, rec_a, a), (run_b, rec_b, b) = (run_b, rec_b, b), (run_a, rec_a, a)
            notes = []
            if a.batch_seconds and b.batch_seconds:
                ratio, ci = rate_ratio(a.batch_seconds, a.batch_size, b.batch_seconds, b.batch_size)
            else:
                ratio, ci = a.throughput_per_s / b.throughput_per_s, None
                notes.append("no CI: batch times not stored (older run)")
            if run_a.contention or run_b.contention:
                notes.append("measured under contention")
            out.append(
                {
                    "model": model,
                    "variant": variant,
                    "op": a.op,
                    "batch_size": a.batch_size,
                    "faster": _side(run_a),
                    "faster_run": run_a.run_id,
                    "slower": _side(run_b),
                    "slower_run": run_b.run_id,
                    "ratio": ratio,
                    "ci_low": _ci(ci)[0],
                    "ci_high": _ci(ci)[1],
                    "note": "; ".join(notes) or None,
                }
            )
    return pd.DataFrame(out, columns=CROSS_COLUMNS)


def _common_row(a: VariantRecord, b: VariantRecord) -> tuple[BatchRow, BatchRow] | None:
    """Both sides' rows of the speed op at the largest batch size both measured."""
    for op in SPEED_OPS:
        rows_a = {r.batch_size: r for r in a.batches if r.op == op}
        rows_b = {r.batch_size: r for r in b.batches if r.op == op}
        common = [
            bs
            for bs in set(rows_a) & set(rows_b)
            if rows_a[bs].throughput_per_s > 0 and rows_b[bs].throughput_per_s > 0
        ]
        if common:
            bs = max(common)
            return rows_a[bs], rows_b[bs]
    return None


def cross_host() -> pd.DataFrame:
    return cross_host_rows(benchmark_runs())


# ---- what should I use ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    model: str
    host: str
    device: str
    run_id: int | None  # the run the advice rests on
    advice: Advice
    notes: tuple[str, ...] = ()  # runs of this configuration that were not used, and why


def recommend(
    runs: Sequence[BenchmarkRun],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    cosine: float = DEFAULT_COSINE,
) -> list[Recommendation]:
    """Per (model, host, device), sorted: the advice of its newest quiet run that measured
    variants (`speed_advice.advise`). When every such run was contended the advice is withheld
    with the reason; contended runs passed over are named in `notes`."""
    groups: dict[tuple[str, str, str], list[BenchmarkRun]] = {}
    for run in runs:
        groups.setdefault((run.model, run.host, run.device), []).append(run)
    out = []
    for (model, host, device), group in sorted(groups.items()):
        newest_first = sorted(group, key=lambda r: r.run_id, reverse=True)
        measured = [r for r in newest_first if len(r.records) > 1] or newest_first
        quiet = [r for r in measured if r.contention is None]
        chosen = quiet[0] if quiet else measured[0]
        notes = tuple(
            f"run {r.run_id} not used: {r.contention}"
            for r in measured
            if r is not chosen and r.contention is not None and r.run_id > chosen.run_id
        )
        advice = advise(chosen.records, chosen.measurement, tolerance=tolerance, cosine=cosine)
        out.append(Recommendation(model, host, device, chosen.run_id, advice, notes))
    return out


def recommendations(
    tolerance: float = DEFAULT_TOLERANCE, cosine: float = DEFAULT_COSINE
) -> list[Recommendation]:
    return recommend(benchmark_runs(), tolerance=tolerance, cosine=cosine)


# ---- machines ---------------------------------------------------------------------------------


def hardware_profiles() -> pd.DataFrame:
    """Recorded machines: id, HARDWARE_KEYS (see hardware_dict), runs (how many ran there)."""
    with read_session() as s:
        profiles = s.scalars(select(HardwareProfile).order_by(HardwareProfile.id)).all()
        counts = dict(
            s.execute(
                select(Run.hardware_profile_id, func.count(Run.id)).group_by(
                    Run.hardware_profile_id
                )
            ).all()
        )
    return pd.DataFrame(
        [
            {"id": hp.id, **(hardware_dict(hp) or {}), "runs": int(counts.get(hp.id, 0))}
            for hp in profiles
        ],
        columns=["id", *HARDWARE_KEYS, "runs"],
    )
