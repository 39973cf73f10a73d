"""The worker loop: register, heartbeat, claim one run at a time, execute, store.

Signals: the first SIGTERM/SIGINT lets the current batch finish, gives the run back to the
queue and exits; a second one exits at once (the run is re-queued by whoever notices the
missing heartbeat).

Declared lost (its heartbeats stopped reaching the database for MIRADA_STALE_AFTER_SECONDS: the
process was paused, the machine slept, the database was unreachable): the next heartbeat makes
it active again if its current run is still its own; if that run was re-queued meanwhile, the
worker drops it without writing results, says why, and stops (`lost` is then True).

Its SQLite file deleted or replaced (mirada.db removed, a backup restored over it): every
session checks that the path still names the file the worker opened (mirada.db.engine), so the
claim, heartbeat or finish that comes next fails instead of reporting a run stored in a file
that is gone. The worker then stops, writing nothing more, and `serve` raises DatabaseGone
(the CLI prints it and exits 2).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from mirada import queue
from mirada.config import get_settings
from mirada.db import DatabaseFileReplaced
from mirada.domain import Device, Task, WorkerStatus
from mirada.errors import MiradaError
from mirada.queue import ClaimedRun
from mirada.worker.context import RunCancelled, RunContext, StopRequested
from mirada.worker.model import LazyModel, ModelRequest
from mirada.worker.tasks import executor_for as default_executor_for

logger = logging.getLogger(__name__)


class DatabaseGone(MiradaError):
    """The worker's SQLite file was deleted or replaced while it ran; it stopped."""


# How `mirada worker` prints this module's INFO lines (configured by the CLI, not here).
LOG_FORMAT = "[mirada worker %(asctime)s] %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"


@dataclass
class WorkerLoop:
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    device: Device = Device.auto
    labels: tuple[str, ...] = ()
    burst: bool = False
    poll_seconds: float = 1.0
    show_progress: bool = True
    executor_for: Callable[[Task], Callable[..., Any]] = default_executor_for
    collect_hardware: bool = True
    devices_override: tuple[Device, ...] | None = None  # tests: skip torch device probing
    stop_event: threading.Event = field(default_factory=threading.Event)
    processed: int = 0
    lost: bool = False  # stopped because its run was taken while it was declared lost
    database_gone: str | None = None  # why it stopped: its database file went away
    _signals: int = 0
    _current: int | None = None  # the run being executed (read by the heartbeat thread)

    def serve(self) -> int:
        """Run until stopped (or, with burst, until the queue is empty). Returns runs processed."""
        devices = self._devices()
        profile = None
        if self.collect_hardware:
            from mirada.hardware import collect_profile

            profile = collect_profile()
        self.worker_id, self.profile_id = queue.register_worker(
            self.name, socket.gethostname(), os.getpid(), self.labels, devices, profile
        )
        self.devices = devices
        logger.info(
            "%s (id %s) serving %s, labels %s",
            self.name,
            self.worker_id,
            [str(d) for d in devices],
            list(self.labels),
        )
        beat = threading.Thread(target=self._heartbeat, daemon=True)
        beat.start()
        self._install_signals()
        try:
            sweep_every = get_settings().heartbeat_seconds
            next_sweep = 0.0
            while not self.stop_event.is_set():
                # Looking for lost workers takes the write lock; once per heartbeat interval
                # is enough (a worker counts as lost only after MIRADA_STALE_AFTER_SECONDS).
                if time.monotonic() >= next_sweep:
                    queue.requeue_stale()
                    next_sweep = time.monotonic() + sweep_every
                try:
                    claimed = queue.claim_next(self.worker_id, devices, self.labels)
                except queue.WorkerNotActive:
                    # Declared lost while idle: a heartbeat now brings it back (nothing was
                    # taken from it); anything else means stop.
                    if self._beat() != WorkerStatus.active:
                        break
                    continue
                if claimed is None:
                    if self.burst:
                        logger.info("queue empty; exiting (--burst)")
                        break
                    self.stop_event.wait(self.poll_seconds)
                    continue
                self._current = claimed.id
                try:
                    self._execute(claimed)
                except DatabaseFileReplaced as exc:
                    self._database_gone(exc, claimed.id)
                    break
                finally:
                    self._current = None
                self.processed += 1
        except DatabaseFileReplaced as exc:  # at a claim, or looking for lost workers
            self._database_gone(exc, None)
        finally:
            self.stop_event.set()
            if self.database_gone is None:  # else there is no database to write to
                queue.stop_worker(self.worker_id)
        if self.database_gone is not None:
            raise DatabaseGone(self.database_gone)
        return self.processed

    def _database_gone(self, exc: DatabaseFileReplaced, run_id: int | None) -> None:
        """Stop: the database file was deleted or replaced (seen by either thread)."""
        if self.database_gone is None:
            if run_id is None:
                what = "no run was in progress"
            else:
                what = (
                    f"its run {run_id} was not recorded (if the original file is put back, "
                    "the run is queued again once this worker counts as lost)"
                )
            self.database_gone = (
                f"the database file {exc.path} was deleted or replaced while this worker "
                f"ran; {what}. It stopped without writing to the file now at that path; "
                "start the worker again to serve that database"
            )
        self.stop_event.set()

    def _devices(self) -> list[Device]:
        if self.devices_override is not None:
            return [Device(d) for d in self.devices_override]
        from mirada.hardware import available_devices
        from mirada.vlm.registry import resolve_device

        if self.device == Device.auto:
            return available_devices()
        return [resolve_device(self.device)]  # raises a clear error if unavailable

    def _heartbeat(self) -> None:
        interval = get_settings().heartbeat_seconds
        while not self.stop_event.wait(interval):
            try:
                self._beat()
            except DatabaseFileReplaced as exc:
                # The run stops at its next batch (StopRequested) and serve raises.
                self._database_gone(exc, self._current)
                return
            except Exception as exc:  # a DB hiccup must not kill the heartbeat thread
                logger.warning("heartbeat failed: %s", exc)

    def _beat(self) -> WorkerStatus:
        """One heartbeat; acts on what the database answers (revived, or lost: stop)."""
        current = self._current
        beat = queue.heartbeat(self.worker_id, current)
        stale_after = get_settings().stale_after_seconds
        if beat.revived:
            logger.warning(
                "%s was declared lost (no heartbeat reached the database for over %s s: "
                "paused, asleep or cut off?); none of its runs was taken, so it serves again",
                self.name,
                stale_after,
            )
        elif beat.status == WorkerStatus.lost and not self.lost:
            self.lost = True
            logger.warning(
                "%s was declared lost (no heartbeat reached the database for over %s s: "
                "paused, asleep or cut off?) and run %s was re-queued meanwhile: dropping it "
                "without results and stopping; start the worker again",
                self.name,
                stale_after,
                current,
            )
            self.stop_event.set()
        return beat.status

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals == 1:
                logger.info(
                    "%s: finishing the current batch, then stopping (send again to stop now)",
                    signal.Signals(signum).name,
                )
                self.stop_event.set()
            else:
                logger.info("second signal: stopping now")
                try:
                    queue.stop_worker(self.worker_id)
                finally:
                    os._exit(130)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _execute(self, run: ClaimedRun) -> None:
        # "auto" runs use this worker's best device: cuda, then mps, then cpu.
        best = next((d for d in (Device.cuda, Device.mps) if d in self.devices), self.devices[0])
        device = best if run.device is Device.auto else run.device
        logger.info(
            "run %s: %s %s on %s (attempt %s)", run.id, run.task, run.model_id, device, run.attempts
        )
        ctx = RunContext(run, self.worker_id, self.stop_event, show_progress=self.show_progress)
        model = LazyModel(ModelRequest.for_run(run, device))
        started = time.perf_counter()
        try:
            output = self.executor_for(run.task)(ctx, model)
            ok = queue.finish_run(
                run.id,
                self.worker_id,
                output.results,
                hardware_profile_id=self.profile_id,
                model_fingerprint=output.fingerprint,
                resolved_device=output.resolved_device or device,
            )
            took = time.perf_counter() - started
            if ok:
                logger.info("run %s: succeeded in %.1f s", run.id, took)
            else:
                self._dropped(run.id)
        except StopRequested:
            if queue.release_run(run.id, self.worker_id):
                logger.info("run %s: stopped mid-run and given back to the queue", run.id)
            else:
                self._dropped(run.id)
        except RunCancelled:
            self._dropped(run.id)
        except DatabaseFileReplaced:
            raise  # not this run's failure: there is no database to record it in
        except Exception as exc:  # any failure fails this run only; the worker keeps serving
            message = str(exc) if isinstance(exc, MiradaError) else f"{type(exc).__name__}: {exc}"
            if queue.fail_run(run.id, self.worker_id, message, traceback.format_exc()):
                logger.info("run %s: failed: %s", run.id, message)
            else:
                self._dropped(run.id)
        finally:
            ctx.close()
            if model.loaded:
                del model
                _free_memory()

    def _dropped(self, run_id: int) -> None:
        """The run stopped being this worker's mid-run: say why. A heartbeat naming it tells
        whether this worker was declared lost meanwhile (and then stops it)."""
        try:
            self._beat()
        except Exception as exc:  # the reason is then unknown; the run is dropped either way
            logger.warning("heartbeat failed: %s", exc)
        why = (
            "re-queued while this worker was declared lost"
            if self.lost
            else "cancelled or re-assigned"
        )
        logger.info("run %s: %s; results dropped", run_id, why)


def _free_memory() -> None:
    # A full collection costs ~0.1 s with torch loaded; only pay it after a model was loaded.
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
