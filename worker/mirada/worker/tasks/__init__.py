"""One module per task, named as the task. Each exposes `execute(ctx, model) -> TaskOutput`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from mirada.domain import Task, parse_choice

if TYPE_CHECKING:
    from mirada.worker.context import RunContext
    from mirada.worker.model import LazyModel
    from mirada.worker.tasks.common import TaskOutput

    Executor = Callable[[RunContext, LazyModel], TaskOutput]


def executor_for(task: str) -> Executor:
    """`task`'s execute, after the model takes what the run recorded when queued (the id to
    load, the fingerprint of its local files, the seed), so no task can forget it."""
    task_ = parse_choice(Task, task, "task")
    module = importlib.import_module(f"{__name__}.{task_.value}")
    execute: Executor = module.execute

    def run(ctx: RunContext, model: LazyModel) -> TaskOutput:
        from mirada.run_options import options_for

        model.for_run(options_for(task_, ctx.run.options))
        return execute(ctx, model)

    return run
