"""The `benchmark` task: throughput and latency with confidence intervals, paired speed-ups,
the memory a variant adds, whether other work contended for the machine, the input
pipeline's rate and (with variants) the accuracy cost.

Measurement, per batch size and operation: every live contender is warmed up, then timed in
rounds: each round times every contender once, in a rotating order (speed.round_order), so a
load spike from another process hits them alike and speed-ups pair the batches of one round.
Rounds repeat until every contender's throughput CI is within speed.TARGET_REL_CI (after at
least `timed_batches` rounds), or the op/batch size has used `max_seconds`, or MAX_ROUNDS.
Every timed batch is bracketed by device synchronisations, so queued CUDA work is neither
mistaken for speed nor billed to the next contender. Load time is recorded separately.

Without --variants the run measures its model as loaded (one contender, its own reference);
with them (mirada queue --variants fp32,bf16,bf16+compile) the model loads in fp32, the
reference, and each other variant is a cast copy (`mirada.worker.tasks.variants`). Either way
the run stores the "variants" and "measurement" artifacts (mirada.benchmark_records), and its
timings table holds the reference's rows (what older readers and the Compare page read).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mirada.benchmark_records import (
    CONTENDED_CPU_SHARE,
    BatchRow,
    InputPipeline,
    Measurement,
    contention_reason,
    dump_measurement,
    dump_records,
)
from mirada.datasets import ItemRecord
from mirada.domain import Device
from mirada.metrics import names, speed
from mirada.results import (
    MEASUREMENT_ARTIFACT,
    VARIANTS_ARTIFACT,
    MetricValue,
    RunResults,
    TimingValue,
)
from mirada.run_options import BenchmarkRunOptions
from mirada.vlm.base import Captioner, Embedder, LoadedModel
from mirada.worker import contention
from mirada.worker.context import RunContext
from mirada.worker.model import LazyModel
from mirada.worker.tasks.caption import generation_options
from mirada.worker.tasks.common import Progress, TaskOutput, dataset_items, load_timing
from mirada.worker.tasks.variants import (
    Contender,
    Decoders,
    Operation,
    RunFacts,
    build_contenders,
    decoders,
    plain_contender,
    records,
)

MAX_ROUNDS = 1000  # a hard cap, whatever the budget
PIPELINE_MAX_SECONDS = 10.0  # the input-pipeline stage's budget (at most the run's max_seconds)
# contention is judged on op/batch-size windows this long or longer (a shorter one is a few
# /proc/stat jiffies: too coarse to say anything), and on the whole measurement
MIN_WINDOW_S = 1.0
_UNIT = 1000  # progress ticks per stage (operation x batch size, input pipeline, accuracy)


class PeakRSS:
    """Sample this process's RSS in a thread: the peak during one measured call."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _operations(adapter: LoadedModel, options: BenchmarkRunOptions) -> dict[str, Operation]:
    """What the model can do, timed: each protocol it implements adds its operations."""
    ops: dict[str, Operation] = {}
    if isinstance(adapter, Embedder):
        embedder = adapter
        ops[names.IMAGE_ENCODE] = lambda images, texts: embedder.encode_pixels(images)
        ops[names.TEXT_ENCODE] = lambda images, texts: embedder.encode_texts(texts)
    if isinstance(adapter, Captioner):
        captioner, opts = adapter, generation_options(options)
        ops[names.CAPTION] = lambda images, texts: captioner.caption_pixels(images, opts)
    return ops


@dataclass(frozen=True)
class Timed:
    """One timed batch."""

    seconds: float  # wall, between device synchronisations
    cpu_seconds: float = 0.0  # this process's CPU time over the call, all threads
    threads: int = 1  # torch intra-op threads it ran on
    activation_bytes: int = 0  # peak memory during the call over the memory just before it
    peak_rss: int = 0  # the whole process
    cuda_peak: int | None = None  # max_memory_allocated during the call


def _time_call(
    c: Contender, op: str, pixels: Any, texts: list[str], cuda: bool
) -> tuple[Timed, Any]:
    """One batch of `op` by `c` and its output, synchronised before and after, with its CPU
    time and the
    memory it added (CUDA: allocator peak over the allocation before; CPU: RSS peak over the
    RSS before, an underestimate where the allocator reuses memory it kept)."""
    import torch

    if c.adapter is None:
        raise ValueError(f"variant {c.name} has no model to call")
    with c.settings():  # set outside the timer; the op's own entry then changes nothing
        n_threads = torch.get_num_threads()
        c.adapter.synchronize()  # the previous contender's queued work is not ours
        base = 0
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        with PeakRSS() as rss:
            cpu0, t0 = time.process_time(), time.perf_counter()
            output = c.ops[op](pixels, texts)
            c.adapter.synchronize()
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    cuda_peak = torch.cuda.max_memory_allocated() if cuda else None
    added = cuda_peak - base if cuda_peak is not None else rss.peak - rss.start
    return Timed(seconds, cpu, n_threads, max(0, added), rss.peak, cuda_peak), output


def stop_reason(
    rounds: int,
    elapsed: float,
    seconds: Sequence[Sequence[float]],
    *,
    min_rounds: int,
    max_seconds: float,
    max_rounds: int = MAX_ROUNDS,
) -> str | None:
    """Why the rounds stop now ("converged", "budget", "cap"), or None to go on: never before
    `min_rounds`; then once every contender's throughput CI (its timed `seconds`) is within
    the target, or the budget is spent, or at the cap."""
    if rounds < min_rounds:
        return None
    if all(speed.converged(s) for s in seconds):
        return "converged"
    if elapsed >= max_seconds:
        return "budget"
    if rounds >= max_rounds:
        return "cap"
    return None


@dataclass
class Rounds:
    rounds: int
    stop: str
    calls: dict[str, list[Timed]]  # the contenders still available, their batches in rounds


def timed_rounds(
    live: Sequence[Contender],
    time_one: Callable[[Contender], Timed],
    *,
    min_rounds: int,
    max_seconds: float,
    started: float,
    where: str,
    clock: Callable[[], float] = time.perf_counter,
    max_rounds: int = MAX_ROUNDS,
    tick: Callable[[int, float], None] | None = None,
) -> Rounds:
    """Time every contender once per round, in rotating order, until `stop_reason` says so
    (`elapsed` counts from `started`, the op/batch size's start, warm-up included). A
    contender that fails is dropped with the reason (`where`); the reference's failure
    raises."""
    calls: dict[str, list[Timed]] = {c.name: [] for c in live}
    rounds = 0
    while True:
        for i in speed.round_order(len(live), rounds):
            c = live[i]
            if not c.available:
                continue
            try:
                calls[c.name].append(time_one(c))
            except Exception as exc:
                c.fail(where, exc)
        rounds += 1
        alive = [c for c in live if c.available]
        elapsed = clock() - started
        if tick is not None:
            tick(rounds, elapsed)
        seconds = [[t.seconds for t in calls[c.name]] for c in alive]
        stop = stop_reason(
            rounds,
            elapsed,
            seconds,
            min_rounds=min_rounds,
            max_seconds=max_seconds,
            max_rounds=max_rounds,
        )
        if stop is not None:
            return Rounds(rounds, stop, {c.name: calls[c.name] for c in alive})


def batch_row(
    op: str,
    batch_size: int,
    calls: Sequence[Timed],
    *,
    reference: Sequence[Timed] | None = None,
    first_call_s: float | None = None,
    on_cpu: bool = True,
    weights_bytes: int | None = None,
    activation_bytes: int = 0,
) -> BatchRow:
    """The figures of one contender's timed batches of one op and batch size. `reference`:
    the reference's batches of the same rounds (paired speed-up; None for the reference
    itself); `activation_bytes`: the most any of its calls added (warm-up included)."""
    seconds = [t.seconds for t in calls]
    rate = speed.throughput(seconds, batch_size)
    p50, p95 = speed.latency_ms(seconds, batch_size)
    per_item_ms = [s * 1000 / batch_size for s in seconds]
    speedup, speedup_ci = (
        speed.paired_speedup([t.seconds for t in reference], seconds)
        if reference is not None
        else (None, None)
    )
    efficiency = (
        float(np.median([t.cpu_seconds / (t.seconds * t.threads) for t in calls]))
        if on_cpu
        else None
    )
    cuda = [t.cuda_peak for t in calls if t.cuda_peak is not None]
    activations = max([activation_bytes, *(t.activation_bytes for t in calls)])
    return BatchRow(
        op=op,
        batch_size=batch_size,
        repeats=len(calls),
        throughput_per_s=rate.per_s,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        peak_rss_mb=max(t.peak_rss for t in calls) / 2**20,
        cuda_max_allocated_mb=max(cuda) / 2**20 if cuda else None,
        first_call_s=first_call_s,
        throughput_ci=rate.ci,  # unbounded above with a few very noisy batches: null in JSON
        latency_p50_ci=speed.median_ci(per_item_ms),
        speedup=speedup,
        speedup_ci=speedup_ci,
        converged=speed.converged(seconds),
        cpu_efficiency=efficiency,
        added_peak_mb=(
            (weights_bytes + activations) / 2**20 if weights_bytes is not None else None
        ),
        batch_seconds=tuple(seconds),
    )


class _Bar:
    """The run's progress over stages whose length is unknown in advance (rounds stop at
    convergence): each stage is _UNIT ticks, filled by the share of its budget spent."""

    def __init__(self, ctx: RunContext, stages: int) -> None:
        self.progress = Progress(ctx, total=max(1, stages) * _UNIT)
        self.stage = 0

    def at(self, fraction: float) -> None:
        target = self.stage * _UNIT + int(min(1.0, max(0.0, fraction)) * (_UNIT - 1))
        self.progress.advance(max(0, target - self.progress.done))

    def done(self) -> None:
        self.stage += 1
        self.progress.advance(max(0, self.stage * _UNIT - self.progress.done))


@dataclass
class _Run:
    """What one benchmark run measures with, and what the stages collect."""

    opts: BenchmarkRunOptions
    cuda: bool
    bar: _Bar
    clock: Callable[[], float] = time.perf_counter
    efficiencies: list[float] = field(default_factory=list)


def _measure(
    run: _Run, contenders: list[Contender], op: str, pixels: dict[Any, Any], texts: list[str]
) -> dict[str, Any]:
    """Warm every live contender up, then time them in rounds; each gets its BatchRow.
    Returns each one's last output."""
    opts, bs = run.opts, len(texts)
    where = f"{op} at batch {bs}"
    live = [c for c in contenders if c.available and op in c.ops]
    started = run.clock()

    def time_one(c: Contender) -> Timed:
        t, last[c.name] = _time_call(
            c, op, pixels[(id(c.decode), c.channels_last)], texts, run.cuda
        )
        added[c.name] = max(added.get(c.name, 0), t.activation_bytes)
        return t

    first: dict[str, float] = {}
    added: dict[str, int] = {}
    last: dict[str, Any] = {}
    for c in live:
        # a compiled variant compiles on its first call: never time that one
        for i in range(max(opts.warmup_batches, 1 if c.compiled else 0)):
            try:
                call = time_one(c)
            except Exception as exc:
                c.fail(where, exc)
                break
            if i == 0:
                first[c.name] = call.seconds
            run.bar.at((run.clock() - started) / opts.max_seconds)

    def tick(rounds: int, elapsed: float) -> None:
        run.bar.at(max(elapsed / opts.max_seconds, rounds / MAX_ROUNDS))

    result = timed_rounds(
        [c for c in live if c.available],
        time_one,
        min_rounds=opts.timed_batches,
        max_seconds=opts.max_seconds,
        started=started,
        where=where,
        clock=run.clock,
        tick=tick,
    )
    ref = next((c for c in live if c.reference and c.name in result.calls), None)
    for c in live:
        calls = result.calls.get(c.name)
        if not calls:
            continue
        row = batch_row(
            op,
            bs,
            calls,
            reference=result.calls[ref.name] if ref is not None and c is not ref else None,
            first_call_s=first.get(c.name),
            on_cpu=c.adapter is not None and c.adapter.device is Device.cpu,
            weights_bytes=c.weights_bytes,
            activation_bytes=added.get(c.name, 0),
        )
        c.rows.append(row)
        if row.cpu_efficiency is not None:
            run.efficiencies += [t.cpu_seconds / (t.seconds * t.threads) for t in calls]
    run.bar.done()
    return {name: last[name] for name in result.calls}


def _timings(rows: list[BatchRow]) -> list[TimingValue]:
    """A contender's rows under the timing names the Hardware page and `mirada show` read."""
    out: list[TimingValue] = []
    for r in rows:
        bs = r.batch_size
        out += [
            TimingValue(names.timing_key(r.op, names.LATENCY_P50_MS), r.latency_p50_ms, "ms", bs),
            TimingValue(names.timing_key(r.op, names.LATENCY_P95_MS), r.latency_p95_ms, "ms", bs),
            TimingValue(
                names.timing_key(r.op, names.THROUGHPUT_PER_S), r.throughput_per_s, "items/s", bs
            ),
        ]
        if r.peak_rss_mb is not None:
            key = names.timing_key(r.op, names.PEAK_RSS_MB)
            out.append(TimingValue(key, r.peak_rss_mb, "MB", bs))
        if r.cuda_max_allocated_mb is not None:
            peak = r.cuda_max_allocated_mb
            key = names.timing_key(r.op, names.CUDA_MAX_ALLOCATED_MB)
            out.append(TimingValue(key, peak, "MB", bs))
    return out


def _decoded(contenders: list[Contender], pool: list[ItemRecord]) -> dict[int, list[Any]]:
    """Each distinct decoder's pixels of the pool, decoded once (the benchmark times the
    model; the input pipeline is its own stage). A +fast_decode variant whose decoder fails is
    unavailable; the reference's decoder failing ends the run."""
    out: dict[int, list[Any]] = {}
    for c in contenders:
        if not c.available or c.decode is None or id(c.decode) in out:
            continue
        try:
            out[id(c.decode)] = [c.decode(it.path) for it in pool]
        except Exception as exc:
            c.fail("decoding the images", exc)
    return out


def _layouts(
    contenders: list[Contender], decoded: dict[int, list[Any]], bs: int, cuda: bool
) -> dict[tuple[int, bool], Any]:
    """(decoder id, channels_last) -> the batch of `bs` pixels: the same values for every
    variant of one decoder; channels-last ones get them in that layout; pinned on CUDA."""
    import torch

    out: dict[tuple[int, bool], Any] = {}
    for c in contenders:
        key = (id(c.decode), c.channels_last)
        if not c.available or key in out:
            continue
        pixels = torch.stack(decoded[id(c.decode)][:bs])
        if c.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        out[key] = pixels.pin_memory() if cuda else pixels
    return out


def _input_pipeline(
    items: list[ItemRecord],
    decode: Decoders,
    opts: BenchmarkRunOptions,
    batch_size: int,
    model_rate: float | None,
) -> InputPipeline:
    """Decode plus preprocess on the dataset's real files (mirada.worker.tasks.input_pipeline),
    against the reference's model-only rate: which one bounds the run."""
    from mirada.worker.tasks.input_pipeline import measure_input_pipeline

    pipeline = measure_input_pipeline(
        [it.path for it in items],
        decode.reference,
        batch_size=batch_size,
        max_seconds=min(opts.max_seconds, PIPELINE_MAX_SECONDS),
        fast=decode.fast,
    )
    if model_rate is None:
        return pipeline
    input_rate = pipeline.loader_images_per_s or pipeline.per_core_images_per_s
    bound = "input" if input_rate < model_rate else "model"
    return replace(pipeline, model_images_per_s=model_rate, bound=bound)


def _accuracy(
    items: list[ItemRecord], contenders: list[Contender], run: _Run, bs: int
) -> dict[str, Any]:
    """Each available contender's task metrics against the reference's
    (mirada.worker.tasks.accuracy_cost). A variant whose calls fail is
    left out there (no task metrics); the reference's failure fails the run."""
    from mirada.worker.tasks.accuracy_cost import accuracy_cost, accuracy_item_count

    total = accuracy_item_count(len(items), run.opts.accuracy_items)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        run.bar.at(done / max(1, total))

    live = [c for c in contenders if c.available]
    return dict(accuracy_cost(items, live, run.opts, batch_size=bs, progress=progress))


def _contention(whole: contention.Window, windows: list[contention.Window]) -> float | None:
    """Other work's share of the CPUs: the worst of the whole measurement and its op/batch
    size windows long enough to read (a busy spell in one window is diluted in the whole)."""
    if whole.other_cpu_share is None:
        return None
    shares = [w.other_cpu_share for w in windows if w.seconds >= MIN_WINDOW_S]
    return max([whole.other_cpu_share, *(s for s in shares if s is not None)])


def execute(
    ctx: RunContext,
    model: LazyModel,
    opts: BenchmarkRunOptions,
    *,
    probe: contention.Probe = contention.snapshot,
    clock: Callable[[], float] = time.perf_counter,
) -> TaskOutput:
    import torch

    # with variants the run's dtype is fp32 (mirada.run_options.check_dtype): the reference
    variants = opts.variants or ()
    items = dataset_items(ctx)
    adapter = model.get()
    batch_sizes = list(opts.batch_sizes or [ctx.run.batch_size])

    def operations(a: LoadedModel) -> dict[str, Operation]:
        return _operations(a, opts)

    decode = decoders(adapter)
    if variants:
        contenders = build_contenders(adapter, variants, operations, decode)
    else:
        contenders = [plain_contender(adapter, operations, decode)]
    ops = list(operations(adapter))
    speed_op = names.IMAGE_ENCODE if names.IMAGE_ENCODE in ops else names.CAPTION
    with_pipeline = speed_op in ops
    # the accuracy cost compares variants with the reference: nothing to compare in a plain run
    with_accuracy = bool(variants) and any(it.captions or it.category for it in items)
    cuda = adapter.device == Device.cuda
    stages = len(batch_sizes) * len(ops) + with_pipeline + with_accuracy
    run = _Run(opts, cuda, _Bar(ctx, stages), clock)

    largest = max(batch_sizes)
    pool = [items[i % len(items)] for i in range(largest)]
    texts_pool = [it.captions[0][1] if it.captions else (it.category or "") for it in pool]
    decoded = _decoded(contenders, pool)

    start = probe()
    windows: list[contention.Window] = []
    for bs in batch_sizes:
        layouts = _layouts(contenders, decoded, bs, cuda)
        for op in ops:
            before = probe()
            last = _measure(run, contenders, op, layouts, texts_pool[:bs])
            windows.append(contention.window(before, probe()))
            if bs == largest:  # agreement compares the largest batch's outputs
                for c in contenders:
                    if c.name in last:
                        c.outputs[op] = last[c.name]
    whole = contention.window(start, probe())
    share = _contention(whole, windows)
    contended = share is not None and share >= CONTENDED_CPU_SHARE

    ref = next(c for c in contenders if c.reference)
    ref_rate = next(
        (r.throughput_per_s for r in ref.rows if r.op == speed_op and r.batch_size == largest),
        None,
    )
    pipeline = None
    if with_pipeline:
        pipeline = _input_pipeline(items, decode, opts, largest, ref_rate)
        run.bar.done()
    costs = _accuracy(items, contenders, run, largest) if with_accuracy else {}
    if with_accuracy:
        run.bar.done()

    facts = RunFacts(
        largest, min(len(items), largest), torch.get_num_threads(), contended, costs, pipeline
    )
    measurement = Measurement(
        contended=contended,
        reason=contention_reason(share) if contended and share is not None else None,
        load_before=whole.load_before,
        load_after=whole.load_after,
        other_cpu_share=share,
        cpu_efficiency=float(np.median(run.efficiencies)) if run.efficiencies else None,
        cpus=start.cpus,
        threads=torch.get_num_threads(),
        interop_threads=torch.get_num_interop_threads(),
        cpu_model=contention.cpu_model(),
        gpu_name=torch.cuda.get_device_name() if cuda else None,
        gpu_clocks_mhz=contention.gpu_clocks_mhz() if cuda else None,
        max_seconds=opts.max_seconds,
        target_rel_ci=speed.TARGET_REL_CI,
        min_rounds=opts.timed_batches,
        seconds=whole.seconds,
        input_pipeline=pipeline,
    )
    results = RunResults(
        metrics=[
            MetricValue(names.NUM_PARAMS, float(adapter.num_params)),
            MetricValue(names.WARMUP_BATCHES, float(opts.warmup_batches)),
            MetricValue(names.TIMED_BATCHES, float(opts.timed_batches)),
        ],
        timings=[*load_timing(model), *_timings(ref.rows)],
    )
    json_type = "application/json"
    results.artifacts[VARIANTS_ARTIFACT] = (json_type, dump_records(records(contenders, facts)))
    results.artifacts[MEASUREMENT_ARTIFACT] = (json_type, dump_measurement(measurement))
    return TaskOutput(results, model.fingerprint(), model.resolved_device())
