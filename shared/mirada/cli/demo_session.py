"""`mirada demo`: the synthetic demo dataset, runs of the shipped demo models, a worker and
the dashboard. Idempotent: a second call reuses the dataset and finished runs.

It lives in the CLI package because it starts a worker (only the CLI imports mirada.worker).
Progress goes to this module's logger; `mirada demo` (mirada.cli.demo) shows it on stderr.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from mirada.config import get_settings
from mirada.domain import RETRYABLE, Dtype, RunStatus, Task
from mirada.run_options import BenchmarkRunOptions, RunOptions, Variant

DEMO_DATASET = "mirada-demo"
CLIP = "hf-clip:mirada/demo-clip"
CLIP_RANDOM = "hf-clip:mirada/demo-clip-random"
CAPTIONER = "blip-caption:mirada/demo-blip"


@dataclass(frozen=True)
class DemoRun:
    model_id: str
    task: Task
    options: RunOptions | None = None


# The chance baseline is queued first so that the trained CLIP is the newest match run,
# which the Results page opens by default.
# Benchmarks get a small budget per operation and batch size (rounds stop sooner once their
# CIs are tight), so the demo stays quick; the demo CLIP measures fp32 against bf16, which
# gives the Hardware page a recommendation and shows the R@1 / zero-shot cost of bf16.
DEMO_BENCH_SECONDS = 3.0
DEMO_RUNS = (
    DemoRun(CLIP_RANDOM, Task.match),
    DemoRun(CLIP, Task.match),
    DemoRun(CAPTIONER, Task.caption),
    DemoRun(
        CLIP,
        Task.benchmark,
        BenchmarkRunOptions(
            batch_sizes=(1, 8, 32),
            max_seconds=DEMO_BENCH_SECONDS,
            variants=(Variant(Dtype.fp32), Variant(Dtype.bf16)),
        ),
    ),
    DemoRun(
        CLIP_RANDOM,
        Task.benchmark,
        BenchmarkRunOptions(batch_sizes=(32,), max_seconds=DEMO_BENCH_SECONDS),
    ),
    DemoRun(
        CAPTIONER,
        Task.benchmark,
        BenchmarkRunOptions(batch_sizes=(1, 8), max_seconds=DEMO_BENCH_SECONDS),
    ),
)


logger = logging.getLogger(__name__)


def ensure_dataset() -> int:
    """Import the demo split once; later calls find it by name."""
    from mirada.datasets import import_dataset, list_datasets

    for ds in list_datasets():
        if ds.name == DEMO_DATASET:
            logger.info(
                f"reusing dataset {DEMO_DATASET!r} ({ds.images} images, {ds.captions} captions)"
            )
            return ds.id
    from mirada.demo.synthetic import write_demo_dataset

    src = get_settings().home / "demo-source"
    write_demo_dataset(src, split="demo")
    report = import_dataset(src, name=DEMO_DATASET)
    logger.info(
        f"imported {DEMO_DATASET!r}: {report.images} images, {report.captions} captions, "
        f"{report.categories} categories"
    )
    return report.id


def ensure_runs(dataset_id: int) -> list[int]:
    """Queue the demo runs that are missing; retry failed ones; keep the rest."""
    from mirada.queries.runs import list_runs
    from mirada.queue import enqueue, retry_run

    existing: dict[tuple[str, str], dict[str, Any]] = {}
    for run in reversed(list_runs(dataset_id=dataset_id)):  # oldest first; newest wins
        existing[(run["model"], run["task"])] = run
    ids = []
    for demo in DEMO_RUNS:
        run = existing.get((demo.model_id, demo.task))
        if run is None:
            run_id = enqueue(dataset_id, demo.model_id, demo.task, options=demo.options)
            logger.info(f"queued run {run_id}: {demo.task} {demo.model_id}")
        else:
            run_id = run["id"]
            if run["status"] in RETRYABLE:
                retry_run(run_id)
                logger.info(f"re-queued {run['status']} run {run_id}: {demo.task} {demo.model_id}")
        ids.append(run_id)
    return ids


def summary_rows(run_ids: list[int]) -> list[dict[str, Any]]:
    """One row per model: top-1 with CI, BLEU-4, METEOR, images/s."""
    from mirada.metrics import names
    from mirada.metrics.formatting import format_metric
    from mirada.queries.runs import run_detail

    top1 = names.i2t_recall(1)
    throughputs = {
        names.timing_key(op, names.THROUGHPUT_PER_S) for op in (names.IMAGE_ENCODE, names.CAPTION)
    }
    rows: dict[str, dict[str, Any]] = {}
    for run_id in run_ids:
        d = run_detail(run_id, with_captions=False)
        row = rows.setdefault(d["model"], {"model": d["model"]})
        m = d["metrics"]
        if d["status"] != RunStatus.succeeded:
            row.setdefault("note", f"run {run_id} {d['status']}: {d['error'] or ''}"[:80])
            continue
        if d["task"] == Task.match:
            lo, hi = m.get(f"{top1}_ci_low"), m.get(f"{top1}_ci_high")
            row["top-1"] = format_metric(top1, m.get(top1), lo, hi)
        elif d["task"] == Task.caption:
            row[names.BLEU_4] = format_metric(names.BLEU_4, m.get(names.BLEU_4))
            meteor = m.get(names.METEOR)  # None: unavailable (no Java)
            row[names.METEOR] = format_metric(names.METEOR, meteor) if meteor is not None else "n/a"
        elif d["task"] == Task.benchmark:
            best = max(
                (t for t in d["timings"] if t["name"] in throughputs),
                key=lambda t: t["value"],
                default=None,
            )
            if best:
                speed = format_metric(best["name"], best["value"], unit=False)  # the header has it
                row["images/s"] = f"{speed} (batch {best['batch_size']})"
    return list(rows.values())


def print_summary(run_ids: list[int]) -> None:
    from mirada.cli.table import format_table
    from mirada.metrics.names import BLEU_4, METEOR

    rows = summary_rows(run_ids)
    columns = ("model", "top-1", BLEU_4, METEOR, "images/s", "note")  # metric columns by key
    print(format_table(rows, columns, width=70))
    print(
        "\ntop-1: image->caption accuracy with its 95% Wilson interval; "
        "BLEU-4/METEOR: pycocoevalcap (METEOR 1.5); images/s: best benchmark batch size"
    )


def run_demo(*, dashboard: list[str] | None, url: str = "") -> int:
    """Import, queue and run the demo; `dashboard` is the command that serves the dashboard at
    `url` (None: run the demo runs in this process, print the summary and return)."""
    from mirada.queries.runs import list_runs
    from mirada.worker.main import WorkerLoop

    dataset_id = ensure_dataset()
    run_ids = ensure_runs(dataset_id)
    pending = [
        r
        for r in list_runs(dataset_id=dataset_id)
        if r["id"] in run_ids and r["status"] in (RunStatus.queued, RunStatus.running)
    ]
    if dashboard is None:
        if pending:
            logger.info(f"running {len(pending)} run(s) with an in-process worker")
            WorkerLoop(name="demo-worker", burst=True).serve()
        print_summary(run_ids)
        return 0

    # The worker and the dashboard use this process's data folder, pinned so that they neither
    # resolve it again nor repeat a legacy ./mirada-data notice.
    env = {**os.environ, "MIRADA_HOME": str(get_settings().home)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if pending:
            logger.info(f"starting a background worker for {len(pending)} run(s)")
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "mirada",
                        "worker",
                        "--name",
                        "demo-worker",
                        "--no-progress",
                    ],
                    env=env,
                )
            )
        procs.append(subprocess.Popen(dashboard, env=env))
        print(
            f"\nMirada demo dashboard: {url}\n"
            "  Runs: watch the demo runs finish (a worker is running in the background)\n"
            "  Results: demo CLIP vs the random 'chance' CLIP: accuracy with 95% CIs, heatmap\n"
            "  Compare: the paired significance test between the two\n"
            "  Captions / Hardware: the demo captioner's captions and latency figures\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs[-1:]):
            time.sleep(0.5)
        return procs[-1].returncode or 0
    except KeyboardInterrupt:
        logger.info("stopping")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
