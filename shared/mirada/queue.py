"""The run queue, in the database. The only module that changes run and worker status.

Transitions (the data is `mirada.domain.RUN_TRANSITIONS`; every write here checks it):
queued -> running (claim) -> succeeded (finish_run) | failed (fail_run, or attempts exhausted
after a lost worker) | cancelled (cancel_run); running -> queued (release_run on graceful stop,
or requeue_stale when its worker stopped heartbeating); failed | cancelled -> queued
(retry_run). Workers: active -> stopped (stop_worker) | lost (requeue_stale); lost -> active
(heartbeat, when none of its runs was taken meanwhile) | stopped.

Time: every timestamp that decides liveness is the database's clock (`db_now`), never the
calling process's, so a worker whose clock is off is judged by when its heartbeats arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from mirada.config import get_settings
from mirada.db import read_session, write_session
from mirada.db.models import Dataset, HardwareProfile, Run, Worker, db_now
from mirada.domain import (
    CANCELLABLE,
    RETRYABLE,
    Device,
    Dtype,
    RunStatus,
    Task,
    WorkerStatus,
    can_transition,
)
from mirada.errors import MiradaError, NotFoundError
from mirada.results import RunResults, write_results
from mirada.run_options import BenchmarkRunOptions, RunOptions, check_dtype, pinned
from mirada.tasks import parse_options, task_fit

# Queue-time bounds: a run outside them could only fail later, or kill the worker that takes
# it (a batch of 10^8 images is an out-of-memory kill that comes back with every attempt).
MAX_BATCH_SIZE = 4096
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class ClaimedRun:
    """A run as its worker executes it: every value typed, the options parsed once here."""

    id: int
    dataset_id: int
    model_id: str  # as typed when queued (options.resolved_model_id: what to load)
    task: Task
    device: Device  # as requested: auto, or the device the run must use
    dtype: Dtype
    batch_size: int
    options: RunOptions  # the task's options class (mirada.tasks.TASKS)
    attempts: int


class WorkerNotActive(MiradaError):
    """The worker is not active (declared lost, or stopped): it may not claim runs."""


@dataclass(frozen=True)
class Heartbeat:
    """What the database said to a worker's heartbeat."""

    status: WorkerStatus  # after this heartbeat
    revived: bool = False  # it was lost and this heartbeat made it active again


def validate_run_request(
    model_id: str,
    task: Task,
    device: Device,
    dtype: Dtype,
    batch_size: int,
    options: RunOptions | None = None,
    *,
    max_attempts: int = 3,
    requires: str | None = None,
) -> RunOptions:
    """Refuse at queue time what can never run, with a message that says what to do.

    Takes values already parsed at the edge (CLI, dashboard, bundle); returns the run's
    options as they are stored (`options` or the task's defaults, local model paths pinned)."""
    from mirada.vlm.registry import device_refusal

    _check_batch_size(batch_size, "--batch-size")
    if isinstance(max_attempts, bool) or not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise MiradaError(
            f"--max-attempts must be between 1 and {MAX_ATTEMPTS} (got {max_attempts}): how "
            "many times a run is started before workers lost while running it fail it"
        )
    if requires is not None and (requires != requires.strip() or not 1 <= len(requires) <= 200):
        # "" would match every worker without labels; longer does not fit the column
        raise MiradaError(
            f"--requires wants a worker label of 1 to 200 characters without surrounding "
            f"spaces (got {requires!r}); start the worker with the same --label"
        )
    typed = parse_options(task, options or {})  # refuses another task's options
    check_dtype(typed, dtype)
    if isinstance(typed, BenchmarkRunOptions):
        for size in typed.batch_sizes or ():
            _check_batch_size(size, "--batch-sizes")
    fit = task_fit(model_id, task)  # raises a MiradaError for malformed ids
    if fit.missing:
        raise MiradaError(
            f"model {model_id} cannot run task {str(task)!r} (it lacks "
            f"{', '.join(sorted(fit.missing))}); it can run: {', '.join(fit.able)}"
        )
    refusal = fit.latency_only or device_refusal(model_id, device)
    if refusal:
        raise MiradaError(refusal)
    # local model paths: absolute from here, their files fingerprinted (mirada.vlm.local_files)
    return pinned(typed, model_id)


def _check_batch_size(size: int, flag: str) -> None:
    if isinstance(size, bool) or not 1 <= size <= MAX_BATCH_SIZE:
        raise MiradaError(
            f"{flag}: batch size {size} is outside 1..{MAX_BATCH_SIZE}; a batch that large "
            "would exhaust the worker's memory. Use a smaller one (32 to 256 suits most models)"
        )


def enqueue(
    dataset_id: int,
    model_id: str,
    task: Task,
    *,
    device: Device = Device.auto,
    dtype: Dtype = Dtype.fp32,
    batch_size: int = 32,
    requires: str | None = None,
    options: RunOptions | None = None,
    max_attempts: int = 3,
) -> int:
    typed = validate_run_request(
        model_id,
        task,
        device,
        dtype,
        batch_size,
        options,
        max_attempts=max_attempts,
        requires=requires,
    )
    with write_session() as s:
        if s.get(Dataset, dataset_id) is None:
            raise NotFoundError(f"dataset {dataset_id} does not exist; see `mirada datasets`")
        run = Run(
            dataset_id=dataset_id,
            model_id=model_id,
            task=task,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            requires=requires,
            options=typed.to_dict(),
            status=RunStatus.queued,
            max_attempts=max_attempts,
        )
        s.add(run)
        s.flush()
        return run.id


def register_worker(
    name: str,
    hostname: str,
    pid: int,
    labels: Sequence[str],
    devices: Sequence[Device],
    profile: dict[str, Any] | None,
) -> tuple[int, int | None]:
    """Record a worker and its hardware profile (deduplicated). Returns (worker, profile) ids."""
    from mirada.hardware import profile_fingerprint

    with write_session() as s:
        profile_id = None
        if profile is not None:
            fp = profile_fingerprint(profile)
            profile_id = s.scalar(
                select(HardwareProfile.id).where(HardwareProfile.fingerprint == fp)
            )
            if profile_id is None:
                hp = HardwareProfile(fingerprint=fp, **profile)
                s.add(hp)
                s.flush()
                profile_id = hp.id
        worker = Worker(
            name=name,
            hostname=hostname,
            pid=pid,
            labels=list(labels),
            devices=list(devices),
            hardware_profile_id=profile_id,
            status=WorkerStatus.active,
        )
        s.add(worker)
        s.flush()
        return worker.id, profile_id


def heartbeat(worker_id: int, current_run: int | None = None) -> Heartbeat:
    """Record that the worker is alive (on the database's clock) and tell it where it stands.

    A worker declared lost (it was silent for MIRADA_STALE_AFTER_SECONDS: paused, suspended,
    cut off from the database) comes back to active when `current_run`, the run it is
    executing, if any, is still its own. If that run was taken away meanwhile (re-queued,
    perhaps already claimed elsewhere), it stays lost: the worker must drop the run (its late
    writes are refused anyway) and stop.
    """
    with write_session() as s:
        status = s.scalar(
            update(Worker)
            .where(Worker.id == worker_id)
            .values(heartbeat_at=db_now())
            .returning(Worker.status)
        )
        if status is None:
            raise NotFoundError(f"worker {worker_id} does not exist")
        if status != WorkerStatus.lost:
            return Heartbeat(status)
        if current_run is not None:
            # Cancelled while lost is still its own (it drops it at the next batch); anything
            # else (queued, or running/finished under another worker) was taken.
            kept = s.scalar(
                select(Run.id).where(
                    Run.id == current_run,
                    Run.worker_id == worker_id,
                    Run.status.in_([RunStatus.running, RunStatus.cancelled]),
                )
            )
            if kept is None:
                return Heartbeat(WorkerStatus.lost)
        s.execute(
            update(Worker)
            .where(Worker.id == worker_id, Worker.status == WorkerStatus.lost)
            .values(status=WorkerStatus.active, stopped_at=None)
        )
        return Heartbeat(WorkerStatus.active, revived=True)


def stop_worker(worker_id: int) -> None:
    with write_session() as s:
        s.execute(
            update(Worker)
            .where(Worker.id == worker_id)
            .values(status=WorkerStatus.stopped, stopped_at=db_now())
        )


def claim_next(
    worker_id: int, devices: Sequence[Device], labels: Sequence[str]
) -> ClaimedRun | None:
    """Atomically take the oldest queued run this worker can serve, or None.

    One statement: PostgreSQL locks the picked row with FOR UPDATE SKIP LOCKED so concurrent
    workers pick different rows; SQLite's UPDATE ... RETURNING runs under BEGIN IMMEDIATE.
    Only an active worker claims (WorkerNotActive otherwise): a run given to a worker already
    declared lost would be taken away again and its attempt counted for nothing.

    The run's options are parsed here, once, into its task's options class. A run whose stored
    options no longer parse (written by hand, or by another Mirada) fails with the reason, in
    the same transaction, and the next one is taken: it must not stop the worker.
    """
    _require(RunStatus.queued, RunStatus.running)
    servable = [*devices, Device.auto]
    label_ok = or_(Run.requires.is_(None), Run.requires.in_(list(labels) or [""]))
    pick = (
        select(Run.id)
        .where(Run.status == RunStatus.queued, Run.device.in_(servable), label_ok)
        .order_by(Run.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with write_session() as s:
        # FOR SHARE on PostgreSQL: a concurrent requeue_stale marking this worker lost either
        # waits for this claim to commit (and then sees the run as its orphan) or has already
        # committed (and this finds the worker not active). SQLite: BEGIN IMMEDIATE serialises.
        active = s.scalar(
            select(Worker.id)
            .where(Worker.id == worker_id, Worker.status == WorkerStatus.active)
            .with_for_update(read=True)
        )
        if active is None:
            raise WorkerNotActive(
                f"worker {worker_id} is not active (declared lost or stopped); it claims no runs"
            )
        while True:
            row = s.execute(
                update(Run)
                .where(Run.id == pick, Run.status == RunStatus.queued)
                .values(
                    status=RunStatus.running,
                    worker_id=worker_id,
                    attempts=Run.attempts + 1,
                    started_at=db_now(),
                    finished_at=None,
                    progress_done=0,
                    error=None,
                    traceback=None,
                )
                .returning(
                    Run.id,
                    Run.dataset_id,
                    Run.model_id,
                    Run.task,
                    Run.device,
                    Run.dtype,
                    Run.batch_size,
                    Run.options,
                    Run.attempts,
                )
                .execution_options(synchronize_session=False)
            ).first()
            if row is None:
                return None
            try:
                options = parse_options(row.task, row.options)
            except MiradaError as exc:
                _require(RunStatus.running, RunStatus.failed)
                s.execute(
                    update(Run)
                    .where(Run.id == row.id)
                    .values(status=RunStatus.failed, error=str(exc), finished_at=db_now())
                    .execution_options(synchronize_session=False)
                )
                continue
            return ClaimedRun(
                row.id,
                row.dataset_id,
                row.model_id,
                row.task,
                row.device,
                row.dtype,
                row.batch_size,
                options,
                row.attempts,
            )


def _require(current: RunStatus, target: RunStatus) -> None:
    """Guard every status write with the transition table (a failure here is a bug)."""
    if not can_transition(current, target):
        raise RuntimeError(f"run status {current} -> {target} is not in RUN_TRANSITIONS")


def _update_owned(
    session: Session, run_id: int, owner: int, status: RunStatus | None = None, **values: Any
) -> bool:
    """Update a run only while it is running on worker `owner` (not cancelled or re-assigned)."""
    if status is not None:
        _require(RunStatus.running, status)
        values["status"] = status
    owned = (Run.id == run_id) & (Run.worker_id == owner)
    stmt = (
        update(Run)
        .where(owned & (Run.status == RunStatus.running))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = cast("CursorResult[Any]", session.execute(stmt))  # an UPDATE: has rowcount
    return result.rowcount == 1


# While a run runs, Run.model_fingerprint holds its phase (no column of its own): PHASE_KEY ->
# mirada.domain.Phase value, ATTEMPT_KEY -> the attempt that reported it (an older attempt's
# phase is stale). finish_run replaces it with the model's fingerprint; readers show the
# fingerprint of succeeded runs only (mirada.queries.runs).
PHASE_KEY = "progress_phase"
ATTEMPT_KEY = "progress_attempt"


def update_progress(
    run_id: int,
    worker_id: int,
    done: int,
    total: int,
    *,
    phase: str | None = None,
    attempt: int | None = None,
) -> bool:
    """Store progress (and the phase, when given). False when the run is no longer this
    worker's (cancelled, re-queued)."""
    values: dict[str, Any] = {"progress_done": done, "progress_total": total}
    if phase is not None:
        values["model_fingerprint"] = {PHASE_KEY: str(phase), ATTEMPT_KEY: attempt}
    with write_session() as s:
        return _update_owned(s, run_id, worker_id, **values)


def finish_run(
    run_id: int,
    worker_id: int,
    results: RunResults,
    *,
    hardware_profile_id: int | None,
    model_fingerprint: dict[str, Any] | None,
    resolved_device: Device | None,
) -> bool:
    """Mark succeeded and write all results in ONE transaction. False if the run was taken away."""
    with write_session() as s:
        ok = _update_owned(
            s,
            run_id,
            worker_id,
            status=RunStatus.succeeded,
            finished_at=db_now(),
            hardware_profile_id=hardware_profile_id,
            model_fingerprint=model_fingerprint,
            resolved_device=resolved_device,
            progress_done=Run.progress_total,
        )
        if ok:
            write_results(s, run_id, results)
    return ok


def fail_run(run_id: int, worker_id: int, error: str, traceback: str | None = None) -> bool:
    with write_session() as s:
        return _update_owned(
            s,
            run_id,
            worker_id,
            status=RunStatus.failed,
            error=error,
            traceback=traceback,
            finished_at=db_now(),
        )


def release_run(run_id: int, worker_id: int) -> bool:
    """Graceful stop mid-run: give the run back untouched (this attempt does not count)."""
    with write_session() as s:
        return _update_owned(
            s,
            run_id,
            worker_id,
            status=RunStatus.queued,
            worker_id=None,
            attempts=Run.attempts - 1,
            progress_done=0,
        )


def requeue_stale() -> list[int]:
    """Re-queue runs whose worker stopped heartbeating; fail those out of attempts.

    Returns the ids of the runs touched. Any worker may call this; it is idempotent.
    """
    stale_after = get_settings().stale_after_seconds
    touched: list[int] = []
    with write_session() as s:
        # One UPDATE decides staleness, on the database's clock on both sides. On PostgreSQL a
        # heartbeat committing meanwhile makes it re-check the row and leave the worker active.
        s.execute(
            update(Worker)
            .where(Worker.status == WorkerStatus.active, Worker.heartbeat_at < db_now(-stale_after))
            .values(status=WorkerStatus.lost, stopped_at=db_now())
            .execution_options(synchronize_session=False)
        )
        orphaned = s.execute(
            select(Run.id, Run.attempts, Run.max_attempts, Worker.name)
            .join(Worker, Worker.id == Run.worker_id)
            .where(Run.status == RunStatus.running, Worker.status != WorkerStatus.active)
            .with_for_update(of=Run, skip_locked=True)
        ).all()
        for run_id, attempts, max_attempts, worker_name in orphaned:
            if attempts < max_attempts:
                target = RunStatus.queued
                values: dict[str, Any] = {"worker_id": None, "progress_done": 0}
            else:
                target = RunStatus.failed
                values = {
                    "finished_at": db_now(),
                    "error": lost_worker_message(run_id, attempts, worker_name, stale_after),
                }
            _require(RunStatus.running, target)
            s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == RunStatus.running)
                .values(status=target, **values)
                .execution_options(synchronize_session=False)
            )
            touched.append(run_id)
    return touched


def lost_worker_message(run_id: int, times: int, worker_name: str, stale_after: int) -> str:
    """Why a run failed after its workers kept disappearing, and what to try.

    `times` is the run's attempt count: every earlier attempt ended the same way, since a
    graceful stop gives its attempt back and any other ending is final.
    """
    plural = "time" if times == 1 else "times"
    return (
        f"its worker was lost {times} {plural} while running it (last: worker {worker_name!r} "
        f"sent no heartbeat for over {stale_after} s); giving up after {times} "
        f"attempt{'s' if times != 1 else ''}. A worker that dies mid-run was often killed by "
        "the operating system for running out of memory (see `dmesg` or the worker's log). "
        "Try a smaller --batch-size, fewer or smaller --batch-sizes, or a machine with more "
        f"memory: queue it again with those, or `mirada retry {run_id}` if the cause is gone."
    )


def _statuses(group: frozenset[RunStatus]) -> str:
    return " or ".join(s.value for s in RunStatus if s in group)


def cancel_run(run_id: int) -> RunStatus:
    """Cancel a queued or running run; a running one is dropped by its worker at the next batch."""
    with write_session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist; see `mirada runs`")
        if run.status not in CANCELLABLE:
            raise MiradaError(
                f"run {run_id} is {run.status}; only {_statuses(CANCELLABLE)} runs cancel"
            )
        _require(run.status, RunStatus.cancelled)
        run.status = RunStatus.cancelled
        run.finished_at = db_now()  # a SQL expression: rendered into the UPDATE on flush
        return run.status


def retry_run(run_id: int) -> RunStatus:
    with write_session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist; see `mirada runs`")
        if run.status not in RETRYABLE:
            raise MiradaError(
                f"run {run_id} is {run.status}; only {_statuses(RETRYABLE)} runs can be retried"
            )
        _require(run.status, RunStatus.queued)
        run.status = RunStatus.queued
        run.attempts = 0
        run.error = None
        run.traceback = None
        run.worker_id = None
        run.progress_done = 0
        run.finished_at = None
        return run.status


def run_status(run_id: int) -> RunStatus | None:
    with read_session() as s:
        return s.scalar(select(Run.status).where(Run.id == run_id))
