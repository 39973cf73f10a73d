"""What a task sees of the worker: the run, progress reporting and stop/cancel checks."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mirada import queue
from mirada.domain import Phase
from mirada.queue import ClaimedRun


class RunCancelled(Exception):
    """The run was cancelled (or taken away) while it ran; drop its results."""


class StopRequested(Exception):
    """The worker was asked to stop; the current batch is done, give the run back."""


@dataclass
class RunContext:
    run: ClaimedRun
    worker_id: int
    stop_event: threading.Event
    show_progress: bool = True
    phase: Phase | None = None  # what the run does now, stored with its progress
    _last_write: float = 0.0
    _last_draw: float = 0.0  # the progress bar's last redraw (time.monotonic)
    _last: tuple[int, int] = (0, 0)
    _bar: Any = field(default=None, repr=False)

    def set_phase(self, phase: Phase) -> None:
        """Enter a new phase (embedding images, re-ranking, ...): stored at once."""
        self.phase = phase
        self.progress(*self._last, force=True)

    def progress(self, done: int, total: int, *, force: bool = False) -> None:
        """Report progress after a unit of work; raise if the run must end here."""
        self._last = (done, total)
        now = time.monotonic()
        if force or done >= total or now - self._last_write >= 0.5:
            self._last_write = now
            ok = queue.update_progress(
                self.run.id,
                self.worker_id,
                done,
                total,
                phase=self.phase,
                attempt=self.run.attempts,
            )
            if not ok:
                raise RunCancelled(f"run {self.run.id} was cancelled or re-assigned")
        self._show(done, total)
        if self.stop_event.is_set():
            raise StopRequested

    def _show(self, done: int, total: int) -> None:
        if not self.show_progress:
            return
        if self.phase is not None and self._bar is not None:
            self._bar.set_postfix_str(self.phase.value, refresh=False)
        if self._bar is None:
            from tqdm import tqdm

            desc = f"run {self.run.id} {self.run.task} {self.run.model_id}"
            self._bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=True, unit="item")
        if self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        # at most ten redraws a second: a benchmark reports after every round, and a terminal
        # redraw per call costs more than the tiny models' batches it reports on
        now = time.monotonic()
        if done >= total or now - self._last_draw >= 0.1:
            self._last_draw = now
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
