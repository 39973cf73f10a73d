"""The domain's closed vocabularies, written once: statuses, tasks, devices, dtypes and model
capabilities (each task's facts, what it needs of a model included, are `mirada.tasks.TASKS`).

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

import re
from enum import StrEnum
from typing import TypeVar

from mirada.errors import MiradaError

E = TypeVar("E", bound=StrEnum)


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


class Capability(StrEnum):
    """What a loaded model can do: each names a protocol of `mirada.vlm.base` (Embedder,
    PairScorer, Captioner)."""

    embed = "embed"  # encode_images / encode_texts
    score_pairs = "score_pairs"  # an image-text matching head for re-ranking
    caption = "caption"  # generate_captions


# The torch seed of randomly initialised weights and the bootstrap, unless a run names one.
DEFAULT_SEED = 0


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Dtype(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Engine(StrEnum):
    """Where a run's embedding stage runs: in the worker's process, or as a Ray Data pipeline
    over a Ray cluster's model actors (one big run on many GPUs or machines)."""

    inprocess = "inprocess"
    ray = "ray"


class Phase(StrEnum):
    """What a running run is doing now (reported with its progress, shown on the Runs page)."""

    embedding_images = "embedding images"
    embedding_captions = "embedding captions"
    embedding_prompts = "embedding class prompts"
    embedding_on_ray = "embedding images and texts on Ray"  # one pipeline for all three
    reranking = "re-ranking"
    generating_captions = "generating captions"
    scoring_captions = "scoring captions"
    computing_metrics = "computing metrics"
    probing = "linear probe and kNN"  # cross-validated on the image embeddings (match runs)
    benchmarking = "benchmarking"
    writing_results = "writing results"


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


# Row ids (runs, datasets, images) are SQLite INTEGER / PostgreSQL BIGINT keys: 64-bit signed,
# and Mirada's start at 1. A larger number overflows the driver instead of matching nothing.
MAX_ID = 2**63 - 1
_ID = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also takes "²", and int() fails


def parse_id(text: str) -> int | None:
    """The row id `text` names (ASCII digits, 1 to MAX_ID, spaces around it allowed), else None.
    The one parser for ids typed by people: URLs (the dashboard) and arguments (the CLI)."""
    text = text.strip(" ")
    if not _ID.fullmatch(text):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


def choices(enum: type[StrEnum]) -> tuple[str, ...]:
    """The values of an enum, in declaration order (CLI choices, error messages)."""
    return tuple(member.value for member in enum)


def parse_choice(enum: type[E], value: str, what: str, error: type[MiradaError] = MiradaError) -> E:
    """`enum(value)`, or `error` naming the value and the accepted ones."""
    try:
        return enum(value)
    except ValueError:
        raise error(
            f"unknown {what} {value!r}; choose one of: {', '.join(choices(enum))}"
        ) from None
