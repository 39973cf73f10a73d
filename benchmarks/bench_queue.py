"""Queue throughput: 2 worker processes claim and finish 1,000 no-op jobs.

Runs on SQLite and (when reachable) PostgreSQL; checks that no job ran twice.

    python -m benchmarks.bench_queue [--jobs 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

from benchmarks._util import ROOT, emit, temp_home

POSTGRES = os.environ.get(
    "MIRADA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_schema() -> str | None:
    from sqlalchemy import create_engine, text

    schema = f"mirada_bench_{uuid.uuid4().hex[:8]}"
    try:
        eng = create_engine(POSTGRES, connect_args={"connect_timeout": 3})
        with eng.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        eng.dispose()
    except Exception as exc:  # unreachable: report and skip this backend
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return None
    return schema


def _drop(schema: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(POSTGRES)
    with eng.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    eng.dispose()


def measure(backend: str, url: str | None, jobs: int, workers: int) -> dict:
    from mirada import queue
    from mirada.db import write_session
    from mirada.db.models import Dataset

    with temp_home(url) as home:
        with write_session() as s:
            ds = Dataset(name="bench-queue", source_format="csv")
            s.add(ds)
            s.flush()
            ds_id = ds.id
        for _ in range(jobs):
            queue.enqueue(ds_id, "hf-clip:mirada/demo-clip", "match")
        log = home / "executions.log"
        script = ROOT / "tests" / "queue_worker.py"
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    "--mode",
                    "noop",
                    "--log",
                    str(log),
                    "--name",
                    f"bench-{i}",
                ],
                stderr=subprocess.DEVNULL,
            )
            for i in range(workers)
        ]
        for p in procs:
            p.wait()
        wall = time.perf_counter() - t0
        executed = [line.split()[0] for line in log.read_text().splitlines()]
        # Jobs/s from the first claim to the last finish: process start-up is not queue work.
        from sqlalchemy import func, select

        from mirada.db import read_session
        from mirada.db.models import Run

        with read_session() as s:
            first, last = s.execute(
                select(func.min(Run.started_at), func.max(Run.finished_at))
            ).one()
        seconds = (last - first).total_seconds()
    return {
        "backend": backend,
        "jobs": jobs,
        "workers": workers,
        "seconds": round(seconds, 2),
        "wall_with_startup_s": round(wall, 2),
        "jobs_per_s": round(jobs / seconds, 1),
        "executed": len(executed),
        "duplicates": len(executed) - len(set(executed)),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    results = [measure("sqlite", None, a.jobs, a.workers)]
    schema = _postgres_schema()
    if schema:
        try:
            url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
            results.append(measure("postgresql", url, a.jobs, a.workers))
        finally:
            _drop(schema)
    emit({"queue": results})


if __name__ == "__main__":
    main()
