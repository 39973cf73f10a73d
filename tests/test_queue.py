"""The database queue under real concurrency, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mirada import queue
from mirada.db import read_session, write_session
from mirada.db.models import Dataset, Metric, Run, Worker
from mirada.errors import MiradaError

SCRIPT = Path(__file__).with_name("queue_worker.py")
MODEL = "hf-clip:mirada/demo-clip"


def _dataset() -> int:
    with write_session() as s:
        ds = Dataset(name=f"q{time.monotonic_ns()}", source_format="csv")
        s.add(ds)
        s.flush()
        return ds.id


def _spawn(mode: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MIRADA_HEARTBEAT_SECONDS": "1", "MIRADA_STALE_AFTER_SECONDS": "3"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--mode", mode, "--log", str(log), *extra], env=env
    )


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_enqueue_refuses_what_cannot_run(db_url: str) -> None:
    ds = _dataset()
    with pytest.raises(MiradaError, match="cannot run task 'caption'"):
        queue.enqueue(ds, MODEL, "caption")
    with pytest.raises(MiradaError, match="unknown device"):
        queue.enqueue(ds, MODEL, "match", device="tpu")
    with pytest.raises(MiradaError, match="does not exist"):
        queue.enqueue(ds + 1000, MODEL, "match")


def test_claim_respects_device_and_labels(db_url: str) -> None:
    ds = _dataset()
    cuda_run = queue.enqueue(ds, MODEL, "match", device="cuda")
    gpu_label = queue.enqueue(ds, MODEL, "match", requires="gpu")
    plain = queue.enqueue(ds, MODEL, "match")
    wid, _ = queue.register_worker("w", "h", 1, [], ["cpu"], None)
    claimed = queue.claim_next(wid, ["cpu"], [])
    assert claimed is not None and claimed.id == plain
    assert queue.claim_next(wid, ["cpu"], []) is None
    gpu_wid, _ = queue.register_worker("g", "h", 2, ["gpu"], ["cpu", "cuda"], None)
    got = {queue.claim_next(gpu_wid, ["cpu", "cuda"], ["gpu"]).id for _ in range(2)}  # type: ignore[union-attr]
    assert got == {cuda_run, gpu_label}


def test_cancelled_run_drops_results_and_retry_requeues(db_url: str) -> None:
    from mirada.results import MetricValue, RunResults

    ds = _dataset()
    run_id = queue.enqueue(ds, MODEL, "match")
    wid, _ = queue.register_worker("w", "h", 1, [], ["cpu"], None)
    assert queue.claim_next(wid, ["cpu"], []) is not None
    queue.cancel_run(run_id)
    assert not queue.update_progress(run_id, wid, 1, 2)
    ok = queue.finish_run(
        run_id,
        wid,
        RunResults(metrics=[MetricValue("x", 1.0)]),
        hardware_profile_id=None,
        model_fingerprint=None,
        resolved_device="cpu",
    )
    assert not ok
    with read_session() as s:
        assert s.scalar(select(func.count()).select_from(Metric)) == 0
    queue.retry_run(run_id)
    assert queue.run_status(run_id) == "queued"


JOBS = 80


@pytest.mark.slow
def test_four_workers_execute_each_job_exactly_once(db_url: str, tmp_path: Path) -> None:
    ds = _dataset()
    # 80 jobs keep four claimers racing for most of the run; 200 proved nothing more here
    ids = {queue.enqueue(ds, MODEL, "match") for _ in range(JOBS)}
    log = tmp_path / "executions.log"
    procs = [_spawn("noop", log, "--name", f"w{i}") for i in range(4)]
    for p in procs:
        assert p.wait(timeout=240) == 0
    lines = log.read_text().splitlines()
    executed = [int(line.split()[0]) for line in lines]
    assert sorted(executed) == sorted(ids), "every job exactly once"
    assert len({line.split()[1] for line in lines}) > 1, "work was shared between processes"
    with read_session() as s:
        statuses = s.execute(select(Run.status, func.count()).group_by(Run.status)).all()
        assert dict(statuses) == {"succeeded": JOBS}
        assert s.scalar(select(func.count()).select_from(Metric)) == JOBS


@pytest.mark.slow
def test_sigkilled_worker_run_is_requeued_and_completed_once(db_url: str, tmp_path: Path) -> None:
    ds = _dataset()
    run_id = queue.enqueue(ds, MODEL, "match")
    log = tmp_path / "executions.log"
    victim = _spawn("slow", log, "--name", "victim", "--forever")
    assert _wait_for(lambda: log.exists() and log.read_text().strip(), 60), "victim never started"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert queue.run_status(run_id) == "running"
    time.sleep(3.5)  # past MIRADA_STALE_AFTER_SECONDS=3
    rescuer = _spawn("noop", log, "--name", "rescuer")
    assert rescuer.wait(timeout=120) == 0
    with read_session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.status == "succeeded" and run.attempts == 2
        assert s.scalar(select(func.count()).where(Metric.run_id == run_id)) == 1
        victim_row = s.scalars(select(Worker).where(Worker.name == "victim")).one()
        assert victim_row.status == "lost"
    assert len(log.read_text().splitlines()) == 2


@pytest.mark.slow
def test_sigterm_finishes_batch_gives_run_back_and_exits(db_url: str, tmp_path: Path) -> None:
    ds = _dataset()
    run_id = queue.enqueue(ds, MODEL, "match")
    log = tmp_path / "executions.log"
    proc = _spawn("slow", log, "--name", "graceful", "--forever")
    assert _wait_for(lambda: log.exists() and log.read_text().strip(), 60)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    with read_session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.status == "queued" and run.attempts == 0
        worker = s.scalars(select(Worker).where(Worker.name == "graceful")).one()
        assert worker.status == "stopped"


def test_attempts_exhausted_marks_failed(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import update

    from mirada.db.models import db_now

    ds = _dataset()
    run_id = queue.enqueue(ds, MODEL, "match", max_attempts=1)
    wid, _ = queue.register_worker("w", "h", 1, [], ["cpu"], None)
    assert queue.claim_next(wid, ["cpu"], []) is not None
    with write_session() as s:  # its last heartbeat reached the database an hour ago
        s.execute(update(Worker).where(Worker.id == wid).values(heartbeat_at=db_now(-3600)))
    touched = queue.requeue_stale()
    assert touched == [run_id]
    with read_session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.status == "failed"
        assert "its worker was lost 1 time while running it" in (run.error or "")
