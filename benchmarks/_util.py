"""Helpers for benchmark scripts: an isolated MIRADA_HOME and JSON output."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def temp_home(database_url: str | None = None) -> Iterator[Path]:
    """A throwaway MIRADA_HOME (and database) for one benchmark."""
    from mirada.db import dispose_engines

    with tempfile.TemporaryDirectory(prefix="mirada-bench-") as tmp:
        old = {k: os.environ.get(k) for k in ("MIRADA_HOME", "MIRADA_DATABASE_URL")}
        os.environ["MIRADA_HOME"] = tmp
        if database_url:
            os.environ["MIRADA_DATABASE_URL"] = database_url
        else:
            os.environ.pop("MIRADA_DATABASE_URL", None)
        dispose_engines()
        try:
            yield Path(tmp)
        finally:
            dispose_engines()
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def import_synthetic(home: Path, n: int, split: str = "train") -> int:
    from mirada.datasets import import_dataset
    from mirada.demo.synthetic import write_demo_dataset

    src = write_demo_dataset(home / f"src-{split}-{n}", split=split, n=n)
    return import_dataset(src, name=f"bench-{split}-{n}").id


def run_worker_once() -> None:
    from mirada.worker.main import WorkerLoop

    WorkerLoop(name="bench", burst=True, show_progress=False).serve()


def run_seconds(run_id: int) -> float:
    from mirada.db import read_session
    from mirada.db.models import Run

    with read_session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.status == "succeeded", (run.status, run.error)
        return (run.finished_at - run.started_at).total_seconds()


def timing(run_id: int, name: str) -> float | None:
    from mirada.queries.runs import run_detail

    for t in run_detail(run_id, with_captions=False)["timings"]:
        if t["name"] == name:
            return float(t["value"])
    return None


def emit(payload: dict[str, Any]) -> None:
    json.dump(payload, sys.stdout, indent=2)
    sys.stdout.write("\n")
