"""Read models of the Hardware page: benchmark timings, model load times, recorded machines."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select

from mirada.db import read_session
from mirada.db.models import HardwareProfile, Run, Timing, Worker
from mirada.domain import RunStatus, Task
from mirada.metrics.names import BENCHMARK_STATS, LOAD_SECONDS, TIMING_PATTERN
from mirada.queries.runs import HARDWARE_KEYS, hardware_dict

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
]
LOAD_COLUMNS = ["run_id", "model", "host", "device", "dtype", "load_s"]


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
        )
        .join(Run, Run.id == Timing.run_id)
        .outerjoin(HardwareProfile, HardwareProfile.id == Run.hardware_profile_id)
        .outerjoin(Worker, Worker.id == Run.worker_id)
        .where(*_succeeded_benchmarks())
    )
    with read_session() as s:
        rows = s.execute(stmt).all()
    recs: dict[tuple[int, str, int | None], dict[str, Any]] = {}
    for run_id, name, value, bs, model, rdev, dev, dtype, host, gpu, worker in rows:
        m = TIMING_PATTERN.match(name)
        if not m or m["stat"] not in BENCHMARK_STATS:
            continue
        rec = recs.setdefault(
            (run_id, m["op"], bs),
            {
                "run_id": run_id,
                "model": model,
                "host": host or worker or "unknown",
                "worker": worker,
                "gpu": gpu,
                "device": rdev or dev,
                "dtype": dtype,
                "batch_size": bs,
                "op": m["op"],
            },
        )
        rec[m["stat"]] = value
    df = pd.DataFrame(list(recs.values()))
    for c in TIMING_COLUMNS:
        if c not in df:
            df[c] = None
    return (
        df[TIMING_COLUMNS].sort_values(["model", "host", "op", "batch_size"]).reset_index(drop=True)
    )


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
                "load_s": value,
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
