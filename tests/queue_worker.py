"""A worker process for queue tests: the real loop with a stand-in task executor.

python tests/queue_worker.py --mode noop|slow --log FILE [--name N] [--forever] [--skew S]

--skew S shifts the Python clock mirada reads (mirada.db.models.datetime) by S seconds, as on
a machine whose clock is off.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timedelta
from typing import Any

from mirada.results import MetricValue, RunResults
from mirada.worker.context import RunContext
from mirada.worker.main import WorkerLoop
from mirada.worker.model import LazyModel
from mirada.worker.tasks.common import Progress, TaskOutput


def _skew_clock(seconds: float) -> None:
    import mirada.db.models as models

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Skewed:  # type: ignore[override]
            return super().now(tz) + timedelta(seconds=seconds)  # type: ignore[return-value]

    models.datetime = Skewed  # type: ignore[misc]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["noop", "slow"], required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--name", default=f"test-{os.getpid()}")
    p.add_argument("--forever", action="store_true")
    p.add_argument("--skew", type=float, default=0.0)
    a = p.parse_args()
    if a.skew:
        _skew_clock(a.skew)

    def execute(ctx: RunContext, model: LazyModel) -> TaskOutput:
        # O_APPEND writes of one short line are atomic: the log is the ground truth.
        with open(a.log, "a", encoding="utf-8") as fh:
            fh.write(f"{ctx.run.id} {os.getpid()} start\n")
        if a.mode == "slow":
            progress = Progress(ctx, total=600)
            for _ in range(600):  # 60 s of "batches" unless stopped
                time.sleep(0.1)
                progress.advance(1)
        return TaskOutput(RunResults(metrics=[MetricValue("noop", 1.0)]), {"test": True}, "cpu")

    loop = WorkerLoop(
        name=a.name,
        burst=not a.forever,
        poll_seconds=0.2,
        show_progress=False,
        executor_for=lambda task: execute,
        collect_hardware=False,
        devices_override=("cpu",),
    )
    loop.serve()


if __name__ == "__main__":
    main()
