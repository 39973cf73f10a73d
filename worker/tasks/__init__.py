"""One module per task. Each exposes `execute(ctx, model) -> TaskOutput`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.context import RunContext
    from worker.model import LazyModel
    from worker.tasks.common import TaskOutput

    Executor = Callable[[RunContext, LazyModel], TaskOutput]


def executor_for(task: str) -> Executor:
    if task == "match":
        from worker.tasks.match import execute
    elif task == "caption":
        from worker.tasks.caption import execute
    elif task == "benchmark":
        from worker.tasks.benchmark import execute
    else:
        raise ValueError(f"unknown task {task!r}")
    return execute
