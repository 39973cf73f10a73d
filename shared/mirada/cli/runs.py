"""Queue, watch and manage runs; start a worker."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from mirada.cli import Arg, arg, command, print_json, show_log
from mirada.cli.table import format_table
from mirada.domain import MAX_ID, Device, Dtype, RunStatus, Task, choices, parse_choice, parse_id
from mirada.errors import MiradaError
from mirada.run_options import Flag, RunOptions

if TYPE_CHECKING:
    from mirada.benchmark_records import Measurement, VariantRecord

E = TypeVar("E", bound=StrEnum)


def _enum_arg(enum: type[E], what: str) -> Callable[[str], E]:
    """argparse `type=`: the text as an enum member, refused in `parse_choice`'s words."""

    def parse(text: str) -> E:
        try:
            return parse_choice(enum, text, what)
        except MiradaError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _flag_arg(name: str, flag: Flag) -> Arg:
    """The `mirada queue` argument of a run option, as its field declares it; its value lands
    under the option's key."""
    kwargs: dict[str, Any] = {"dest": name, "help": flag.help}
    if flag.switch:
        return arg(flag.name, action="store_true", **kwargs)
    if flag.repeat:
        kwargs["action"] = "append"
    if flag.metavar:
        kwargs["metavar"] = flag.metavar
    if flag.choices:
        kwargs["choices"] = flag.choices
    if flag.parse is not None:
        kwargs["type"] = _typed(flag.parse)
    return arg(flag.name, **kwargs)


def _typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def typed(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:  # MiradaError included: its message says why
            raise argparse.ArgumentTypeError(str(exc) or f"invalid value {text!r}") from None

    return typed


def _option_args() -> list[Arg]:
    from mirada.tasks import option_flags

    return [_flag_arg(f.key, f.flag) for f in option_flags().values()]


def _options_by_task(args: argparse.Namespace) -> dict[Task, RunOptions]:
    """Each requested task's run options from the flags the option fields declare; a flag that
    no requested task takes is an error (it would otherwise be silently ignored)."""
    from mirada.tasks import TASKS, option_flags

    given: dict[Task, dict[str, Any]] = {task: {} for task in args.task}
    for flag, option in option_flags().items():
        value = getattr(args, option.key)
        if value is None or value is False:
            continue
        if not set(option.tasks) & set(given):
            raise MiradaError(
                f"{flag} applies to --task {' or '.join(option.tasks)} only; add that task or "
                "drop it"
            )
        for task in option.tasks:
            if task in given:
                given[task][option.key] = value
    return {task: TASKS[task].options(**values) for task, values in given.items()}


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
        type=_enum_arg(Task, "task"),
        choices=list(Task),
        help="match: retrieval metrics; caption: generate + score captions; benchmark: latency",
    ),
    arg("--device", default=Device.auto, type=_enum_arg(Device, "device"), choices=list(Device)),
    arg("--dtype", default=Dtype.fp32, type=_enum_arg(Dtype, "dtype"), choices=list(Dtype)),
    arg("--batch-size", type=int, default=32),
    # the run options' flags (--batch-sizes, --variants, --engine, ...), declared by their fields
    *_option_args(),
    arg("--requires", metavar="LABEL", help="only a worker started with --label LABEL runs it"),
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
        from mirada.queries.runs import queue_hint
        from mirada.text_safety import printable

        print(printable(queue_hint(args.requires)))  # worker names are the user's text
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
    """'  95% CI [89.6, 100.0] (Wilson)' (as format_metric shows the metric), then what chance
    says about it ('within chance (25% for 4 classes)' or why R@k is trivial); without an
    interval, why there is none ('  (corpus-level score ...)', `no_interval_reason`)."""
    from mirada.metrics.formatting import format_interval, no_interval_reason
    from mirada.metrics.names import MetricKind, chance_note, interval_name, kind_of

    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    if not isinstance(low, float) or not isinstance(high, float):
        if kind_of(name) is MetricKind.number:
            return ""  # a count (parameters, batches) is exact: nobody looks for an interval
        mean = metrics.get(f"{name}_per_image_mean")
        ci = [
            metrics.get(f"{name}_per_image_mean_ci_low"),
            metrics.get(f"{name}_per_image_mean_ci_high"),
        ]
        return f"  ({no_interval_reason(name, {'per_image_mean': mean, 'per_image_mean_ci': ci})})"
    details = {
        "interval_method": metrics.get(f"{name}_interval_method"),
        "chance": metrics.get(f"{name}_chance"),
        "chance_basis": metrics.get(f"{name}_chance_basis"),
        "trivial": metrics.get(f"{name}_trivial"),
    }
    note = chance_note(low, high, details)
    note = f"; {note}" if note else ""
    return f"  95% CI {format_interval(name, low, high)} ({interval_name(details)}){note}"


def _definition_text(metrics: dict[str, object], name: str) -> str:
    """'; prefix "A photo depicts ", w = 2.5' for CLIPScore and RefCLIPScore, else ''."""
    prefix, w = metrics.get(f"{name}_prefix"), metrics.get(f"{name}_w")
    if prefix is None or w is None:
        return ""
    return f"; prefix {json.dumps(prefix)}, w = {w}"


def run_id(text: str) -> int:
    """argparse type of a run id (mirada.domain.parse_id): "²" or 23 digits are a usage error,
    not a traceback from int() or the database driver."""
    number = parse_id(text)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"not a run id: {text!r} (a whole number from 1 to {MAX_ID}; see `mirada runs`)"
        )
    return number


@command(
    "show",
    "Show one run: status, progress, metrics with 95%% CIs, per category, timings, hardware",
    arg("run_id", type=run_id),
    arg("--json", action="store_true"),
)
def show_cmd(args: argparse.Namespace) -> int:
    from mirada.metrics.formatting import MISSING
    from mirada.queries.runs import METRIC_SUFFIXES, run_detail

    detail = run_detail(args.run_id)
    from mirada.benchmark_records import to_json
    from mirada.queries.variants import run_measurement, run_records

    records = run_records(args.run_id)
    measurement = run_measurement(args.run_id)
    if records is not None:
        detail["variants"] = [to_json(r) for r in records]
    if detail["task"] == Task.benchmark:  # null for a run measured before conditions were
        detail["measurement"] = None if measurement is None else to_json(measurement)
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
        f"batch size {detail['batch_size']}, worker {detail['worker'] or MISSING}"
    )
    if detail["origin"]:
        origin = detail["origin"]
        print(
            f"imported from {origin['host']} (run {origin['run_id']} there) "
            f"on {origin['imported_at']}; never re-executed here"
        )
    if detail["error"]:
        print(f"error: {detail['error']}")
    from mirada.metrics.formatting import format_metric

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
            shown = format_metric(name, value) + _interval_text(metrics, name)
            print(f"  {head} {shown}{_definition_text(metrics, name)}")
    if detail["per_category"]:
        print("\nper category:")
        for cat, vals in detail["per_category"].items():
            shown = ", ".join(
                f"{k} {format_metric(k, v, vals.get(f'{k}_ci_low'), vals.get(f'{k}_ci_high'))}"
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
        timings = [  # the unit has its own column
            {**t, "value": format_metric(t["name"], t["value"], unit=False)}
            for t in detail["timings"]
        ]
        print(format_table(timings, ("name", "value", "unit", "batch_size")))
    if records:
        _print_variants(records, measurement)
    if detail["captions"]:
        print(f"\ncaptions ({len(detail['captions'])}), first 5:")
        for c in detail["captions"][:5]:
            print(f"  {c['filename']}: {c['text']}")
    if detail["hardware"]:
        hw = {k: MISSING if v is None else v for k, v in detail["hardware"].items()}
        print(
            f"\nhardware: {hw['hostname']} {hw['cpu_model']} ({hw['cpu_cores']} cores, "
            f"{hw['ram_gb']} GB), gpu {hw['gpu_name']}, torch {hw['torch']}"
        )
    return 0


def _print_variants(records: list[VariantRecord], measurement: Measurement | None) -> None:
    """The variants table with CIs and speed-ups, the task metrics, the conditions they were
    measured under, and the advice (withheld, with the reason, when contended)."""
    from mirada.metrics.formatting import MISSING
    from mirada.queries.speed_advice import advise
    from mirada.queries.variants import (
        VARIANT_COLUMNS,
        measurement_line,
        task_metric_lines,
        variant_rows,
    )
    from mirada.text_safety import printable

    rows = variant_rows(records)
    columns = [c for c in VARIANT_COLUMNS if c == "name" or any(r[c] != MISSING for r in rows)]
    print(
        "\nvariants (speed op at the largest batch size; speed-up and accuracy against the "
        f"reference, {records[0].name if records[0].reference else 'fp32'}):"
    )
    print(format_table(rows, columns, width=80))
    for line in task_metric_lines(records):
        print(f"  {printable(line, keep_newlines=False)}")
    if measurement is not None:
        print(f"measured: {printable(measurement_line(measurement))}")
    else:
        print("measured: conditions not recorded (a run from before contention was checked)")
    advice = advise(records, measurement)
    print(f"advice: {printable(advice.summary, keep_newlines=False)}")


@command("cancel", "Cancel a queued or running run", arg("run_id", type=run_id))
def cancel_cmd(args: argparse.Namespace) -> int:
    from mirada.queue import cancel_run

    cancel_run(args.run_id)
    print(f"run {args.run_id} cancelled")
    return 0


@command("retry", "Re-queue a failed or cancelled run", arg("run_id", type=run_id))
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
        default=Device.auto,
        type=_enum_arg(Device, "device"),
        choices=list(Device),
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
