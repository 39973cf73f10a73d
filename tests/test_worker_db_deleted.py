"""A SQLite database file deleted or replaced under a running worker (issue 22 §6).

The worker must not report a run stored into a file that is gone, must not keep polling it,
and must not create an empty database at the path: it stops with one line saying what
happened to which run, and a non-zero exit."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from run_helpers import dataset_row, worker_named
from sqlalchemy import create_engine, func, select

from mirada import queue
from mirada.db import (
    DatabaseFileReplaced,
    dispose_engines,
    get_engine,
    read_session,
    write_session,
)
from mirada.db.models import Metric, Run
from mirada.domain import RunStatus
from mirada.results import MetricValue, RunResults
from mirada.worker.context import RunContext
from mirada.worker.main import DatabaseGone, WorkerLoop
from mirada.worker.model import LazyModel
from mirada.worker.tasks.common import TaskOutput

MODEL = "hf-clip:mirada/demo-clip"  # never loaded: the executors here are stand-ins
Executor = Callable[[RunContext, LazyModel], TaskOutput]


def _output() -> TaskOutput:
    return TaskOutput(RunResults(metrics=[MetricValue("x", 1.0)]), {}, "cpu")


def _loop(execute: Executor) -> WorkerLoop:
    return WorkerLoop(
        name="orphan",
        burst=False,  # a serving worker: only the missing file may stop it
        poll_seconds=0.1,
        show_progress=False,
        executor_for=lambda task: execute,
        collect_hardware=False,
        devices_override=("cpu",),
    )


def _serve_until_gone(loop: WorkerLoop) -> str:
    """Serve in a thread (the test must not hang if the worker never stops); the message."""
    raised: list[BaseException] = []

    def serve() -> None:
        try:
            loop.serve()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the worker kept serving a database file that is gone"
    assert len(raised) == 1 and isinstance(raised[0], DatabaseGone), raised
    return str(raised[0])


def _run_in(path: Path, run_id: int) -> tuple[RunStatus, int]:
    """The run's status and its number of metrics, read from the file now at `path`."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            status = conn.scalar(select(Run.status).where(Run.id == run_id))
            metrics = conn.scalar(select(func.count()).where(Metric.run_id == run_id))
    finally:
        engine.dispose()
    assert status is not None
    return RunStatus(status), int(metrics or 0)


def test_run_finishing_after_its_file_was_deleted_is_not_reported(
    mirada_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = mirada_home / "mirada.db"
    run_id = queue.enqueue(dataset_row(), MODEL, "match")

    def execute(ctx: RunContext, model: LazyModel) -> TaskOutput:
        db.unlink()  # rm mirada.db while the run runs
        return _output()

    caplog.set_level(logging.INFO, logger="mirada.worker")
    message = _serve_until_gone(_loop(execute))
    assert message.startswith(f"the database file {db} was deleted or replaced while this worker")
    assert f"its run {run_id} was not recorded" in message
    assert "succeeded" not in caplog.text
    assert not db.exists(), "an empty database was created in place of the deleted one"


def test_file_replaced_during_a_run_is_left_as_it_was(mirada_home: Path) -> None:
    """A copy put in place of the file (a backup restored over it): the worker writes
    nothing into it; the run there stays as the copy has it."""
    db = mirada_home / "mirada.db"
    run_id = queue.enqueue(dataset_row(), MODEL, "match")

    def execute(ctx: RunContext, model: LazyModel) -> TaskOutput:
        copy = mirada_home / "restored.db"
        with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
            source.backup(target)  # a consistent copy, the claim included
        os.replace(copy, db)
        return _output()

    message = _serve_until_gone(_loop(execute))
    assert f"its run {run_id} was not recorded" in message
    dispose_engines()
    assert _run_in(db, run_id) == (RunStatus.running, 0)


def test_heartbeat_notices_during_a_long_run(
    mirada_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that writes no progress for a while: the heartbeat thread sees the file gone and
    asks the run to stop at its next batch."""
    monkeypatch.setenv("MIRADA_HEARTBEAT_SECONDS", "1")
    db = mirada_home / "mirada.db"
    run_id = queue.enqueue(dataset_row(), MODEL, "match")
    asked_to_stop: list[bool] = []

    def execute(ctx: RunContext, model: LazyModel) -> TaskOutput:
        db.unlink()
        asked_to_stop.append(ctx.stop_event.wait(20))  # one long batch
        ctx.progress(1, 2)  # the next batch: stops here
        raise AssertionError("the run went on after its database file was deleted")

    message = _serve_until_gone(_loop(execute))
    assert asked_to_stop == [True]
    assert f"its run {run_id} was not recorded" in message
    assert not db.exists()


def test_new_connections_never_create_a_file_in_place_of_the_deleted_one(
    mirada_home: Path,
) -> None:
    db = mirada_home / "mirada.db"
    engine = get_engine()
    db.unlink()
    engine.pool.dispose()  # whatever connection comes next is a new one
    for session in (read_session, write_session):
        with pytest.raises(DatabaseFileReplaced, match="was deleted or replaced"), session():
            pass
    with pytest.raises(DatabaseFileReplaced), engine.connect():
        pass
    assert not db.exists()


@pytest.mark.slow
def test_idle_worker_process_stops_with_one_line_when_its_file_is_deleted(
    mirada_home: Path,
) -> None:
    """`mirada worker` (not --burst), waiting for runs: it used to poll the unlinked file for
    good. It stops within a poll or a heartbeat, says why, and exits 2."""
    db = mirada_home / "mirada.db"
    worker = subprocess.Popen(
        [sys.executable, "-m", "mirada", "worker", "--name", "idle", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            try:
                worker_named("idle")
                break
            except Exception:  # not registered yet
                time.sleep(0.2)
        dispose_engines()  # this process lets go of the file too
        db.unlink()
        _out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"mirada worker: error: the database file {db} was deleted or replaced")
    assert "no run was in progress" in last and "Traceback" not in err
    assert not db.exists()
