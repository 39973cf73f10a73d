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
    module = importlib.import_module(f"{__name__}.{parse_choice(Task, task, 'task').value}")
    execute: Executor = module.execute
    return execute
