"""Run listings and the full picture of one run (what `mirada show`, `mirada runs` and the
dashboard's Runs page read)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import (
    Dataset,
    GeneratedCaption,
    HardwareProfile,
    Item,
    Metric,
    Run,
    Timing,
    Worker,
    db_now,
)
from mirada.domain import Capability, RunStatus, Task, WorkerStatus
from mirada.errors import MiradaError, NotFoundError
from mirada.metrics import clipscore
from mirada.metrics.names import CLIPSCORE_METRICS

if TYPE_CHECKING:
    import pandas as pd

RUN_LIST_KEYS = (
    "id",
    "dataset",
    "model",
    "task",
    "status",
    "attempts",
    "device",
    "worker",
    "error",
)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="seconds") if dt else None


def live_phase(run: Run) -> str | None:
    """The phase a running run reported for its current attempt (mirada.queue.update_progress
    keeps it in model_fingerprint until the run finishes), else None."""
    from mirada.queue import ATTEMPT_KEY, PHASE_KEY

    stored = run.model_fingerprint
    if run.status != RunStatus.running or not isinstance(stored, dict):
        return None
    if stored.get(ATTEMPT_KEY) != run.attempts:  # reported by an earlier attempt
        return None
    phase = stored.get(PHASE_KEY)
    return str(phase) if phase is not None else None


def eta_seconds(done: int, total: int, elapsed: float | None) -> float | None:
    """Time left if the rest goes at the pace so far (elapsed / done per unit), or None
    before the first unit is done. Model loading counts into the pace, so early estimates
    run high."""
    if elapsed is None or done <= 0 or total <= 0:
        return None
    return max(0.0, elapsed * (total - min(done, total)) / done)


def _elapsed(run: Run, now: datetime) -> float | None:
    if run.status != RunStatus.running or run.started_at is None:
        return None
    return max(0.0, (now - run.started_at).total_seconds())


def _duration(run: Run) -> float | None:
    """Start to finish of a finished run (its last attempt); None for runs not finished, or
    cancelled before they started."""
    if run.status == RunStatus.running or run.started_at is None or run.finished_at is None:
        return None
    return max(0.0, (run.finished_at - run.started_at).total_seconds())


def list_runs(
    *, dataset_id: int | None = None, statuses: Sequence[str] | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Newest first: id, dataset, model, task, status, attempts, device, worker, error, ...;
    running runs also have phase (what they do now), elapsed_s (since they started, on the
    database's clock) and eta_s (estimated seconds left); None for the others. Finished runs
    have duration_s (start to finish); None for the others."""
    stmt = (
        select(Run, Dataset.name, Worker.name, db_now())
        .join(Dataset, Dataset.id == Run.dataset_id)
        .outerjoin(Worker, Worker.id == Run.worker_id)
        .order_by(Run.id.desc())
        .limit(limit)
    )
    if dataset_id is not None:
        stmt = stmt.where(Run.dataset_id == dataset_id)
    if statuses:
        stmt = stmt.where(Run.status.in_(list(statuses)))
    with read_session() as s:
        rows = s.execute(stmt).all()
    out = []
    for run, dataset_name, worker_name, now in rows:
        elapsed = _elapsed(run, now)
        out.append(
            {
                "id": run.id,
                "dataset": dataset_name,
                "model": run.model_id,
                "task": run.task,
                "status": run.status,
                "attempts": run.attempts,
                "device": run.resolved_device or run.device,
                "worker": worker_name,
                "error": run.error,
                "dataset_id": run.dataset_id,
                "dtype": run.dtype,
                "batch_size": run.batch_size,
                "progress_done": run.progress_done,
                "progress_total": run.progress_total,
                "created": _iso(run.created),
                "started_at": _iso(run.started_at),
                "finished_at": _iso(run.finished_at),
                "phase": live_phase(run),
                "elapsed_s": elapsed,
                "eta_s": eta_seconds(run.progress_done, run.progress_total, elapsed),
                "duration_s": _duration(run),
            }
        )
    return out


# Keys beside a metric's value in flat_metrics: `<name><suffix>`.
METRIC_SUFFIXES = (
    "_ci_low",
    "_ci_high",
    "_interval_method",
    "_chance",
    "_chance_basis",
    "_trivial",
    "_unavailable",
    "_per_image_mean",  # BLEU-n, METEOR: their corpus value has no CI; the per-image mean has
    "_prefix",  # CLIPScore, RefCLIPScore: what they were computed with (Hessel et al. 2021)
    "_w",
)


def flat_metrics(rows: Sequence[Metric]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Overall metrics as {name: value, name_ci_low: .., name_ci_high: ..}, plus per category.

    With an interval, name_interval_method says how it was computed ("wilson" or "bootstrap";
    rows stored before it was recorded: "bootstrap"); name_chance is what a random model
    scores (name_chance_basis: "for 4 classes") and name_trivial why any model scores 100%,
    where the metric defines them. BLEU-n and METEOR add name_per_image_mean with its
    _ci_low/_ci_high (their corpus value has no CI); CLIPScore and RefCLIPScore name_prefix and
    name_w (`mirada.metrics.clipscore.definition`).
    """
    overall: dict[str, Any] = {}
    per_category: dict[str, dict[str, Any]] = {}
    for m in rows:
        target = overall if m.category is None else per_category.setdefault(m.category, {})
        details = m.details or {}
        target[m.name] = m.value
        if m.ci_low is not None or m.ci_high is not None:
            target[f"{m.name}_ci_low"] = m.ci_low
            target[f"{m.name}_ci_high"] = m.ci_high
            target[f"{m.name}_interval_method"] = details.get("interval_method", "bootstrap")
        if details.get("chance") is not None:
            target[f"{m.name}_chance"] = details["chance"]
            target[f"{m.name}_chance_basis"] = details.get("chance_basis")
        if details.get("trivial"):
            target[f"{m.name}_trivial"] = details["trivial"]
        if details.get("unavailable"):
            target[f"{m.name}_unavailable"] = details["unavailable"]
        ci = details.get("per_image_mean_ci")
        if details.get("per_image_mean") is not None and isinstance(ci, list) and len(ci) == 2:
            target[f"{m.name}_per_image_mean"] = details["per_image_mean"]
            target[f"{m.name}_per_image_mean_ci_low"] = ci[0]
            target[f"{m.name}_per_image_mean_ci_high"] = ci[1]
        if m.name in CLIPSCORE_METRICS:
            target.update({f"{m.name}_{k}": v for k, v in clipscore.definition(details).items()})
    return overall, per_category


HARDWARE_KEYS = [
    "hostname",
    "os",
    "cpu_model",
    "cpu_cores",
    "ram_gb",
    "gpu_name",
    "gpu_memory_gb",
    "python",
    "torch",
    "cuda",
    "transformers",
    "open_clip",
]


def hardware_dict(hp: HardwareProfile | None) -> dict[str, Any] | None:
    """A machine as HARDWARE_KEYS (memory in GB, one decimal): the one description of a machine,
    in `mirada show --json`, `mirada export` and the Hardware page's table."""
    if hp is None:
        return None
    return {
        "hostname": hp.hostname,
        "os": hp.os,
        "cpu_model": hp.cpu_model,
        "cpu_cores": hp.cpu_cores,
        "ram_gb": round(hp.ram_bytes / 2**30, 1),
        "gpu_name": hp.gpu_name,
        "gpu_memory_gb": round(hp.gpu_memory_bytes / 2**30, 1) if hp.gpu_memory_bytes else None,
        "python": hp.python_version,
        "torch": hp.torch_version,
        "cuda": hp.cuda_version,
        "transformers": hp.transformers_version,
        "open_clip": hp.open_clip_version,
    }


def run_detail(run_id: int, *, with_captions: bool = True) -> dict[str, Any]:
    with read_session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist; see `mirada runs`")
        dataset = s.get(Dataset, run.dataset_id)
        worker = s.get(Worker, run.worker_id) if run.worker_id else None
        hp = s.get(HardwareProfile, run.hardware_profile_id) if run.hardware_profile_id else None
        metrics = s.scalars(select(Metric).where(Metric.run_id == run_id).order_by(Metric.id)).all()
        timings = s.scalars(select(Timing).where(Timing.run_id == run_id).order_by(Timing.id)).all()
        captions = (
            s.execute(
                select(GeneratedCaption, Item.filename)
                .join(Item, Item.id == GeneratedCaption.item_id)
                .where(GeneratedCaption.run_id == run_id)
                .order_by(Item.position)
            ).all()
            if with_captions
            else []
        )
    overall, per_category = flat_metrics(metrics)
    return {
        "id": run.id,
        "dataset": {"id": run.dataset_id, "name": dataset.name if dataset else None},
        "model": run.model_id,
        "task": run.task,
        "status": run.status,
        "attempts": run.attempts,
        "max_attempts": run.max_attempts,
        "device": run.device,
        "resolved_device": run.resolved_device,
        "dtype": run.dtype,
        "batch_size": run.batch_size,
        "options": run.options,
        "worker": worker.name if worker else None,
        "progress": {"done": run.progress_done, "total": run.progress_total},
        "error": run.error,
        "traceback": run.traceback,
        "created": _iso(run.created),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "metrics": overall,
        "per_category": per_category,
        "timings": [
            {"name": t.name, "value": t.value, "unit": t.unit, "batch_size": t.batch_size}
            for t in timings
        ],
        "hardware": hardware_dict(hp),
        # only a succeeded run has one (a running run's column holds its phase)
        "model_fingerprint": run.model_fingerprint if run.status == RunStatus.succeeded else None,
        "phase": live_phase(run),
        # set on runs brought in by `mirada import-results`; never re-executed here
        "origin": (
            {
                "host": run.origin_host,
                "run_id": run.origin_run_id,
                "bundle_sha256": run.origin_bundle_sha256,
                "imported_at": _iso(run.imported_at),
            }
            if run.origin_bundle_sha256
            else None
        ),
        "captions": [
            {
                "item_id": c.item_id,
                "filename": filename,
                "text": c.text,
                "scores": c.scores,
                "flags": c.flags,
            }
            for c, filename in captions
        ],
    }


@dataclass(frozen=True)
class StageSplit:
    """Where a run's image time went (match and caption runs on the DataLoader path)."""

    op: str  # names.IMAGE_ENCODE or names.CAPTION
    decode_wait_s: float  # waiting for the loader's next batch: decoding compute did not hide
    model_s: float  # in the model's forward passes

    @property
    def waiting_share(self) -> float | None:
        """Share of the image time spent waiting on input (None when no time was spent)."""
        total = self.decode_wait_s + self.model_s
        return self.decode_wait_s / total if total > 0 else None


def stage_splits(run_id: int) -> list[StageSplit]:
    """The decode-wait / model split of each operation that recorded one, in OPERATIONS
    order; empty for runs that did not (older runs, the Ray engine, benchmark runs)."""
    from mirada.metrics import names

    keys = {
        names.timing_key(op, stat): (op, stat)
        for op in names.OPERATIONS
        for stat in (names.DECODE_WAIT_S, names.MODEL_S)
    }
    with read_session() as s:
        rows = s.execute(
            select(Timing.name, Timing.value).where(
                Timing.run_id == run_id, Timing.name.in_(list(keys))
            )
        ).all()
    found = {keys[name]: float(value) for name, value in rows}
    return [
        StageSplit(op, found[op, names.DECODE_WAIT_S], found[op, names.MODEL_S])
        for op in names.OPERATIONS
        if (op, names.DECODE_WAIT_S) in found and (op, names.MODEL_S) in found
    ]


def recent_workers(within_seconds: int) -> list[dict[str, Any]]:
    """Workers whose heartbeat is newer than `within_seconds` (for 'is anyone serving?')."""
    cutoff = db_now(-within_seconds)  # the database's clock, as heartbeats are written
    with read_session() as s:
        rows = s.scalars(
            select(Worker).where(
                Worker.status == WorkerStatus.active, Worker.heartbeat_at >= cutoff
            )
        ).all()
    return [
        {
            "id": w.id,
            "name": w.name,
            "hostname": w.hostname,
            "devices": w.devices,
            "labels": w.labels,
            "heartbeat_at": _iso(w.heartbeat_at),
        }
        for w in rows
    ]


RUNS_FRAME_COLUMNS = [
    "id",
    "dataset",
    "model",
    "task",
    "status",
    "progress",
    "phase",
    "elapsed",
    "time_left",
    "duration",
    "attempts",
    "device",
]


def duration_text(seconds: float | None) -> str | None:
    """'45 s', '3 min 05 s', '2 h 10 min'; None for None."""
    if seconds is None or seconds != seconds:
        return None
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def runs_frame(dataset_id: int | None = None, limit: int = 500) -> pd.DataFrame:
    """list_runs() as a DataFrame (its keys as columns) plus `progress`, a fraction 0..1
    (1 for succeeded runs), for running runs `elapsed` and `time_left` as text (the
    estimate: "~3 min 05 s"), and `duration` as text: a finished run's start to finish, a
    running run's time so far. Empty: the columns RUNS_FRAME_COLUMNS."""
    import numpy as np  # here, not at the top: the CLI reads this module and needs no pandas
    import pandas as pd

    df = pd.DataFrame(list_runs(dataset_id=dataset_id, limit=limit))
    if df.empty:
        return pd.DataFrame(columns=RUNS_FRAME_COLUMNS)
    total = df["progress_total"].clip(lower=1)
    df["progress"] = np.where(
        df["status"] == RunStatus.succeeded, 1.0, (df["progress_done"] / total).clip(0, 1)
    )
    df["elapsed"] = [duration_text(x) for x in df["elapsed_s"]]
    df["time_left"] = [
        None if t is None else f"~{t}" for t in (duration_text(x) for x in df["eta_s"])
    ]
    df["duration"] = [
        duration_text(done if pd.notna(done) else so_far)
        for done, so_far in zip(df["duration_s"], df["elapsed_s"], strict=True)
    ]
    return df


def queue_hint(requires: str | None = None) -> str:
    """What `mirada queue` says after queueing: which live worker will take the runs (its
    heartbeat within the stale limit, on the database's clock; with `requires`, one started
    with that label), or how to start one when none is alive."""
    import shlex

    from mirada.config import get_settings

    alive = recent_workers(get_settings().stale_after_seconds)
    if requires is not None:
        alive = [w for w in alive if requires in (w["labels"] or [])]
    label = "" if requires is None else f" --label {shlex.quote(requires)}"
    if not alive:
        which = "" if requires is None else f" with the label {requires!r}"
        return (
            f"no worker{which} is running: start one with `mirada worker{label}` "
            f"(or `mirada worker{label} --burst` to drain the queue and exit)"
        )
    names = ", ".join(str(w["name"]) for w in alive[:3]) + (" …" if len(alive) > 3 else "")
    return (
        f"a worker is running ({names}): it takes these runs in turn; "
        "follow them with `mirada runs`"
    )


def worker_notice(within_seconds: int = 60) -> str | None:
    """None while some worker heartbeated recently; otherwise what to do about it."""
    if recent_workers(within_seconds):
        return None
    return (
        f"No worker is running (no heartbeat in the last {within_seconds} s): queued runs will "
        "wait. Start one with `mirada worker`."
    )


# What a family can do and what a task asks for, in the words the queue form uses. Keyed by
# the vocabularies, so a new family (the family table) or task needs no edit here to be
# offered; a new capability or task reads its own name until it gets words.
CAPABILITY_WORDS: dict[Capability, str] = {
    Capability.embed: "embed images and captions",
    Capability.score_pairs: "score image-caption pairs",
    Capability.caption: "write captions",
}
TASK_WORDS: dict[Task, str] = {
    Task.match: "match images with captions",
    Task.caption: "caption images",
    Task.benchmark: "be benchmarked",
}


def _words(caps: Iterable[Capability]) -> str:
    said = [CAPABILITY_WORDS.get(c, str(c)) for c in sorted(caps)]
    return " and ".join(said) if said else "nothing Mirada measures"


def task_refusal(model_id: str, task: Task) -> str | None:
    """Why `model_id` cannot run `task`, in plain words (what the task needs, what the model
    can do, which tasks it can run instead); None when it can. The rules are the queue's own:
    the Task table's `needs` against the family's capabilities, and the registry's
    latency-only rule. A malformed id gets the id parser's message."""
    from mirada.tasks import TASKS, task_fit

    try:
        fit = task_fit(model_id, task)
    except MiradaError as exc:
        return str(exc)
    if fit.missing:
        return (
            f"{model_id} cannot {TASK_WORDS.get(task, f'run {task}')}: that takes a model that "
            f"can {_words(TASKS[task].needs)}, and this one can only {_words(fit.capabilities)}. "
            f"It can run: {', '.join(fit.able)}."
        )
    if fit.latency_only is not None:
        return (
            f"{model_id} has random weights at a real model's size: its outputs mean nothing, "
            f"so it is for benchmark runs (speed and memory) only, not {task}."
        )
    return None


@dataclass(frozen=True)
class QueueChoice:
    """A catalogue model as the queue form offers it for one task."""

    id: str
    title: str


def models_for_task(task: Task) -> tuple[list[QueueChoice], list[QueueChoice]]:
    """The catalogue split for `task`: (the models that can run it, those that cannot), each
    in catalogue order."""
    from mirada.vlm.catalogue import list_catalogue

    able: list[QueueChoice] = []
    unable: list[QueueChoice] = []
    for entry in list_catalogue():
        target = unable if task_refusal(entry.id, task) else able
        target.append(QueueChoice(entry.id, entry.title))
    return able, unable
