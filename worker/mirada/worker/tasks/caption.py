"""The `caption` task: generate a caption per image and score it against the references
(and, with --clipscore-model, CLIPScore / RefCLIPScore under that embedding model)."""

from __future__ import annotations

import dataclasses
import time

from mirada.datasets import ItemRecord
from mirada.domain import Device, Phase
from mirada.metrics import clipscore, names
from mirada.metrics.report import build_caption_report
from mirada.results import RunResults, TimingValue
from mirada.run_options import BenchmarkRunOptions, CaptionRunOptions
from mirada.vlm.base import CaptionOptions, as_captioner
from mirada.worker.context import RunContext
from mirada.worker.data import image_batches
from mirada.worker.model import LazyModel
from mirada.worker.tasks.common import (
    EmbedStats,
    Progress,
    TaskOutput,
    dataset_items,
    embed_images,
    embed_texts,
    load_timing,
    model_cache_key,
    model_time,
    stage_timings,
    waited,
)


def generation_options(opts: CaptionRunOptions | BenchmarkRunOptions) -> CaptionOptions:
    """The adapter's generation settings from a run's options."""
    return CaptionOptions(prompt=opts.prompt, num_beams=opts.num_beams, max_length=opts.max_length)


def execute(ctx: RunContext, model: LazyModel, run_opts: CaptionRunOptions) -> TaskOutput:
    items = dataset_items(ctx)
    adapter = model.get()
    captioner = as_captioner(adapter)
    opts = generation_options(run_opts)
    n_refs = sum(len(it.captions) for it in items)
    extra = 2 * len(items) + n_refs if run_opts.clipscore_model else 0
    progress = Progress(ctx, total=len(items) + extra)
    predictions: dict[int, str] = {}
    ctx.set_phase(Phase.generating_captions)
    t0 = time.perf_counter()
    stages = EmbedStats()
    for start, pixels in waited(
        image_batches(
            [it.path for it in items],
            adapter.image_transform,
            ctx.run.batch_size,
            pin_memory=adapter.device == Device.cuda,
        ),
        stages,
    ):
        with model_time(stages):
            texts = captioner.caption_pixels(pixels, opts)
        for i, text in enumerate(texts):
            predictions[items[start + i].item_id] = text
        progress.advance(len(pixels))
    seconds = time.perf_counter() - t0
    references = {it.item_id: [text for _, text in it.captions] for it in items}
    clip = None
    if run_opts.clipscore_model:
        clip = _clip_scores(
            ctx, model, run_opts.clipscore_model, run_opts, items, predictions, progress
        )
    ctx.set_phase(Phase.scoring_captions)
    report = build_caption_report(
        references,
        predictions,
        clip=clip,
        clip_model=run_opts.clipscore_model,
        n_resamples=run_opts.n_resamples,
        seed=run_opts.seed,
    )
    results = RunResults(
        metrics=list(report.metrics),
        captions=list(report.captions),
        timings=[
            *load_timing(model),
            TimingValue(
                names.timing_key(names.CAPTION, names.PER_S),
                len(items) / seconds if seconds > 0 else 0.0,
                "items/s",
            ),
            *stage_timings(names.CAPTION, stages),
        ],
        artifacts=dict(report.artifacts),
    )
    ctx.set_phase(Phase.writing_results)
    return TaskOutput(results, model.fingerprint(), model.resolved_device())


def _clip_scores(
    ctx: RunContext,
    model: LazyModel,
    model_id: str,
    opts: CaptionRunOptions,
    items: list[ItemRecord],
    predictions: dict[int, str],
    progress: Progress,
) -> clipscore.ClipScores:
    """Per-image CLIPScore and RefCLIPScore (in `items` order) under the run's
    --clipscore-model, pinned when queued, on the run's model's device and dtype; its
    embeddings go through the embedding cache."""
    scorer = LazyModel(
        dataclasses.replace(
            model.request,
            model_id=opts.clipscore_resolved_model_id or model_id,
            model_files=opts.clipscore_model_files,
        )
    )
    key = model_cache_key(scorer, no_cache=opts.no_cache)
    ctx.set_phase(Phase.embedding_images)
    image_emb = embed_images(
        scorer,
        ctx,
        [it.path for it in items],
        [it.sha256 for it in items],
        progress,
        EmbedStats(),
        key,
    )
    ctx.set_phase(Phase.embedding_captions)
    prefix = clipscore.PREFIX
    candidates = [prefix + predictions[it.item_id] for it in items]
    refs = [prefix + text for it in items for _, text in it.captions]
    owner = [i for i, it in enumerate(items) for _ in it.captions]
    text_emb = embed_texts(scorer, ctx, candidates + refs, progress, EmbedStats(), key)
    return clipscore.clip_scores(image_emb, text_emb[: len(items)], text_emb[len(items) :], owner)
