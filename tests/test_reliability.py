"""The queue and worker under ordinary faults, on SQLite and PostgreSQL (issue 12).

Clock skew, paused workers, workers that keep dying mid-run, bad numbers at queue time.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from run_helpers import backdate_heartbeat, dataset_row, heartbeat_age, worker_of
from sqlalchemy import func, select, update

from mirada import queue
from mirada.db import DatabaseReadOnly, dispose_engines, read_session, write_session
from mirada.db.models import Dataset, Metric, Run, Worker, db_now
from mirada.domain import RunStatus, WorkerStatus
from mirada.errors import MiradaError
from mirada.results import MetricValue, RunResults
from mirada.run_options import BenchmarkRunOptions

MODEL = "hf-clip:mirada/demo-clip"


def _worker(name: str = "w") -> int:
    return queue.register_worker(name, "h", 1, [], ["cpu"], None)[0]


def _run(run_id: int) -> Run:
    with read_session() as s:
        run = s.get(Run, run_id)
        assert run is not None
        return run


def _worker_status(worker_id: int) -> WorkerStatus:
    with read_session() as s:
        status = s.scalar(select(Worker.status).where(Worker.id == worker_id))
        assert status is not None
        return status


def _finish(run_id: int, worker_id: int) -> bool:
    return queue.finish_run(
        run_id,
        worker_id,
        RunResults(metrics=[MetricValue("x", 1.0)]),
        hardware_profile_id=None,
        model_fingerprint=None,
        resolved_device="cpu",
    )


def _skew_python_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Shift the clock mirada's Python code reads (models.utcnow -> datetime.now) by `seconds`."""
    import mirada.db.models as models

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Skewed:  # type: ignore[override]
            return super().now(tz) + timedelta(seconds=seconds)  # type: ignore[return-value]

    monkeypatch.setattr(models, "datetime", Skewed)


# --- item 2: liveness on the database's clock -------------------------------------------


def test_worker_with_a_slow_clock_is_not_declared_lost(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose clock is 2 minutes behind heartbeats; a sweeper with a good clock keeps
    it active and its run running (the heartbeat is stamped with the database's time)."""
    monkeypatch.setenv("MIRADA_STALE_AFTER_SECONDS", "60")
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match")
    with monkeypatch.context() as skewed:
        _skew_python_clock(skewed, -120)
        wid = _worker("behind")
        assert queue.claim_next(wid, ["cpu"], []) is not None
        assert queue.heartbeat(wid, run_id).status == WorkerStatus.active
    assert queue.requeue_stale() == []
    assert _worker_status(wid) == WorkerStatus.active
    assert _run(run_id).status == RunStatus.running
    with read_session() as s:
        beat, now = s.execute(select(Worker.heartbeat_at, db_now()).where(Worker.id == wid)).one()
        started = s.scalar(select(Run.started_at).where(Run.id == run_id))
    assert abs((now - beat).total_seconds()) < 5, (beat, now)
    assert started is not None and abs((now - started).total_seconds()) < 5


def test_worker_with_a_fast_clock_is_still_declared_lost(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the same fix: a clock 2 minutes ahead must not hide a dead worker."""
    monkeypatch.setenv("MIRADA_STALE_AFTER_SECONDS", "60")
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match")
    with monkeypatch.context() as skewed:
        _skew_python_clock(skewed, 120)
        wid = _worker("ahead")
        assert queue.claim_next(wid, ["cpu"], []) is not None
        queue.heartbeat(wid, run_id)
    # then it died: its last heartbeat is 61 s old on the database's clock
    backdate_heartbeat(wid, 61)
    assert queue.requeue_stale() == [run_id]
    assert _worker_status(wid) == WorkerStatus.lost


def test_lost_idle_worker_claims_nothing_until_a_heartbeat_revives_it(db_url: str) -> None:
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match")
    wid = _worker("paused")
    backdate_heartbeat(wid, 3600)
    assert queue.requeue_stale() == []
    assert _worker_status(wid) == WorkerStatus.lost
    with pytest.raises(queue.WorkerNotActive):
        queue.claim_next(wid, ["cpu"], [])
    assert _run(run_id).status == RunStatus.queued and _run(run_id).attempts == 0
    beat = queue.heartbeat(wid)
    assert beat == queue.Heartbeat(WorkerStatus.active, revived=True)
    claimed = queue.claim_next(wid, ["cpu"], [])
    assert claimed is not None and claimed.id == run_id and claimed.attempts == 1
    assert queue.heartbeat(wid, run_id) == queue.Heartbeat(WorkerStatus.active)


def test_lost_worker_that_kept_its_run_comes_back_and_finishes_it(db_url: str) -> None:
    """Declared lost, but its run was not re-queued yet (e.g. locked at that moment)."""
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match")
    wid = _worker()
    assert queue.claim_next(wid, ["cpu"], []) is not None
    with write_session() as s:  # lost, but the sweep did not reach its run
        s.execute(update(Worker).where(Worker.id == wid).values(status=WorkerStatus.lost))
    assert queue.heartbeat(wid, run_id).revived
    assert queue.requeue_stale() == []
    assert _finish(run_id, wid)
    assert _run(run_id).status == RunStatus.succeeded and _run(run_id).attempts == 1


def test_lost_worker_whose_run_was_taken_stays_lost_and_writes_nothing(db_url: str) -> None:
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match")
    paused = _worker("paused")
    assert queue.claim_next(paused, ["cpu"], []) is not None
    backdate_heartbeat(paused, 3600)
    assert queue.requeue_stale() == [run_id]
    rescuer = _worker("rescuer")
    assert queue.claim_next(rescuer, ["cpu"], []) is not None
    assert queue.heartbeat(paused, run_id) == queue.Heartbeat(WorkerStatus.lost)
    assert _worker_status(paused) == WorkerStatus.lost
    with pytest.raises(queue.WorkerNotActive):
        queue.claim_next(paused, ["cpu"], [])
    assert not queue.update_progress(run_id, paused, 1, 2)
    assert not _finish(run_id, paused)
    assert _finish(run_id, rescuer)
    run = _run(run_id)
    assert run.status == RunStatus.succeeded and run.worker_id == rescuer and run.attempts == 2
    with read_session() as s:
        assert s.scalar(select(func.count()).where(Metric.run_id == run_id)) == 1


def test_paused_worker_drops_its_taken_run_and_stops(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The real loop: the run is re-queued while the worker is silent (as after SIGSTOP);
    its heartbeat then learns it, the task's next progress write is refused, nothing is
    stored, the worker logs why and stops."""
    from mirada.worker.context import RunContext
    from mirada.worker.main import WorkerLoop
    from mirada.worker.model import LazyModel
    from mirada.worker.tasks.common import TaskOutput

    monkeypatch.setenv("MIRADA_HEARTBEAT_SECONDS", "1")
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match")
    loop: WorkerLoop

    def execute(ctx: RunContext, model: LazyModel) -> TaskOutput:
        backdate_heartbeat(loop.worker_id, 3600)  # the pause, as the rest of the cluster sees it
        assert queue.requeue_stale() == [run_id]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ctx.progress(1, 10, force=True)  # raises once the run is no longer ours
            time.sleep(0.1)
        raise AssertionError("the worker kept a run that was taken away")

    loop = WorkerLoop(
        name="sleeper",
        burst=False,
        poll_seconds=0.1,
        show_progress=False,
        executor_for=lambda task: execute,
        collect_hardware=False,
        devices_override=("cpu",),
    )
    caplog.set_level(logging.INFO, logger="mirada.worker")
    done = threading.Event()

    def serve() -> None:
        loop.serve()
        done.set()

    threading.Thread(target=serve, daemon=True).start()
    assert done.wait(30), "the worker did not stop"
    assert loop.lost
    run = _run(run_id)
    assert run.status == RunStatus.queued and run.attempts == 1 and run.worker_id is None
    with read_session() as s:
        assert s.scalar(select(func.count()).where(Metric.run_id == run_id)) == 0
    assert _worker_status(loop.worker_id) == WorkerStatus.stopped
    text = caplog.text
    assert "re-queued while this worker was declared lost; results dropped" in text
    assert "declared lost" in text and "stopping" in text


def test_idle_worker_declared_lost_serves_again(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real loop, idle when it is declared lost: it takes the next run normally."""
    from mirada.worker.main import WorkerLoop
    from mirada.worker.tasks.common import TaskOutput

    monkeypatch.setenv("MIRADA_HEARTBEAT_SECONDS", "60")  # only the loop's own beat revives it
    ds = dataset_row()
    loop = WorkerLoop(
        name="napper",
        burst=True,
        show_progress=False,
        executor_for=lambda task: (
            lambda ctx, model: TaskOutput(RunResults(metrics=[MetricValue("x", 1.0)]), {}, "cpu")
        ),
        collect_hardware=False,
        devices_override=("cpu",),
    )
    original = queue.register_worker

    def register_then_nap(*args: Any) -> tuple[int, int | None]:
        ids = original(*args)
        backdate_heartbeat(ids[0], 3600)
        queue.requeue_stale()  # another worker's sweep declares it lost before it claims
        return ids

    monkeypatch.setattr(queue, "register_worker", register_then_nap)
    run_id = queue.enqueue(ds, MODEL, "match")
    assert loop.serve() == 1
    assert not loop.lost
    run = _run(run_id)
    assert run.status == RunStatus.succeeded and run.attempts == 1


def test_dashboard_sees_a_worker_with_a_slow_clock(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'Is anyone serving?' compares heartbeats with the database's clock as well."""
    from mirada.queries.runs import recent_workers

    wid = _worker("behind")
    with monkeypatch.context() as skewed:
        _skew_python_clock(skewed, 120)  # the dashboard's clock is ahead
        assert [w["id"] for w in recent_workers(60)] == [wid]
    backdate_heartbeat(wid, 61)
    assert recent_workers(60) == []


SKEW = ("--skew", "-120")


@pytest.mark.slow
def test_worker_process_with_a_clock_two_minutes_behind_keeps_its_run(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real worker process whose Python clock is 2 minutes behind (tests/queue_worker.py
    --skew); the sweeper here keeps finding it alive. (libfaketime was tried: under it
    Python's time.sleep fails with EINVAL or Event.wait hangs, so the skew is patched in.)"""
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match")
    log = tmp_path / "executions.log"
    env = {**os.environ, "MIRADA_HEARTBEAT_SECONDS": "1", "MIRADA_STALE_AFTER_SECONDS": "3"}
    script = Path(__file__).with_name("queue_worker.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--mode", "slow", "--log", str(log), "--forever", *SKEW],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().strip()):
            assert time.monotonic() < deadline, "the worker never started the run"
            time.sleep(0.1)
        monkeypatch.setenv("MIRADA_STALE_AFTER_SECONDS", "3")
        wid = worker_of(run_id)
        for _ in range(2):  # twice: its beats keep coming
            # Silent for a minute as far as the database knows: only a new beat stamped with
            # the database's clock (the worker's own runs 2 minutes behind) makes it fresh.
            backdate_heartbeat(wid, 60)
            deadline = time.monotonic() + 10
            while heartbeat_age(wid) >= 3:
                assert time.monotonic() < deadline, "no fresh heartbeat on the database's clock"
                time.sleep(0.1)
            assert queue.requeue_stale() == []
        run = _run(run_id)
        assert run.status == RunStatus.running and run.attempts == 1, run.error
        with read_session() as s:
            beat, now = s.execute(
                select(Worker.heartbeat_at, db_now()).where(Worker.id == run.worker_id)
            ).one()
        assert (now - beat).total_seconds() < 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert _run(run_id).status == RunStatus.queued  # given back on SIGTERM, attempt uncounted


# --- item 5: runs that kill their worker -------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"batch_size": 100_000_000}, "--batch-size: batch size 100000000 is outside 1..4096"),
        ({"batch_size": 0}, "--batch-size: batch size 0 is outside"),
        ({"max_attempts": -5}, "--max-attempts must be between 1 and 20 (got -5)"),
        ({"max_attempts": 0}, "--max-attempts must be between 1 and 20 (got 0)"),
        ({"max_attempts": 1000}, "--max-attempts must be between 1 and 20"),
        ({"requires": ""}, "--requires wants a worker label"),
        ({"requires": "x" * 201}, "--requires wants a worker label"),
    ],
)
def test_enqueue_refuses_numbers_that_would_kill_or_loop(
    db_url: str, kwargs: dict[str, Any], needle: str
) -> None:
    ds = dataset_row()
    with pytest.raises(MiradaError, match=re.escape(needle)):
        queue.enqueue(ds, MODEL, "match", **kwargs)
    with read_session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 0


def test_enqueue_refuses_huge_benchmark_batch_sizes(db_url: str) -> None:
    ds = dataset_row()
    with pytest.raises(MiradaError, match=r"--batch-sizes: batch size 100000000 is outside"):
        queue.enqueue(ds, MODEL, "benchmark", options=BenchmarkRunOptions(batch_sizes=(1, 10**8)))
    largest = BenchmarkRunOptions(batch_sizes=(1, 4096))
    assert queue.enqueue(ds, MODEL, "benchmark", options=largest) > 0


def test_cli_refuses_before_queueing_anything(db_url: str) -> None:
    from cli_runner import run_cli

    ds = dataset_row()
    with read_session() as s:
        name = s.scalar(select(Dataset.name).where(Dataset.id == ds))
    assert name is not None
    for args, needle in [
        (("--max-attempts", "-5"), "--max-attempts must be between 1 and 20 (got -5)"),
        (("--batch-size", "100000000"), "outside 1..4096"),
        (("--task", "benchmark", "--batch-sizes", "1,100000000"), "--batch-sizes: batch size"),
    ]:
        task = () if "--task" in args else ("--task", "match")
        result = run_cli("queue", "--dataset", name, "--model", MODEL, *task, *args)
        assert result.returncode == 2, result
        assert needle in result.stderr and "Traceback" not in result.stderr
    with read_session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 0


def test_run_that_keeps_losing_its_worker_fails_saying_so(db_url: str) -> None:
    """Each attempt's worker is killed mid-run (as by the kernel's OOM killer): after
    max_attempts the run fails, saying how often and what to try."""
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match", max_attempts=3)
    for attempt in range(1, 4):
        wid = _worker(f"victim{attempt}")
        claimed = queue.claim_next(wid, ["cpu"], [])
        assert claimed is not None and claimed.id == run_id and claimed.attempts == attempt
        backdate_heartbeat(wid, 3600)  # killed: it never heartbeats again
        assert queue.requeue_stale() == [run_id]
        expected = RunStatus.queued if attempt < 3 else RunStatus.failed
        assert _run(run_id).status == expected
    error = _run(run_id).error or ""
    assert "its worker was lost 3 times while running it" in error
    assert "victim3" in error and "out of memory" in error
    assert "smaller --batch-size" in error and "--batch-sizes" in error
    assert "more memory" in error and f"mirada retry {run_id}" in error
    assert queue.claim_next(_worker("next"), ["cpu"], []) is None, "it kills no further worker"


def test_graceful_stops_do_not_count_as_lost_workers(db_url: str) -> None:
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match", max_attempts=2)
    wid = _worker("polite")
    for _ in range(3):  # given back three times: no attempt spent
        assert queue.claim_next(wid, ["cpu"], []) is not None
        assert queue.release_run(run_id, wid)
    claimed = queue.claim_next(wid, ["cpu"], [])
    assert claimed is not None and claimed.attempts == 1
    backdate_heartbeat(wid, 3600)
    assert queue.requeue_stale() == [run_id]
    rescuer = _worker("rescuer")
    assert queue.claim_next(rescuer, ["cpu"], []) is not None
    backdate_heartbeat(rescuer, 3600)
    queue.requeue_stale()
    assert "lost 2 times" in (_run(run_id).error or "")


# --- a read-only database -----------------------------------------------------------------

READ_COMMANDS = (("runs",), ("runs", "--json"), ("datasets",), ("show", "1"))


def _seed_one_run() -> int:
    ds = dataset_row()
    return queue.enqueue(ds, MODEL, "match")


def _assert_reads_work_and_writes_refused(run_id: int) -> None:
    from cli_runner import run_cli

    for args in READ_COMMANDS:
        result = run_cli(*[str(run_id) if a == "1" else a for a in args])
        assert result.returncode == 0, (args, result.stderr)
    assert MODEL in run_cli("runs").stdout
    dataset = str(_run(run_id).dataset_id)
    queue_one = ("queue", "--dataset", dataset, "--model", MODEL, "--task", "match")
    for args in (("cancel", str(run_id)), queue_one):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result)
        assert "is read-only" in result.stderr and "writable" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    with pytest.raises(DatabaseReadOnly, match="is read-only"):
        queue.cancel_run(run_id)
    assert queue.run_status(run_id) == RunStatus.queued


def test_read_only_sqlite_uri_reads_and_refuses_writes(
    mirada_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened with ?mode=ro (SQLite refuses every write: the same failure as a file this
    user cannot write, which chmod cannot produce for root, who runs these tests here)."""
    run_id = _seed_one_run()
    dispose_engines()
    db = mirada_home / "mirada.db"
    monkeypatch.setenv("MIRADA_DATABASE_URL", f"sqlite:///file:{db}?mode=ro&uri=true")
    _assert_reads_work_and_writes_refused(run_id)


@contextmanager
def _read_only_folder(folder: Path) -> Iterator[None]:
    """Make `folder` read-only for this process: chmod for an ordinary user; as root (who
    ignores file modes) a read-only bind mount over it, or skip where mounting is refused."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root and cannot bind-mount: {mounted.stderr.decode()}")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True
        )
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_sqlite_folder_reads_and_refuses_writes(mirada_home: Path) -> None:
    """The file and its folder cannot be written (a read-only mount, someone else's files):
    no -shm file can be created, so even opening it used to fail."""
    run_id = _seed_one_run()
    dispose_engines()  # closes the connections: the -wal and -shm files go
    assert not (mirada_home / "mirada.db-shm").exists()
    with _read_only_folder(mirada_home):
        _assert_reads_work_and_writes_refused(run_id)
        dispose_engines()


@pytest.mark.empty_home
def test_read_only_sqlite_at_an_older_schema_says_to_upgrade_it_elsewhere(
    mirada_home: Path,
) -> None:
    from alembic import command
    from cli_runner import run_cli

    from mirada.db.engine import get_engine
    from mirada.db.migrate import alembic_config

    old = get_engine(f"sqlite:///{mirada_home / 'mirada.db'}", migrate=False)
    command.upgrade(alembic_config(old), "0002")
    dispose_engines()
    with _read_only_folder(mirada_home):
        result = run_cli("runs")
        dispose_engines()
    assert result.returncode == 2, result
    assert (
        "is read-only" in result.stderr
        and "(revision 0002) must first be upgraded" in result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.postgres
def test_read_only_postgres_reads_and_refuses_writes(
    postgres_url: str, mirada_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only role or standby: every transaction is read-only (SQLSTATE 25006)."""
    monkeypatch.setenv("MIRADA_DATABASE_URL", postgres_url)
    dispose_engines()
    run_id = _seed_one_run()
    dispose_engines()
    read_only = postgres_url + "%20-cdefault_transaction_read_only%3Don"
    monkeypatch.setenv("MIRADA_DATABASE_URL", read_only)
    _assert_reads_work_and_writes_refused(run_id)
