"""The accuracy cost of each benchmark variant in the user's terms (issue 21 §2): the task
evaluation on the dataset's first N items, every variant against the fp32 reference on the
same items.

- Embedders: i2t and t2i R@1 and, with two or more categories, zero-shot accuracy (the match
  task's definitions and prompts), each with the paired difference, its bootstrap CI and the
  exact McNemar p; plus the images whose top-1 caption changed.
- Captioners: the share of captions identical to the reference's, and per-image CIDEr-D and
  BLEU-4 differences with paired bootstrap CIs (no METEOR: its JVM alone takes 10-20 s).

Memory stays bounded by one batch of pixels per decoder: each batch is decoded once per
distinct decoder and fed to every variant using it; only embeddings and captions are kept.
A variant whose calls fail is left out (logged); the reference's failure is raised, since
nothing can be compared without it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirada.benchmark_records import TaskMetric
from mirada.datasets import ItemRecord
from mirada.metrics.names import CAPTION, IMAGE_ENCODE, TEXT_ENCODE
from mirada.metrics.retrieval import class_prompts
from mirada.metrics.task_delta import (
    EmbeddingOutcomes,
    caption_scores,
    embedding_outcomes,
    paired_delta,
)
from mirada.run_options import BenchmarkRunOptions
from mirada.worker.data import decode_rgb
from mirada.worker.tasks.variants import Contender, failure

log = logging.getLogger(__name__)

DEFAULT_ACCURACY_ITEMS = 2000  # items evaluated when --accuracy-items is not given


@dataclass(frozen=True)
class CostResult:
    """One variant's accuracy cost (what its VariantRecord's task fields take)."""

    task_metrics: dict[str, TaskMetric]  # by metric key, in points
    top1_changed: int | None  # embedders: images whose top-1 caption changed vs reference
    accuracy_items: int  # images evaluated
    caption_identical_share: float | None  # captioners: share identical to the reference's


def accuracy_item_count(n_items: int, requested: int | None) -> int:
    """Items evaluated: the first `requested`, or all up to DEFAULT_ACCURACY_ITEMS."""
    return min(n_items, requested if requested is not None else DEFAULT_ACCURACY_ITEMS)


@dataclass
class _Outputs:
    """What one contender produced on the evaluated items."""

    image_emb: list[np.ndarray] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)


class _Failed(Exception):
    """A variant other than the reference failed (logged, and left out)."""


@dataclass
class _Calls:
    """Calls the contenders' operations, keeping what each produced; a variant that fails is
    dropped (logged), the reference's failure raised."""

    reference: Contender
    outputs: dict[str, _Outputs]

    def live(self, contenders: Sequence[Contender]) -> list[Contender]:
        return [c for c in contenders if c.name in self.outputs]

    def drop(self, c: Contender, where: str, exc: Exception) -> None:
        if c is self.reference:
            raise exc
        log.warning("variant %s left out of the accuracy cost: %s", c.name, failure(where, exc))
        self.outputs.pop(c.name, None)

    def call(self, c: Contender, op: str, pixels: Any, texts: Sequence[str]) -> Any:
        try:
            with c.settings():  # its threads and TF32 mode (again, where `ops` already do)
                return c.ops[op](pixels, texts)
        except Exception as exc:
            self.drop(c, op, exc)
            raise _Failed from exc


def accuracy_cost(
    items: Sequence[ItemRecord],
    contenders: Sequence[Contender],
    opts: BenchmarkRunOptions,
    *,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, CostResult]:
    """Each available contender's task metrics against the reference's, by contender name (the
    reference included, with zero deltas). `progress` is called after each batch of images with
    the number of images it held."""
    ref = next((c for c in contenders if c.reference), None)
    if ref is None or not ref.available:
        raise ValueError("the accuracy cost needs an available reference variant")
    subset = list(items[: accuracy_item_count(len(items), opts.accuracy_items)])
    texts = [text for it in subset for _, text in it.captions]
    categories = [it.category for it in subset]
    known = sorted({c for c in categories if c})
    classes = known if len(known) >= 2 else []
    # nothing to score without captions (and, for embedders, without two categories)
    embed = bool(texts or classes) and _has(ref, IMAGE_ENCODE, TEXT_ENCODE)
    caption = bool(texts) and _has(ref, CAPTION)
    live = [c for c in contenders if c.available and (embed or caption)]
    calls = _Calls(ref, {c.name: _Outputs() for c in live})

    groups = _by_decoder(live)
    for start in range(0, len(subset), batch_size):
        batch = subset[start : start + batch_size]
        for decode, members in groups:
            _feed(batch, decode, calls.live(members), calls, embed=embed, caption=caption)
        if progress is not None:
            progress(len(batch))

    embedded = _embedder_costs(subset, classes, calls, live, batch_size, opts.seed) if embed else {}
    captioned = _captioner_costs(subset, calls, live, opts.seed) if caption else {}
    out: dict[str, CostResult] = {}
    for c in calls.live(live):  # those that failed nowhere
        metrics, top1 = embedded.get(c.name, ({}, None))
        caption_metrics, identical = captioned.get(c.name, ({}, None))
        out[c.name] = CostResult({**metrics, **caption_metrics}, top1, len(subset), identical)
    return out


def _embedder_costs(
    subset: Sequence[ItemRecord],
    classes: Sequence[str],
    calls: _Calls,
    live: Sequence[Contender],
    batch_size: int,
    seed: int,
) -> dict[str, tuple[dict[str, TaskMetric], int | None]]:
    """Per embedder: R@1 (both directions) and zero-shot deltas, and top-1 captions changed."""
    texts = [text for it in subset for _, text in it.captions]
    caption_image = np.array([i for i, it in enumerate(subset) for _ in it.captions], np.int64)
    categories = [it.category for it in subset]
    prompts = [p for group in class_prompts(classes) for p in group]
    outcomes: dict[str, EmbeddingOutcomes] = {}
    for c in calls.live(live):
        image_emb = np.concatenate(calls.outputs[c.name].image_emb)
        try:
            text_emb = _encode(c, texts, image_emb.shape[1], batch_size, calls)
            class_emb = _encode(c, prompts, image_emb.shape[1], batch_size, calls)
        except _Failed:
            continue
        outcomes[c.name] = embedding_outcomes(
            image_emb,
            text_emb,
            caption_image,
            categories,
            class_emb=class_emb.reshape(len(classes), -1, image_emb.shape[1]) if classes else None,
            class_names=classes or None,
        )
    ref = outcomes[calls.reference.name]
    ref_columns = ref.columns()
    out: dict[str, tuple[dict[str, TaskMetric], int | None]] = {}
    for name, o in outcomes.items():
        metrics = {
            key: _task_metric(values, ref_columns[key], key, binary=True, seed=seed)
            for key, values in o.columns().items()
        }
        changed = None
        if o.top1_caption is not None and ref.top1_caption is not None:
            changed = int(np.count_nonzero(o.top1_caption != ref.top1_caption))
        out[name] = (metrics, changed)
    return out


def _captioner_costs(
    subset: Sequence[ItemRecord], calls: _Calls, live: Sequence[Contender], seed: int
) -> dict[str, tuple[dict[str, TaskMetric], float]]:
    """Per captioner: CIDEr and BLEU-4 deltas on the images with captions, and the share of
    all evaluated images whose caption is identical to the reference's."""
    captioned = [(i, it) for i, it in enumerate(subset) if it.captions]
    references = {it.item_id: [text for _, text in it.captions] for _, it in captioned}
    ref_name = calls.reference.name
    scores = {
        c.name: caption_scores(
            references, {it.item_id: calls.outputs[c.name].captions[i] for i, it in captioned}
        )
        for c in calls.live(live)
    }
    ref_caps = calls.outputs[ref_name].captions
    out: dict[str, tuple[dict[str, TaskMetric], float]] = {}
    for name, per_image in scores.items():
        caps = calls.outputs[name].captions
        identical = float(np.mean([a == b for a, b in zip(caps, ref_caps, strict=True)]))
        metrics = {
            metric: _task_metric(values, scores[ref_name][metric], metric, binary=False, seed=seed)
            for metric, values in per_image.items()
        }
        out[name] = (metrics, identical)
    return out


def _task_metric(
    values: np.ndarray, reference: np.ndarray, metric: str, *, binary: bool, seed: int
) -> TaskMetric:
    delta = paired_delta(values, reference, metric=metric, binary=binary, seed=seed)
    return TaskMetric(**dataclasses.asdict(delta))


def _has(c: Contender, *ops: str) -> bool:
    return all(op in c.ops for op in ops)


Decoder = Callable[[Path], Any]


def _by_decoder(contenders: Sequence[Contender]) -> list[tuple[Decoder, list[Contender]]]:
    """Contenders grouped by the decoder that makes their pixels (one decode per group)."""
    groups: dict[int, tuple[Decoder, list[Contender]]] = {}
    for c in contenders:
        if c.decode is not None:
            key, decode = id(c.decode), c.decode
        elif c.adapter is not None:  # the adapter's own preprocessing
            key, decode = id(c.adapter), _reference_decoder(c.adapter.image_transform)
        else:
            raise ValueError(f"variant {c.name} has neither a decoder nor a model")
        groups.setdefault(key, (decode, []))[1].append(c)
    return list(groups.values())


def _reference_decoder(transform: Callable[[Any], Any]) -> Decoder:
    return lambda path: transform(decode_rgb(path, path))


def _feed(
    batch: Sequence[ItemRecord],
    decode: Decoder,
    members: Sequence[Contender],
    calls: _Calls,
    *,
    embed: bool,
    caption: bool,
) -> None:
    """One batch decoded once, then embedded and/or captioned by every member."""
    import torch

    if not members:
        return
    try:
        pixels = torch.stack([decode(it.path) for it in batch])
    except Exception as exc:  # a decoder's failure is that of every variant it feeds
        for c in members:
            calls.drop(c, "decoding", exc)
        return
    nhwc = None
    for c in members:
        px = pixels
        if c.channels_last:
            nhwc = pixels.contiguous(memory_format=torch.channels_last) if nhwc is None else nhwc
            px = nhwc
        try:
            if embed:
                emb = calls.call(c, IMAGE_ENCODE, px, [])
                calls.outputs[c.name].image_emb.append(_numpy(emb))
            if caption:
                caps = calls.call(c, CAPTION, px, [])
                calls.outputs[c.name].captions.extend(str(t) for t in caps)
        except _Failed:
            continue


def _encode(
    c: Contender, texts: Sequence[str], dim: int, batch_size: int, calls: _Calls
) -> np.ndarray:
    """Text embeddings [len(texts), dim], in batches."""
    parts = [
        _numpy(calls.call(c, TEXT_ENCODE, None, texts[i : i + batch_size]))
        for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)


def _numpy(x: Any) -> np.ndarray:
    """Embeddings as float32 numpy [B, D], whatever the op returned (array or tensor)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)
