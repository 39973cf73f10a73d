"""Plumbing for tests that drive runs through the queue and the worker (the fixtures that build
a demo dataset and tiny models are in conftest.py).

Liveness is decided on the database's clock (mirada.queue: a worker is lost when its last
heartbeat is older than MIRADA_STALE_AFTER_SECONDS by the database's `now`), so tests make a
worker stale by moving its heartbeat into the past with an UPDATE, never by sleeping.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import select, update

from mirada.db import read_session, write_session
from mirada.db.models import Dataset, Run, Worker, db_now
from mirada.domain import Device
from mirada.worker.main import WorkerLoop

# The PostgreSQL the two-backend tests use (conftest's `db_url` fixture, and tests that open
# their own connections). Here rather than in conftest.py: `from conftest import` would find
# tests/dashboard/conftest.py first in a whole-suite run.
POSTGRES_URL = os.environ.get(
    "MIRADA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def work() -> int:
    """Serve the queue in this process until it is empty, on the CPU (no device probing); the
    number of runs taken."""
    return WorkerLoop(burst=True, show_progress=False, devices_override=(Device.cpu,)).serve()


def dataset_row(name: str | None = None) -> int:
    """An empty dataset (no items), for queue tests that never read one; a fresh name unless
    given."""
    with write_session() as s:
        ds = Dataset(name=name or f"d{time.monotonic_ns()}", source_format="csv")
        s.add(ds)
        s.flush()
        return ds.id


def backdate_heartbeat(worker_id: int, seconds: float) -> None:
    """As if the worker's last heartbeat reached the database `seconds` ago."""
    with write_session() as s:
        s.execute(
            update(Worker).where(Worker.id == worker_id).values(heartbeat_at=db_now(-seconds))
        )


def heartbeat_age(worker_id: int) -> float:
    """Seconds since the worker's last heartbeat, on the database's clock."""
    with read_session() as s:
        beat, now = s.execute(
            select(Worker.heartbeat_at, db_now()).where(Worker.id == worker_id)
        ).one()
    return float((now - beat).total_seconds())


def worker_named(name: str) -> int:
    """The id of the one worker registered under `name` (a worker process the test started)."""
    with read_session() as s:
        return s.scalars(select(Worker.id).where(Worker.name == name)).one()


def worker_of(run_id: int) -> int:
    """The id of the worker that holds (or last held) the run."""
    with read_session() as s:
        worker_id = s.scalar(select(Run.worker_id).where(Run.id == run_id))
    assert worker_id is not None, f"run {run_id} has no worker"
    return worker_id
