"""The domain's closed vocabularies, written once: statuses, tasks, devices, dtypes.

Everything that names one of these (the queue, the database models, the CLI's choices, the
dashboard's buttons) imports it from here. Values are the strings stored in the database and
printed by the CLI, so they never change.

Run status transitions (`RUN_TRANSITIONS`, enforced by `mirada.queue`, the only status writer):

    queued    -> running (claim) | cancelled
    running   -> succeeded | failed | cancelled | queued (graceful stop, or its worker was lost
                 with attempts left)
    failed    -> queued (retry)
    cancelled -> queued (retry)
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class WorkerStatus(StrEnum):
    active = "active"
    stopped = "stopped"
    lost = "lost"


class Task(StrEnum):
    match = "match"
    caption = "caption"
    benchmark = "benchmark"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Dtype(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.queued: frozenset({RunStatus.running, RunStatus.cancelled}),
    RunStatus.running: frozenset(
        {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled, RunStatus.queued}
    ),
    RunStatus.succeeded: frozenset(),
    RunStatus.failed: frozenset({RunStatus.queued}),
    RunStatus.cancelled: frozenset({RunStatus.queued}),
}

# Statuses a user action may start from (the dashboard's buttons and the CLI use the same data).
CANCELLABLE: frozenset[RunStatus] = frozenset(
    s for s, targets in RUN_TRANSITIONS.items() if RunStatus.cancelled in targets
)
RETRYABLE: frozenset[RunStatus] = frozenset({RunStatus.failed, RunStatus.cancelled})
FINISHED: frozenset[RunStatus] = frozenset(
    {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled}
)


def can_transition(current: RunStatus | str, target: RunStatus | str) -> bool:
    """Whether `mirada.queue` may move a run from `current` to `target`."""
    return RunStatus(target) in RUN_TRANSITIONS[RunStatus(current)]


def choices(enum: type[StrEnum]) -> tuple[str, ...]:
    """The values of an enum, in declaration order (CLI choices, error messages)."""
    return tuple(member.value for member in enum)
