"""The `caption` task: generate a caption per image and score it against the references."""

from __future__ import annotations

import time

from mirada.domain import Device
from mirada.metrics.report import build_caption_report
from mirada.results import RunResults, TimingValue
from mirada.run_options import BenchmarkRunOptions, CaptionRunOptions
from mirada.vlm.base import CaptionOptions
from mirada.worker.context import RunContext
from mirada.worker.data import image_batches
from mirada.worker.model import LazyModel
from mirada.worker.tasks.common import Progress, TaskOutput, dataset_items, load_timing


def generation_options(opts: CaptionRunOptions | BenchmarkRunOptions) -> CaptionOptions:
    """The adapter's generation settings from a run's options."""
    return CaptionOptions(prompt=opts.prompt, num_beams=opts.num_beams, max_length=opts.max_length)


def execute(ctx: RunContext, model: LazyModel) -> TaskOutput:
    run_opts = CaptionRunOptions.from_dict(ctx.run.options)
    items = dataset_items(ctx)
    adapter = model.get()
    opts = generation_options(run_opts)
    progress = Progress(ctx, total=len(items))
    predictions: dict[int, str] = {}
    t0 = time.perf_counter()
    for start, pixels in image_batches(
        [it.path for it in items],
        adapter.image_transform,
        ctx.run.batch_size,
        pin_memory=adapter.device == Device.cuda,
    ):
        for i, text in enumerate(adapter.caption_pixels(pixels, opts)):
            predictions[items[start + i].item_id] = text
        progress.advance(len(pixels))
    seconds = time.perf_counter() - t0
    references = {it.item_id: [text for _, text in it.captions] for it in items}
    report = build_caption_report(
        references,
        predictions,
        n_resamples=run_opts.n_resamples,
        seed=run_opts.seed,
    )
    results = RunResults(
        metrics=list(report.metrics),
        captions=list(report.captions),
        timings=[
            *load_timing(model),
            TimingValue("caption_per_s", len(items) / seconds if seconds > 0 else 0.0, "items/s"),
        ],
        artifacts=dict(report.artifacts),
    )
    return TaskOutput(results, model.fingerprint(), model.resolved_device())
