"""Reads several dashboard pages share: one run's header facts, pickers, item and caption frames.

Every function opens its own `read_session()` (the database named by the environment) and
returns plain values: dataclasses or DataFrames whose columns the docstring lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import Caption, Dataset, Image, Item, Run
from mirada.domain import Device, Dtype, RunStatus, Task
from mirada.errors import MiradaError
from mirada.vlm.ids import parse_model_id

NO_CATEGORY = "(none)"  # stands for items without a category in tables and pickers


def short_model(model_id: str) -> str:
    """The model id without its family prefix ('open-clip:ViT-B-32/laion2b' -> 'ViT-B-32/laion2b'),
    for chart labels; an id that no longer parses is shown whole."""
    try:
        spec = parse_model_id(model_id)
    except MiradaError:
        return model_id
    return spec.model_id.removeprefix(f"{spec.family}:")


def run_label(run_id: int, model_id: str) -> str:
    """'#3 ViT-B-32/laion2b': how charts and comparison tables name a run."""
    return f"#{run_id} {short_model(model_id)}"


@dataclass(frozen=True)
class RunInfo:
    """Header facts of one run."""

    id: int
    dataset_id: int
    dataset: str
    model: str
    task: Task
    status: RunStatus
    device: Device  # the resolved device when the run started, else the requested one
    dtype: Dtype
    batch_size: int
    finished_at: str | None  # ISO 8601, seconds
    error: str | None
    traceback: str | None
    # "imported from HOST (run N)" for a run imported from a result bundle, else None
    origin: str | None = None

    @property
    def label(self) -> str:
        return run_label(self.id, self.model)

    @property
    def expected_failure(self) -> bool:
        """Failed for a reason the user can fix (weights not on this machine), not a bug."""
        return self.status == RunStatus.failed and is_expected_failure(self.traceback)


EXPECTED_ERRORS = ("ModelUnavailableError",)  # failures that need the user, not a bug report


def is_expected_failure(traceback: str | None) -> bool:
    """Whether a stored traceback ends in one of EXPECTED_ERRORS (its last line names the
    exception type, e.g. 'mirada.errors.ModelUnavailableError: ...')."""
    lines = [line for line in (traceback or "").splitlines() if line.strip()]
    if not lines:
        return False
    kind = lines[-1].split(":", 1)[0].rsplit(".", 1)[-1].strip()
    return kind in EXPECTED_ERRORS


def run_info(run_id: int) -> RunInfo | None:
    """Header facts of a run, or None when it does not exist."""
    with read_session() as s:
        row = s.execute(
            select(Run, Dataset.name)
            .join(Dataset, Dataset.id == Run.dataset_id)
            .where(Run.id == run_id)
        ).first()
    if row is None:
        return None
    run, dataset_name = row
    return RunInfo(
        id=run.id,
        dataset_id=run.dataset_id,
        dataset=dataset_name,
        model=run.model_id,
        task=run.task,
        status=RunStatus(run.status),
        device=run.resolved_device or run.device,
        dtype=run.dtype,
        batch_size=run.batch_size,
        finished_at=run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
        error=run.error,
        traceback=run.traceback,
        origin=(
            f"imported from {run.origin_host} (run {run.origin_run_id})"
            if run.origin_host
            else None
        ),
    )


def finished_runs(
    *,
    task: Task | None = None,
    dataset_id: int | None = None,
    statuses: Sequence[RunStatus] = (RunStatus.succeeded,),
) -> pd.DataFrame:
    """Runs with results, newest first, for pickers.

    Columns: id, dataset_id, dataset, model, task, finished_at, label ('#id model · task ·
    dataset').
    """
    stmt = (
        select(Run.id, Run.dataset_id, Dataset.name, Run.model_id, Run.task, Run.finished_at)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .where(Run.status.in_([str(s) for s in statuses]))
        .order_by(Run.id.desc())
    )
    if task is not None:
        stmt = stmt.where(Run.task == task)
    if dataset_id is not None:
        stmt = stmt.where(Run.dataset_id == dataset_id)
    with read_session() as s:
        rows = s.execute(stmt).all()
    df = pd.DataFrame(
        [(r[0], r[1], r[2], r[3], str(r[4]), r[5]) for r in rows],
        columns=["id", "dataset_id", "dataset", "model", "task", "finished_at"],
    )
    df["label"] = [
        f"#{r.id} {r.model} · {r.task} · {r.dataset}" for r in df.itertuples(index=False)
    ]
    return df


def item_frame(dataset_id: int) -> pd.DataFrame:
    """Every item of a dataset in dataset order.

    Columns: item_id, position, filename, category (NO_CATEGORY when unset), sha256, ext.
    """
    with read_session() as s:
        rows = s.execute(
            select(
                Item.id, Item.position, Item.filename, Item.category, Item.image_sha256, Image.ext
            )
            .join(Image, Image.sha256 == Item.image_sha256)
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Item.id)
        ).all()
    df = pd.DataFrame(
        [tuple(r) for r in rows],
        columns=["item_id", "position", "filename", "category", "sha256", "ext"],
    )
    df["category"] = df["category"].fillna(NO_CATEGORY)
    return df


def caption_frame(dataset_id: int) -> pd.DataFrame:
    """Every reference caption of a dataset: caption_id, item_id, position, text."""
    with read_session() as s:
        rows = s.execute(
            select(Caption.id, Caption.item_id, Caption.position, Caption.text)
            .join(Item, Item.id == Caption.item_id)
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Item.id, Caption.position, Caption.id)
        ).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["caption_id", "item_id", "position", "text"]
    )
