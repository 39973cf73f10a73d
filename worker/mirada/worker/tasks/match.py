"""The `match` task: embed every image and caption, then retrieval metrics with CIs, and a
linear probe and kNN on the image embeddings when the dataset has categories."""

from __future__ import annotations

import numpy as np

from mirada.datasets import ItemRecord
from mirada.domain import Engine, Phase
from mirada.metrics import names
from mirada.metrics.probe import with_probe
from mirada.metrics.report import build_match_report
from mirada.metrics.retrieval import class_prompts, topk_candidates
from mirada.results import EmbeddingSet, RunResults
from mirada.run_options import MatchRunOptions
from mirada.vlm.base import SCORE_PAIRS, as_pair_scorer, sigmoid_calibration
from mirada.vlm.ids import parse_model_id
from mirada.worker.context import RunContext
from mirada.worker.data import image_batches
from mirada.worker.model import LazyModel
from mirada.worker.tasks.common import (
    EmbedStats,
    Progress,
    TaskOutput,
    dataset_items,
    embed_images,
    embed_on_ray,
    embed_texts,
    load_timing,
    model_cache_key,
    throughput_timings,
)


def execute(ctx: RunContext, model: LazyModel, opts: MatchRunOptions) -> TaskOutput:
    items = dataset_items(ctx)
    caption_ids = [cid for it in items for cid, _ in it.captions]
    texts = [text for it in items for _, text in it.captions]
    caption_image = np.array([i for i, it in enumerate(items) for _ in it.captions], dtype=np.int64)
    categories = [it.category for it in items]
    known = sorted({c for c in categories if c})

    from mirada.vlm.registry import capabilities_for

    rerank = SCORE_PAIRS in capabilities_for(ctx.run.model_id) and not opts.no_rerank
    k = min(opts.rerank_k, len(texts))
    flat: list[str] = []  # zero-shot prompts, class by class
    if len(known) >= 2:
        templates = opts.zeroshot_templates
        prompts = class_prompts(known, templates) if templates else class_prompts(known)
        flat = [p for group in prompts for p in group]
    ray = None
    if opts.engine is Engine.ray:
        from mirada.worker.ray_engine import RayEmbedder

        ray = RayEmbedder(model, ctx.run.device, ctx.run.batch_size)
    total = len(items) + len(texts) + (len(items) if rerank else 0)
    progress = Progress(ctx, total=total + (len(flat) if ray else 0))
    key = model_cache_key(model, no_cache=opts.no_cache)

    img_stats, txt_stats = EmbedStats(), EmbedStats()
    paths, hashes = [it.path for it in items], [it.sha256 for it in items]
    if ray is None:
        ctx.set_phase(Phase.embedding_images)
        image_emb = embed_images(model, ctx, paths, hashes, progress, img_stats, key)
        ctx.set_phase(Phase.embedding_captions)
        text_emb = embed_texts(model, ctx, texts, progress, txt_stats, key)
        if flat:
            ctx.set_phase(Phase.embedding_prompts)
        flat_emb = embed_texts(model, ctx, flat, None, EmbedStats(), key) if flat else None
    else:  # one pipeline (one start of the model actors) for images, captions and prompts
        ctx.set_phase(Phase.embedding_on_ray)
        image_emb, both = embed_on_ray(
            ray, paths, hashes, texts + flat, progress, img_stats, txt_stats, key
        )
        text_emb, flat_emb = both[: len(texts)], both[len(texts) :]

    class_emb = None
    if flat_emb is not None and len(flat_emb):
        class_emb = flat_emb.reshape(len(known), len(flat) // len(known), -1)

    candidates = scores = None
    if rerank:
        ctx.set_phase(Phase.reranking)
        candidates = topk_candidates(image_emb, text_emb, k)
        scores = _itm_scores(ctx, model, items, texts, candidates, progress)

    # A sigmoid-loss model's (SigLIP) own zero-shot probability needs its logit scale and bias:
    # two numbers, for which a fully cached run loads the model.
    calibration = None
    if class_emb is not None and parse_model_id(ctx.run.model_id).family_entry.sigmoid_loss:
        calibration = sigmoid_calibration(model.get())

    ctx.set_phase(Phase.computing_metrics)
    report = build_match_report(
        image_emb,
        text_emb,
        caption_image,
        [it.item_id for it in items],
        caption_ids,
        categories,
        class_emb=class_emb,
        class_names=known if class_emb is not None else None,
        rerank_candidates=candidates,
        rerank_scores=scores,
        sigmoid_calibration=calibration,
        n_resamples=opts.n_resamples,
        seed=opts.seed,
    )
    if known:  # linear probe and kNN on the same image embeddings: no model calls
        ctx.set_phase(Phase.probing)
        report = with_probe(report, image_emb, categories, seed=opts.seed)
    results = RunResults(
        metrics=list(report.metrics),
        items=list(report.items),
        timings=[
            *load_timing(model),
            *throughput_timings(names.IMAGE_ENCODE, img_stats),
            *throughput_timings(names.TEXT_ENCODE, txt_stats),
        ],
        embeddings=[
            EmbeddingSet("image", np.array([it.item_id for it in items]), image_emb),
            EmbeddingSet("text", np.array(caption_ids), text_emb),
        ],
        artifacts=dict(report.artifacts),
    )
    ctx.set_phase(Phase.writing_results)
    device = ray.resolved_device if ray is not None else None
    return TaskOutput(results, model.fingerprint(), device or model.resolved_device())


def _itm_scores(
    ctx: RunContext,
    model: LazyModel,
    items: list[ItemRecord],
    texts: list[str],
    candidates: np.ndarray,
    progress: Progress,
) -> np.ndarray:
    """ITM match probabilities for each image's contrastive top-k (BLIP's retrieval recipe)."""
    adapter = model.get()
    scorer = as_pair_scorer(adapter)
    out = np.zeros(candidates.shape, dtype=np.float32)
    for start, pixels in image_batches(
        [it.path for it in items], adapter.image_transform, ctx.run.batch_size
    ):
        n = len(pixels)
        cand_texts = [[texts[j] for j in candidates[start + i]] for i in range(n)]
        for i, row in enumerate(scorer.score_candidates(pixels, cand_texts)):
            out[start + i] = row
        progress.advance(n)
    return out
