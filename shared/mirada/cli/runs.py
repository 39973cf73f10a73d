"""Queue, watch and manage runs; start a worker."""

from __future__ import annotations

import argparse

from mirada.cli import arg, command, print_json, show_log
from mirada.cli.table import format_table
from mirada.domain import Device, Dtype, Engine, RunStatus, Task, choices
from mirada.errors import MiradaError


def _batch_sizes(raw: str) -> list[int]:
    try:
        sizes = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--batch-sizes wants numbers like 1,8,32 (got {raw!r})"
        ) from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--batch-sizes wants positive numbers (got {raw!r})")
    return sizes


def _options_by_task(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Each requested task's run options from the flags the option fields name; a flag that no
    requested task takes is an error (it would otherwise be silently ignored)."""
    from mirada.run_options import cli_flags

    by_task: dict[str, dict[str, object]] = {task: {} for task in args.task}
    for flag, (key, takers) in cli_flags().items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if not value:
            continue
        if not set(takers) & set(by_task):
            raise MiradaError(
                f"{flag} applies to --task {' or '.join(takers)} only; add that task or drop it"
            )
        for task in takers:
            if task in by_task:
                by_task[task][key] = value
    return by_task


@command(
    "queue",
    "Queue runs: one per model (and task) on a dataset",
    arg("--dataset", required=True, help="dataset name or id (see `mirada datasets`)"),
    arg(
        "--model",
        action="append",
        required=True,
        metavar="ID",
        help="model id (repeat for several; see `mirada models`)",
    ),
    arg(
        "--task",
        action="append",
        required=True,
        choices=choices(Task),
        help="match: retrieval metrics; caption: generate + score captions; benchmark: latency",
    ),
    arg("--device", default=Device.auto.value, choices=choices(Device)),
    arg("--dtype", default=Dtype.fp32.value, choices=choices(Dtype)),
    arg("--batch-size", type=int, default=32),
    arg(
        "--batch-sizes",
        type=_batch_sizes,
        metavar="N,N,...",
        help="benchmark: sweep these batch sizes",
    ),
    arg(
        "--variants",
        metavar="V,V,...",
        help="benchmark: measure these settings side by side, each a dtype (fp32, fp16, bf16) "
        "optionally +compile, +channels_last or +threads=N, e.g. fp32,bf16,bf16+compile; "
        "fp32 eager is added as the reference that agreement is measured against",
    ),
    arg(
        "--engine",
        choices=choices(Engine),
        help="match: where embeddings are computed: inprocess (default, in the worker) or ray "
        "(a Ray Data pipeline on the cluster at RAY_ADDRESS, or a local Ray; needs mirada[ray])",
    ),
    arg(
        "--clipscore-model",
        metavar="ID",
        help="caption: also score captions with CLIPScore and RefCLIPScore under this "
        "embedding model (any model that can run --task match; default: none)",
    ),
    arg("--requires", metavar="LABEL", help="only a worker started with --label LABEL runs it"),
    arg("--no-cache", action="store_true", help="recompute embeddings even when cached"),
    arg(
        "--template",
        action="append",
        metavar="TEXT",
        help='match: zero-shot prompt template with {} for the category, e.g. "a photo of {}." '
        "(repeatable; averaged per class; default: a few photo templates)",
    ),
    arg(
        "--seed",
        type=int,
        metavar="N",
        help="seed of the bootstrap and of randomly initialised weights, e.g. open-clip:ViT-B-32 "
        "(default 0; two runs with one seed get the same model)",
    ),
    arg(
        "--max-attempts",
        type=int,
        default=3,
        help="starts of a run before workers lost while running it fail it (1-20, default 3)",
    ),
    arg("--json", action="store_true", help="print the run ids as a JSON list"),
)
def queue_cmd(args: argparse.Namespace) -> int:
    from mirada.datasets import resolve_dataset
    from mirada.queue import enqueue, validate_run_request

    dataset = resolve_dataset(args.dataset)
    pairs = [(m, t) for m in args.model for t in args.task]
    options = _options_by_task(args)
    if args.variants and args.dtype != Dtype.fp32:
        raise MiradaError("--variants names the dtypes it measures (from fp32); drop --dtype")
    typed = [  # refuse everything before queueing anything
        validate_run_request(
            m,
            t,
            args.device,
            args.dtype,
            args.batch_size,
            options[t],
            max_attempts=args.max_attempts,
            requires=args.requires,
        )
        for m, t in pairs
    ]
    ids = [
        enqueue(
            dataset.id,
            model_id,
            task,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            requires=args.requires,
            options=run_options,
            max_attempts=args.max_attempts,
        )
        for (model_id, task), run_options in zip(pairs, typed, strict=True)
    ]
    if args.json:
        print_json(ids)
    else:
        for run_id, (model_id, task) in zip(ids, pairs, strict=True):
            print(f"queued run {run_id}: {task} {model_id} on {dataset.name}")
        print("start a worker with `mirada worker` (or `mirada worker --burst` to drain and exit)")
    return 0


@command(
    "runs",
    "List runs, newest first",
    arg("--dataset", help="only this dataset (name or id)"),
    arg(
        "--status",
        action="append",
        choices=choices(RunStatus),
    ),
    arg("--json", action="store_true"),
)
def runs_cmd(args: argparse.Namespace) -> int:
    from mirada.queries.runs import RUN_LIST_KEYS, list_runs

    dataset_id = None
    if args.dataset:
        from mirada.datasets import resolve_dataset

        dataset_id = resolve_dataset(args.dataset).id
    rows = list_runs(dataset_id=dataset_id, statuses=args.status)
    if args.json:
        print_json([{k: r[k] for k in RUN_LIST_KEYS} for r in rows])
    elif not rows:
        print("no runs yet: queue one with `mirada queue --dataset NAME --model ID --task match`")
    else:
        for r in rows:
            if r["status"] == RunStatus.running and r["progress_total"]:
                r["status"] = f"running {100 * r['progress_done'] // r['progress_total']}%"
        print(format_table(rows, RUN_LIST_KEYS, width=50))
    return 0


def _interval_text(metrics: dict[str, object], name: str) -> str:
    """'  95% CI [0.896, 1.000] (Wilson)', then what chance says about it ('within chance
    (25% for 4 classes)' or why R@k is trivial); '' without an interval."""
    from mirada.metrics.names import chance_note, interval_name

    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    if not isinstance(low, float) or not isinstance(high, float):
        return ""
    details = {
        "interval_method": metrics.get(f"{name}_interval_method"),
        "chance": metrics.get(f"{name}_chance"),
        "chance_basis": metrics.get(f"{name}_chance_basis"),
        "trivial": metrics.get(f"{name}_trivial"),
    }
    note = chance_note(low, high, details)
    note = f"; {note}" if note else ""
    return f"  95% CI [{low:.3f}, {high:.3f}] ({interval_name(details)}){note}"


@command(
    "show",
    "Show one run: status, progress, metrics with 95%% CIs, per category, timings, hardware",
    arg("run_id", type=int),
    arg("--json", action="store_true"),
)
def show_cmd(args: argparse.Namespace) -> int:
    from mirada.queries.runs import METRIC_SUFFIXES, run_detail

    detail = run_detail(args.run_id)
    from mirada.queries.variants import run_variants

    variants = run_variants(args.run_id)
    if variants is not None:
        detail["variants"] = variants
    if args.json:
        print_json(detail)
        return 0
    print(f"run {detail['id']}: {detail['task']} {detail['model']} on {detail['dataset']['name']}")
    print(
        f"status: {detail['status']} (attempt {detail['attempts']}/{detail['max_attempts']}), "
        f"progress {detail['progress']['done']}/{detail['progress']['total']}"
    )
    print(
        f"device: {detail['resolved_device'] or detail['device']}, dtype {detail['dtype']}, "
        f"batch size {detail['batch_size']}, worker {detail['worker'] or '-'}"
    )
    if detail["origin"]:
        origin = detail["origin"]
        print(
            f"imported from {origin['host']} (run {origin['run_id']} there) "
            f"on {origin['imported_at']}; never re-executed here"
        )
    if detail["error"]:
        print(f"error: {detail['error']}")
    metrics = detail["metrics"]
    names = [k for k in metrics if not k.endswith(METRIC_SUFFIXES)]
    if names:
        from mirada.metrics.names import label

        print("\nmetrics:")
        for name in names:
            value = metrics[name]
            # key, then its label from the one metric-name table (blank when it has none)
            head = f"{name:<28} {label(name) if label(name) != name else '':<24}"
            if value is None:
                print(f"  {head} unavailable: {metrics.get(name + '_unavailable', '')}")
                continue
            print(f"  {head} {value:.4f}{_interval_text(metrics, name)}")
    if detail["per_category"]:
        print("\nper category:")
        for cat, vals in detail["per_category"].items():
            shown = ", ".join(
                f"{k} {v:.3f}"
                for k, v in vals.items()
                if not k.endswith(METRIC_SUFFIXES) and isinstance(v, float)
            )
            print(f"  {cat:<20} {shown}")
            for k in vals:
                note = _interval_text(vals, k).strip() if not k.endswith(METRIC_SUFFIXES) else ""
                if "chance" in note or "trivial" in note:
                    print(f"  {'':<20}   {k}: {note}")
    if detail["timings"]:
        print("\ntimings:")
        print(format_table(detail["timings"], ("name", "value", "unit", "batch_size")))
    if variants:
        from mirada.queries.variants import VARIANT_COLUMNS, variant_rows

        rows = variant_rows(variants)
        columns = [c for c in VARIANT_COLUMNS if any(r[c] is not None for r in rows)]
        print("\nvariants (the largest batch size; cosine and captions against fp32):")
        print(format_table(rows, columns, width=80))
    if detail["captions"]:
        print(f"\ncaptions ({len(detail['captions'])}), first 5:")
        for c in detail["captions"][:5]:
            print(f"  {c['filename']}: {c['text']}")
    if detail["hardware"]:
        hw = detail["hardware"]
        print(
            f"\nhardware: {hw['hostname']} {hw['cpu_model']} ({hw['cpu_cores']} cores, "
            f"{hw['ram_gb']} GB), gpu {hw['gpu_name'] or '-'}, torch {hw['torch']}"
        )
    return 0


@command("cancel", "Cancel a queued or running run", arg("run_id", type=int))
def cancel_cmd(args: argparse.Namespace) -> int:
    from mirada.queue import cancel_run

    cancel_run(args.run_id)
    print(f"run {args.run_id} cancelled")
    return 0


@command("retry", "Re-queue a failed or cancelled run", arg("run_id", type=int))
def retry_cmd(args: argparse.Namespace) -> int:
    from mirada.queue import retry_run

    retry_run(args.run_id)
    print(f"run {args.run_id} queued again")
    return 0


@command(
    "worker",
    "Execute queued runs (one at a time) until stopped",
    arg("--burst", action="store_true", help="exit when the queue is empty"),
    arg(
        "--device",
        default=Device.auto.value,
        choices=choices(Device),
        help="serve only runs for this device (auto: every device this machine has)",
    ),
    arg(
        "--label",
        action="append",
        default=[],
        metavar="L",
        help="serve runs queued with --requires L (repeatable)",
    ),
    arg("--name", help="worker name shown in the dashboard (default: host-pid)"),
    arg("--no-progress", action="store_true", help="no progress bar on the terminal"),
)
def worker_cmd(args: argparse.Namespace) -> int:
    from mirada.worker import main as worker

    show_log("mirada.worker", worker.LOG_FORMAT, worker.LOG_DATE_FORMAT)
    loop = worker.WorkerLoop(
        device=args.device,
        labels=tuple(args.label),
        burst=args.burst,
        show_progress=not args.no_progress,
    )
    if args.name:
        loop.name = args.name
    loop.serve()
    # EX_TEMPFAIL: stopped because it was declared lost and its run taken (the log says so);
    # a supervisor that restarts failed services brings it back.
    return 75 if loop.lost else 0
