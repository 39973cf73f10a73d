"""The `benchmark` task: honest latency, throughput and peak memory per batch size.

Load time is recorded separately; warm-up batches are excluded; every timed batch ends with a
device synchronisation, so asynchronous CUDA work is not mistaken for speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mirada.domain import Device
from mirada.results import MetricValue, RunResults, TimingValue
from mirada.run_options import BenchmarkRunOptions
from mirada.vlm.base import CAPTION, EMBED, VLMAdapter
from mirada.worker.context import RunContext
from mirada.worker.model import LazyModel
from mirada.worker.tasks.caption import generation_options
from mirada.worker.tasks.common import Progress, TaskOutput, dataset_items, load_timing


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


def _operations(adapter: VLMAdapter, options: BenchmarkRunOptions) -> dict[str, Callable[..., Any]]:
    ops: dict[str, Callable[..., Any]] = {}
    if EMBED in adapter.capabilities:
        ops["image_encode"] = lambda images, texts: adapter.encode_pixels(images)
        ops["text_encode"] = lambda images, texts: adapter.encode_texts(texts)
    if CAPTION in adapter.capabilities:
        opts = generation_options(options)
        ops["caption"] = lambda images, texts: adapter.caption_pixels(images, opts)
    return ops


def execute(ctx: RunContext, model: LazyModel) -> TaskOutput:
    import torch
    from PIL import Image

    opts = BenchmarkRunOptions.from_dict(ctx.run.options)
    items = dataset_items(ctx)
    adapter = model.get()
    batch_sizes = list(opts.batch_sizes or [ctx.run.batch_size])
    warmup, timed = opts.warmup_batches, opts.timed_batches
    ops = _operations(adapter, opts)
    progress = Progress(ctx, total=len(batch_sizes) * len(ops) * (warmup + timed))

    # Decode once: the benchmark measures the model, not JPEG decoding.
    needed = max(batch_sizes)
    pool = [items[i % len(items)] for i in range(needed)]
    transform = adapter.image_transform
    with_pixels = []
    for it in pool:
        with Image.open(it.path) as im:
            with_pixels.append(transform(im.convert("RGB")))
    texts_pool = [it.captions[0][1] for it in pool]

    timings: list[TimingValue] = list(load_timing(model))
    cuda = adapter.device == Device.cuda
    for bs in batch_sizes:
        pixels = torch.stack(with_pixels[:bs])
        texts = texts_pool[:bs]
        if cuda:
            pixels = pixels.pin_memory()
        for op_name, op in ops.items():
            for _ in range(warmup):
                op(pixels, texts)
                adapter.synchronize()
                progress.advance(1)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            per_item_ms: list[float] = []
            with PeakRSS() as rss:
                t_total = time.perf_counter()
                for _ in range(timed):
                    t0 = time.perf_counter()
                    op(pixels, texts)
                    adapter.synchronize()
                    per_item_ms.append((time.perf_counter() - t0) * 1000 / bs)
                    progress.advance(1)
                total = time.perf_counter() - t_total
            timings += [
                TimingValue(
                    f"{op_name}_latency_p50_ms", float(np.percentile(per_item_ms, 50)), "ms", bs
                ),
                TimingValue(
                    f"{op_name}_latency_p95_ms", float(np.percentile(per_item_ms, 95)), "ms", bs
                ),
                TimingValue(f"{op_name}_throughput_per_s", bs * timed / total, "items/s", bs),
                TimingValue(f"{op_name}_peak_rss_mb", rss.peak / 2**20, "MB", bs),
            ]
            if cuda:
                timings.append(
                    TimingValue(
                        f"{op_name}_cuda_max_allocated_mb",
                        torch.cuda.max_memory_allocated() / 2**20,
                        "MB",
                        bs,
                    )
                )
    metrics = [
        MetricValue("num_params", float(adapter.num_params)),
        MetricValue("warmup_batches", float(warmup)),
        MetricValue("timed_batches", float(timed)),
    ]
    return TaskOutput(
        RunResults(metrics=metrics, timings=timings), model.fingerprint(), model.resolved_device()
    )
