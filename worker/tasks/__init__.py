"""One module per task. Each exposes `execute(ctx, model) -> TaskOutput`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mirada.worker.context import RunContext
    from mirada.worker.model import LazyModel
    from mirada.worker.tasks.common import TaskOutput

    Executor = Callable[[RunContext, LazyModel], TaskOutput]


def executor_for(task: str) -> Executor:
    if task == "match":
        from mirada.worker.tasks.match import execute
    elif task == "caption":
        from mirada.worker.tasks.caption import execute
    elif task == "benchmark":
        from mirada.worker.tasks.benchmark import execute
    else:
        raise ValueError(f"unknown task {task!r}")
    return execute
