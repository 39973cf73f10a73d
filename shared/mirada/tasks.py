"""The Task table: every fact about a task, one entry per `Task`.

A new task is one `TaskSpec` here plus one worker module that exposes
`execute(ctx, model, options) -> TaskOutput` (`options`: the run's options, of the entry's
class, parsed once when the run was claimed). Each entry says what the task needs of a model
(checked at queue time from the model id alone), its run options class, the dashboard page
that shows its runs, the metric keys it stores (from `mirada.metrics.names`) and the worker
module that runs it. The worker module is named by its dotted path, since this layer may not
import the worker; a test checks that each one exists and exposes `execute`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mirada.domain import Capability, Task
from mirada.errors import MiradaError
from mirada.metrics.names import metrics_of
from mirada.run_options import (
    BenchmarkRunOptions,
    CaptionRunOptions,
    Flag,
    MatchRunOptions,
    RunOptions,
    option_flag,
)


@dataclass(frozen=True)
class TaskSpec:
    task: Task
    needs: frozenset[Capability]  # what a model must be able to do to run it
    options: type[RunOptions]
    page: str  # url path of the dashboard page showing its runs (mirada.dashboard.links)
    executor: str  # the worker module whose `execute(ctx, model, options)` runs it

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric keys runs of this task store, as `mirada.metrics.names` lists them."""
        return metrics_of(self.task)


TASKS: dict[Task, TaskSpec] = {
    spec.task: spec
    for spec in (
        TaskSpec(
            Task.match,
            frozenset({Capability.embed}),
            MatchRunOptions,
            "results",
            "mirada.worker.tasks.match",
        ),
        TaskSpec(
            Task.caption,
            frozenset({Capability.caption}),
            CaptionRunOptions,
            "captions",
            "mirada.worker.tasks.caption",
        ),
        TaskSpec(
            Task.benchmark,
            frozenset(),  # benchmarks whatever the model can do
            BenchmarkRunOptions,
            "hardware",
            "mirada.worker.tasks.benchmark",
        ),
    )
}


@dataclass(frozen=True)
class TaskFit:
    """Whether a model can run a task, from its id alone: the one rule the queue refuses by
    and the dashboard's queue form offers by (each words it its own way)."""

    capabilities: frozenset[Capability]  # what the model's family can do
    missing: frozenset[Capability]  # what the task needs that it cannot
    latency_only: str | None  # why its random weights refuse this task (registry), or None
    able: tuple[Task, ...]  # the tasks this model can run


def task_fit(model_id: str, task: Task) -> TaskFit:
    """`model_id` against `task`; a malformed id raises the id parser's MiradaError."""
    from mirada.vlm.registry import capabilities_for, latency_only_refusal

    caps = capabilities_for(model_id)
    able = tuple(
        t
        for t, spec in TASKS.items()
        if spec.needs <= caps and latency_only_refusal(model_id, t) is None
    )
    return TaskFit(caps, TASKS[task].needs - caps, latency_only_refusal(model_id, task), able)


def parse_options(task: Task, data: Any) -> RunOptions:
    """`task`'s typed options from stored or requested JSON (checked), or an options object
    of that task as it is."""
    cls = TASKS[task].options
    if isinstance(data, tuple(spec.options for spec in TASKS.values())):
        if not isinstance(data, cls):
            raise MiradaError(f"{type(data).__name__} given for a {task} run")
        return data
    return cls.from_dict(data)


@dataclass(frozen=True)
class OptionFlag:
    """One `mirada queue` flag: the option field it sets and the tasks that take it."""

    key: str
    flag: Flag
    tasks: tuple[Task, ...]


def option_flags() -> dict[str, OptionFlag]:
    """Every run option flag, from the option classes' fields, in declaration order. A flag
    shared by tasks must set the same key with the same declaration in each."""
    out: dict[str, OptionFlag] = {}
    for spec in TASKS.values():
        for f in dataclasses.fields(spec.options):
            flag = option_flag(f)
            if flag is None:
                continue
            seen = out.get(flag.name)
            if seen is None:
                out[flag.name] = OptionFlag(f.name, flag, (spec.task,))
            elif seen.key != f.name or seen.flag != flag:
                raise RuntimeError(f"{flag.name} is declared differently by two tasks")
            else:
                out[flag.name] = dataclasses.replace(seen, tasks=(*seen.tasks, spec.task))
    return out
