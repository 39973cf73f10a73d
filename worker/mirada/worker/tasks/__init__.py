"""One module per task, named in the Task table (`mirada.tasks.TASKS`). Each exposes
`execute(ctx, model, options) -> TaskOutput`, where `options` is the run's options, parsed when
the run was claimed, of the task's options class."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from mirada.domain import Task
from mirada.tasks import TASKS

if TYPE_CHECKING:
    from mirada.worker.context import RunContext
    from mirada.worker.model import LazyModel
    from mirada.worker.tasks.common import TaskOutput

    Executor = Callable[[RunContext, LazyModel], TaskOutput]


def executor_for(task: Task) -> Executor:
    """`task`'s execute from the module the Task table names, handed the run's typed options."""
    execute = importlib.import_module(TASKS[task].executor).execute

    def run(ctx: RunContext, model: LazyModel) -> TaskOutput:
        output: TaskOutput = execute(ctx, model, ctx.run.options)
        return output

    return run
