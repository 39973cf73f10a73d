"""Read models of the Hardware page: benchmark timings (per precision variant where a run
measured several), the variants' speed and agreement, model load times, recorded machines."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from mirada.db import read_session
from mirada.db.models import HardwareProfile, Metric, Run, RunArtifact, Timing, Worker
from mirada.domain import RunStatus, Task
from mirada.errors import MiradaError
from mirada.metrics.names import (
    BENCHMARK_STATS,
    LOAD_S,
    LOAD_SECONDS,
    TIMED_BATCHES,
    TIMING_PATTERN,
)
from mirada.queries.runs import HARDWARE_KEYS, hardware_dict
from mirada.results import VARIANTS_ARTIFACT
from mirada.vlm.ids import parse_model_id

TIMING_COLUMNS = [
    "run_id",
    "model",
    "host",
    "worker",
    "gpu",
    "device",
    "dtype",
    "batch_size",
    "op",
    *BENCHMARK_STATS,
    "variant",  # the precision variant (a plain run's dtype)
    "repeats",  # timed batches behind the figures (None where not recorded)
    "origin",  # "local", or "imported" for a run imported from another home's bundle
    "latency_only",  # random weights at a real size (mirada.vlm.presets)
]
SUMMARY_COLUMNS = [
    "run_id",
    "model",
    "host",
    "device",
    "variant",
    "reference",
    "available",
    "unavailable_reason",
    "images_per_s",
    "texts_per_s",
    "captions_per_s",
    "speedup_vs_fp32",
    "min_cosine_to_fp32",
]
LOAD_COLUMNS = ["run_id", "model", "host", "device", "dtype", LOAD_S]


def _succeeded_benchmarks() -> list[Any]:
    return [Run.task == Task.benchmark, Run.status == RunStatus.succeeded]


def benchmark_timings() -> pd.DataFrame:
    """Benchmark measurements, one row per (run, operation, batch size), sorted by model,
    host, op and batch size.

    Columns: run_id, model, host (hardware hostname, else worker name, else "unknown"),
    worker, gpu, device, dtype, batch_size, op, then `names.BENCHMARK_STATS`
    (latency_p50_ms, latency_p95_ms, throughput_per_s, peak_rss_mb, cuda_max_allocated_mb).
    """
    stmt = (
        select(
            Timing.run_id,
            Timing.name,
            Timing.value,
            Timing.batch_size,
            Run.model_id,
            Run.resolved_device,
            Run.device,
            Run.dtype,
            HardwareProfile.hostname,
            HardwareProfile.gpu_name,
            Worker.name,
            Run.origin_host,
            Run.options,
        )
        .join(Run, Run.id == Timing.run_id)
        .outerjoin(HardwareProfile, HardwareProfile.id == Run.hardware_profile_id)
        .outerjoin(Worker, Worker.id == Run.worker_id)
        .where(*_succeeded_benchmarks())
    )
    with read_session() as s:
        rows = s.execute(stmt).all()
    recs: dict[tuple[int, str, int | None], dict[str, Any]] = {}
    variants = _variant_records()
    repeats = _timed_batches()
    for run_id, name, value, bs, model, rdev, dev, dtype, host, gpu, worker, origin, opts in rows:
        m = TIMING_PATTERN.match(name)
        if not m or m["stat"] not in BENCHMARK_STATS or run_id in variants:
            continue  # a variant run's batches come from its artifact, one row per variant
        rec = recs.setdefault(
            (run_id, m["op"], bs),
            {
                "run_id": run_id,
                "model": model,
                "host": origin or host or worker or "unknown",
                "worker": worker,
                "gpu": gpu,
                "device": rdev or dev,
                "dtype": dtype,
                "batch_size": bs,
                "op": m["op"],
                "variant": dtype,
                "repeats": repeats.get(run_id, (opts or {}).get(TIMED_BATCHES)),
                "origin": "imported" if origin else "local",
                "latency_only": _latency_only(model),
            },
        )
        rec[m["stat"]] = value
    out = list(recs.values())
    for run_id, (run, records) in variants.items():
        for r in records:
            for b in r.get("batches") or ():
                out.append(
                    {
                        **run,
                        "run_id": run_id,
                        "dtype": r.get("dtype"),
                        "variant": r["name"],
                        **{k: b.get(k) for k in ("op", "batch_size", "repeats", *BENCHMARK_STATS)},
                    }
                )
    df = pd.DataFrame(out)
    for c in TIMING_COLUMNS:
        if c not in df:
            df[c] = None
    return (
        df[TIMING_COLUMNS].sort_values(["model", "host", "op", "batch_size"]).reset_index(drop=True)
    )


def _timed_batches() -> dict[int, int]:
    """Run id -> the timed batches its benchmark figures rest on (the stored metric)."""
    stmt = (
        select(Metric.run_id, Metric.value)
        .join(Run, Run.id == Metric.run_id)
        .where(*_succeeded_benchmarks(), Metric.name == TIMED_BATCHES, Metric.category.is_(None))
    )
    with read_session() as s:
        return {run_id: int(v) for run_id, v in s.execute(stmt).all() if v is not None}


def _latency_only(model_id: str) -> bool:
    try:
        return parse_model_id(model_id).latency_only
    except MiradaError:  # an id from an older or newer Mirada: not one of ours
        return False


def _variant_records() -> dict[int, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Succeeded benchmark runs with a variants artifact: run id -> (the run's columns, the
    variant records as `mirada.worker.tasks.variants` wrote them)."""
    stmt = (
        select(
            Run.id,
            Run.model_id,
            Run.resolved_device,
            Run.device,
            Run.origin_host,
            HardwareProfile.hostname,
            HardwareProfile.gpu_name,
            Worker.name,
            RunArtifact.data,
        )
        .join(RunArtifact, RunArtifact.run_id == Run.id)
        .outerjoin(HardwareProfile, HardwareProfile.id == Run.hardware_profile_id)
        .outerjoin(Worker, Worker.id == Run.worker_id)
        .where(*_succeeded_benchmarks(), RunArtifact.name == VARIANTS_ARTIFACT)
    )
    with read_session() as s:
        rows = s.execute(stmt).all()
    out: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for run_id, model, rdev, dev, origin, host, gpu, worker, blob in rows:
        run = {
            "model": model,
            "host": origin or host or worker or "unknown",
            "worker": worker,
            "gpu": gpu,
            "device": rdev or dev,
            "origin": "imported" if origin else "local",
            "latency_only": _latency_only(model),
        }
        out[run_id] = (run, json.loads(blob))
    return out


def variant_summary() -> pd.DataFrame:
    """One row per measured variant of each succeeded variant run: SUMMARY_COLUMNS (speed at
    the run's largest batch size and minimum cosine to fp32 eager; the reference has 1.0)."""
    rows = []
    for run_id, (run, records) in _variant_records().items():
        for r in records:
            cosine = r.get("min_cosine_to_fp32")
            rows.append(
                {
                    "run_id": run_id,
                    "model": run["model"],
                    "host": run["host"],
                    "device": run["device"],
                    "variant": r["name"],
                    "reference": bool(r.get("reference")),
                    "available": bool(r.get("available", True)),
                    "unavailable_reason": r.get("unavailable_reason"),
                    "images_per_s": r.get("images_per_s"),
                    "texts_per_s": r.get("texts_per_s"),
                    "captions_per_s": r.get("captions_per_s"),
                    "speedup_vs_fp32": r.get("speedup_vs_fp32"),
                    "min_cosine_to_fp32": 1.0 if r.get("reference") and cosine is None else cosine,
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def recommend(summary: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per (model, host, device): the fastest available variant whose min cosine to fp32 is at
    least `threshold` (speed: images/s, else captions/s, else texts/s). Columns: model, host,
    device, variant, speed, unit, min_cosine_to_fp32, run_id; no row where none qualifies."""
    cols = ["model", "host", "device", "variant", "speed", "unit", "min_cosine_to_fp32", "run_id"]
    out = []
    for (model, host, device), group in summary.groupby(["model", "host", "device"], sort=True):
        ok = group[group["available"] & (group["min_cosine_to_fp32"] >= threshold)]
        best: tuple[float, dict[str, Any]] | None = None
        records: list[dict[str, Any]] = ok.to_dict("records")  # type: ignore[assignment]
        for rec in records:
            for key, unit in (
                ("images_per_s", "images/s"),
                ("captions_per_s", "captions/s"),
                ("texts_per_s", "texts/s"),
            ):
                speed = rec.get(key)
                if speed is not None and not pd.isna(speed):
                    if best is None or speed > best[0]:
                        best = (float(speed), {**rec, "speed": float(speed), "unit": unit})
                    break
        if best is not None:
            rec = best[1]
            out.append({c: rec.get(c) for c in cols} | {"model": model, "host": host})
            out[-1]["device"] = device
    return pd.DataFrame(out, columns=cols)


def load_times() -> pd.DataFrame:
    """Model load seconds of benchmark runs: run_id, model, host, device, dtype, load_s."""
    stmt = (
        select(
            Timing.run_id,
            Timing.value,
            Run.model_id,
            Run.resolved_device,
            Run.device,
            Run.dtype,
            HardwareProfile.hostname,
        )
        .join(Run, Run.id == Timing.run_id)
        .outerjoin(HardwareProfile, HardwareProfile.id == Run.hardware_profile_id)
        .where(*_succeeded_benchmarks(), Timing.name == LOAD_SECONDS.key)
    )
    with read_session() as s:
        rows = s.execute(stmt).all()
    return pd.DataFrame(
        [
            {
                "run_id": run_id,
                "model": model,
                "host": host or "unknown",
                "device": rdev or dev,
                "dtype": dtype,
                LOAD_S: value,
            }
            for run_id, value, model, rdev, dev, dtype, host in rows
        ],
        columns=LOAD_COLUMNS,
    )


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
