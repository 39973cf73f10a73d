"""The database queue under real concurrency, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_helpers import backdate_heartbeat, dataset_row, worker_named
from sqlalchemy import func, select

from mirada import queue
from mirada.db import read_session
from mirada.db.models import Metric, Run, Worker
from mirada.errors import MiradaError

SCRIPT = Path(__file__).with_name("queue_worker.py")
MODEL = "hf-clip:mirada/demo-clip"


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
    ds = dataset_row()
    with pytest.raises(MiradaError, match="cannot run task 'caption'"):
        queue.enqueue(ds, MODEL, "caption")
    with pytest.raises(MiradaError, match="does not exist"):
        queue.enqueue(ds + 1000, MODEL, "match")


def test_the_cli_parses_vocabularies_at_the_edge(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--device, --dtype and --task become enums in the parser, refused in parse_choice's words."""
    from mirada.cli import main

    dataset_row("edge")
    base = ["queue", "--dataset", "edge", "--model", MODEL]
    for extra, message in (
        (["--task", "match", "--device", "tpu"], "unknown device 'tpu'; choose one of: auto, cpu"),
        (["--task", "match", "--dtype", "fp64"], "unknown dtype 'fp64'; choose one of: fp32, fp16"),
        (["--task", "rank"], "unknown task 'rank'; choose one of: match, caption, benchmark"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main([*base, *extra])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_claimed_run_carries_enums_and_typed_options(db_url: str) -> None:
    from mirada.domain import Device, Dtype, Task
    from mirada.run_options import BenchmarkRunOptions, MatchRunOptions, Variant

    ds = dataset_row()
    variants = (Variant(Dtype.bf16, compile=True),)
    bench = queue.enqueue(
        ds, MODEL, Task.benchmark, device=Device.cpu, options=BenchmarkRunOptions(variants=variants)
    )
    match = queue.enqueue(ds, MODEL, Task.match, dtype=Dtype.bf16)
    wid, _ = queue.register_worker("w", "h", 1, [], [Device.cpu], None)
    first, second = queue.claim_next(wid, [Device.cpu], []), queue.claim_next(wid, [Device.cpu], [])
    assert first is not None and second is not None and (first.id, second.id) == (bench, match)
    assert first.task is Task.benchmark and first.device is Device.cpu and first.dtype is Dtype.fp32
    assert first.options == BenchmarkRunOptions(variants=variants)
    assert second.task is Task.match and second.device is Device.auto
    assert second.dtype is Dtype.bf16 and second.options == MatchRunOptions()


def test_a_run_whose_stored_options_no_longer_parse_fails_alone(db_url: str) -> None:
    """Stored options are parsed once, when claimed; a row that does not parse fails with the
    reason and the worker takes the next run instead of stopping."""
    from sqlalchemy import update

    from mirada.db import write_session
    from mirada.domain import RunStatus

    ds = dataset_row()
    bad, good = queue.enqueue(ds, MODEL, "match"), queue.enqueue(ds, MODEL, "match")
    with write_session() as s:
        s.execute(update(Run).where(Run.id == bad).values(options={"rerank_k": 0}))
    wid, _ = queue.register_worker("w", "h", 1, [], ["cpu"], None)
    claimed = queue.claim_next(wid, ["cpu"], [])
    assert claimed is not None and claimed.id == good
    with read_session() as s:
        row = s.get(Run, bad)
        assert row is not None and row.status is RunStatus.failed
        assert row.error is not None and "run option rerank_k" in row.error


def test_claim_respects_device_and_labels(db_url: str) -> None:
    ds = dataset_row()
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

    ds = dataset_row()
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
    ds = dataset_row()
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
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match")
    log = tmp_path / "executions.log"
    victim = _spawn("slow", log, "--name", "victim", "--forever")
    assert _wait_for(lambda: log.exists() and log.read_text().strip(), 60), "victim never started"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert queue.run_status(run_id) == "running"
    backdate_heartbeat(worker_named("victim"), 60)  # silent past MIRADA_STALE_AFTER_SECONDS=3
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
    ds = dataset_row()
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
    ds = dataset_row()
    run_id = queue.enqueue(ds, MODEL, "match", max_attempts=1)
    wid, _ = queue.register_worker("w", "h", 1, [], ["cpu"], None)
    assert queue.claim_next(wid, ["cpu"], []) is not None
    backdate_heartbeat(wid, 3600)  # its last heartbeat reached the database an hour ago
    touched = queue.requeue_stale()
    assert touched == [run_id]
    with read_session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.status == "failed"
        assert "its worker was lost 1 time while running it" in (run.error or "")


def test_queue_says_start_a_worker_only_when_none_is_alive(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mirada queue` names the live worker that will take the runs, and says how to start one
    only when none heartbeated within the stale limit (the database's clock decides)."""
    from mirada.cli import main

    dataset_row("alive")
    command = ["queue", "--dataset", "alive", "--model", MODEL, "--task", "match"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "no worker is running: start one with `mirada worker`" in out
    wid, _ = queue.register_worker("busy-bee", "host", 1, [], ["cpu"], None)
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "a worker is running (busy-bee)" in out and "start one" not in out
    # a worker that must run the run (--requires) has to carry the label
    assert main([*command, "--requires", "gpu"]) == 0
    out = capsys.readouterr().out
    assert "no worker with the label 'gpu' is running" in out
    assert "`mirada worker --label gpu`" in out
    backdate_heartbeat(wid, 3600)  # silent for an hour: not alive, though never stopped
    assert main(command) == 0
    assert "no worker is running: start one" in capsys.readouterr().out


def test_cli_import_says_what_to_do_next(
    mirada_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `mirada import`, the next command it prints is one that runs as printed."""
    import shlex

    from mirada.cli import main
    from mirada.demo.synthetic import write_demo_dataset

    src = write_demo_dataset(tmp_path / "shapes", split="demo", n=4)
    assert main(["import", str(src), "--name", "my shapes"]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("next: ")]
    suggested = line.split("`")[1]
    assert suggested.startswith("mirada queue --dataset 'my shapes' --model ID --task match")
    args = shlex.split(suggested)[1:]
    args[args.index("ID")] = MODEL
    assert main(args) == 0
    assert "queued run " in capsys.readouterr().out
