"""The `benchmark` task: honest latency, throughput and peak memory per batch size.

Load time is recorded separately; warm-up batches are excluded; every timed batch ends with a
device synchronisation, so asynchronous CUDA work is not mistaken for speed.

With `variants` (mirada queue --variants fp32,bf16,bf16+compile) the model loads in fp32, the
reference, and each other variant is a copy cast to its dtype; all are measured on the same
inputs, interleaved batch by batch, and compared with the reference's outputs
(`mirada.worker.tasks.variants`). The run's timings are the reference's; the variants are the
"variants" artifact.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mirada.domain import Device
from mirada.metrics import names
from mirada.results import VARIANTS_ARTIFACT, MetricValue, RunResults, TimingValue
from mirada.run_options import BenchmarkRunOptions
from mirada.vlm.base import Captioner, Embedder, LoadedModel
from mirada.worker.context import RunContext
from mirada.worker.model import LazyModel
from mirada.worker.tasks.caption import generation_options
from mirada.worker.tasks.common import Progress, TaskOutput, dataset_items, load_timing
from mirada.worker.tasks.variants import (
    BatchRow,
    Contender,
    Operation,
    artifact,
    build_contenders,
    records,
    threads,
)


class PeakRSS:
    """Sample this process's RSS in a thread: the peak during one measured operation."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self._proc.memory_info().rss
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


@dataclass
class _Call:
    seconds: float
    peak_rss: int
    cuda_peak: int | None
    output: Any


def _call(c: Contender, op: str, pixels: Any, texts: list[str], cuda: bool) -> _Call:
    """One batch of `op` by contender `c`, synchronised, with its peak memory."""
    import torch

    if c.adapter is None:
        raise ValueError(f"variant {c.name} has no model to call")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with threads(c.threads), PeakRSS() as rss:
        t0 = time.perf_counter()
        out = c.ops[op](pixels, texts)
        c.adapter.synchronize()
        seconds = time.perf_counter() - t0
    return _Call(seconds, rss.peak, torch.cuda.max_memory_allocated() if cuda else None, out)


def _measure(
    contenders: list[Contender],
    op: str,
    pixels: dict[bool, Any],
    texts: list[str],
    opts: BenchmarkRunOptions,
    progress: Progress,
    cuda: bool,
) -> dict[str, Any]:
    """Warm every contender up, then time them batch by batch in turn (interleaved, so a load
    spike from another process hits them alike). Returns each one's last output."""
    bs = len(texts)
    live = [c for c in contenders if c.available and op in c.ops]
    first: dict[str, float] = {}
    for c in live:
        # a compiled variant compiles on its first call: never time that one
        for i in range(max(opts.warmup_batches, 1 if c.compiled else 0)):
            try:
                call = _call(c, op, pixels[c.channels_last], texts, cuda)
            except Exception as exc:
                c.fail(f"{op} at batch {bs}", exc)
                break
            if i == 0:
                first[c.name] = call.seconds
            progress.advance(1)
    calls: dict[str, list[_Call]] = {c.name: [] for c in live}
    for _ in range(opts.timed_batches):
        for c in live:
            if not c.available:
                continue
            try:
                calls[c.name].append(_call(c, op, pixels[c.channels_last], texts, cuda))
            except Exception as exc:
                c.fail(f"{op} at batch {bs}", exc)
                continue
            progress.advance(1)
    last: dict[str, Any] = {}
    for c in live:
        done = calls[c.name]
        if not c.available or not done:
            continue
        per_item_ms = [call.seconds * 1000 / bs for call in done]
        cuda_peaks = [call.cuda_peak for call in done if call.cuda_peak is not None]
        c.rows.append(
            BatchRow(
                op=op,
                batch_size=bs,
                repeats=len(done),
                throughput_per_s=bs * len(done) / sum(call.seconds for call in done),
                latency_p50_ms=float(np.percentile(per_item_ms, 50)),
                latency_p95_ms=float(np.percentile(per_item_ms, 95)),
                peak_rss_mb=max(call.peak_rss for call in done) / 2**20,
                cuda_max_allocated_mb=max(cuda_peaks) / 2**20 if cuda_peaks else None,
                first_call_s=first.get(c.name),
            )
        )
        last[c.name] = done[-1].output
    return last


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
            TimingValue(names.timing_key(r.op, names.PEAK_RSS_MB), r.peak_rss_mb, "MB", bs),
        ]
        if r.cuda_max_allocated_mb is not None:
            peak = r.cuda_max_allocated_mb
            key = names.timing_key(r.op, names.CUDA_MAX_ALLOCATED_MB)
            out.append(TimingValue(key, peak, "MB", bs))
    return out


def execute(ctx: RunContext, model: LazyModel, opts: BenchmarkRunOptions) -> TaskOutput:
    import torch
    from PIL import Image

    # with variants the run's dtype is fp32 (mirada.run_options.check_dtype): the reference
    variants = opts.variants or ()
    items = dataset_items(ctx)
    adapter = model.get()
    batch_sizes = list(opts.batch_sizes or [ctx.run.batch_size])

    def operations(a: LoadedModel) -> dict[str, Operation]:
        return _operations(a, opts)

    if variants:
        contenders = build_contenders(adapter, variants, operations)
    else:
        contenders = [Contender(str(adapter.dtype), None, adapter, operations(adapter))]
    ops = list(operations(adapter))
    calls_per_op = sum(
        max(opts.warmup_batches, 1 if c.compiled else 0) + opts.timed_batches
        for c in contenders
        if c.available
    )
    progress = Progress(ctx, total=len(batch_sizes) * len(ops) * calls_per_op)

    # Decode once: the benchmark measures the model, not JPEG decoding.
    needed = max(batch_sizes)
    pool = [items[i % len(items)] for i in range(needed)]
    transform = adapter.image_transform
    with_pixels = []
    for it in pool:
        with Image.open(it.path) as im:
            with_pixels.append(transform(im.convert("RGB")))
    texts_pool = [it.captions[0][1] for it in pool]

    cuda = adapter.device == Device.cuda
    for bs in batch_sizes:
        pixels = torch.stack(with_pixels[:bs])
        if cuda:
            pixels = pixels.pin_memory()
        # the same values for every variant; channels-last ones get them in that layout
        layouts = {False: pixels}
        if any(c.channels_last for c in contenders):
            nhwc = pixels.contiguous(memory_format=torch.channels_last)
            layouts[True] = nhwc.pin_memory() if cuda else nhwc
        for op in ops:
            last = _measure(contenders, op, layouts, texts_pool[:bs], opts, progress, cuda)
            if bs == needed:
                for c in contenders:
                    if c.name in last:
                        c.outputs[op] = last[c.name]

    timed = next(c for c in contenders if c.reference or c.variant is None)
    results = RunResults(
        metrics=[
            MetricValue(names.NUM_PARAMS, float(adapter.num_params)),
            MetricValue(names.WARMUP_BATCHES, float(opts.warmup_batches)),
            MetricValue(names.TIMED_BATCHES, float(opts.timed_batches)),
        ],
        timings=[*load_timing(model), *_timings(timed.rows)],
    )
    if variants:
        recs = records(contenders, needed, min(len(items), needed), torch.get_num_threads())
        results.artifacts[VARIANTS_ARTIFACT] = artifact(recs)
    return TaskOutput(results, model.fingerprint(), model.resolved_device())
