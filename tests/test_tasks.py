"""The Task table: one entry per Task, each naming things that exist."""

from __future__ import annotations

import importlib
import inspect

from mirada.dashboard import links
from mirada.domain import Capability, Task
from mirada.metrics.names import METRICS
from mirada.tasks import TASKS


def test_the_table_covers_every_task() -> None:
    assert list(TASKS) == list(Task)
    assert all(spec.task is task for task, spec in TASKS.items())
    assert all(spec.options.task is task for task, spec in TASKS.items())


def test_each_entry_names_a_worker_module_with_execute() -> None:
    for spec in TASKS.values():
        execute = importlib.import_module(spec.executor).execute
        # (ctx, model, options): the run's options arrive typed, as the task's class; anything
        # else is keyword-only with a default (a test's injected clock), never passed by the worker
        every = list(inspect.signature(execute).parameters.values())
        params = [p for p in every if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        assert len(params) == 3, spec.executor
        assert all(p.default is not inspect.Parameter.empty for p in every[3:]), spec.executor
        assert params[2].annotation in (spec.options, spec.options.__name__), spec.executor


def test_pages_and_metrics() -> None:
    for spec in TASKS.values():
        assert spec.page in links.PAGE_FILES
        assert links.run_href(spec.task, 3) == f"{spec.page}?run=3"
        assert spec.metrics and all(METRICS[k].task is spec.task for k in spec.metrics)
    assert links.run_href(Task.caption, 5) == "captions?run=5"  # the URLs stay as they were
    assert "i2t_recall@1" in TASKS[Task.match].metrics


def test_needs() -> None:
    assert TASKS[Task.match].needs == {Capability.embed}
    assert TASKS[Task.caption].needs == {Capability.caption}
    assert TASKS[Task.benchmark].needs == frozenset()
