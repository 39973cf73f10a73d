"""Pieces the tasks share: the output type and cached, batched embedding.

Embedding runs in this process (DataLoader decoding, the run's model) or, for a run queued with
`--engine ray`, as a Ray Data pipeline (`ray`: a mirada.worker.ray_engine.RayEmbedder). Either
way cached vectors are reused and new ones cached; the Ray path caches each batch as it
arrives, so a run interrupted mid-pipeline resumes from there."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mirada import embedding_cache
from mirada.datasets import ItemRecord, load_items
from mirada.datasets.blobs import ensure_local
from mirada.domain import Device
from mirada.metrics import names
from mirada.results import RunResults, TimingValue
from mirada.vlm.base import as_embedder
from mirada.worker.context import RunContext
from mirada.worker.data import image_batches
from mirada.worker.model import LazyModel

if TYPE_CHECKING:
    from mirada.worker.ray_engine import RayEmbedder


@dataclass
class TaskOutput:
    results: RunResults
    fingerprint: dict[str, Any] | None
    resolved_device: Device | None


@dataclass
class Progress:
    """Counts items across a task's phases so the bar and the database see one total."""

    ctx: RunContext
    total: int
    done: int = 0

    def advance(self, n: int) -> None:
        self.done += n
        self.ctx.progress(self.done, self.total)


@dataclass
class EmbedStats:
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0
    # Where the image time went, on the DataLoader path (None: not measured, as on Ray):
    # waiting for the loader's next batch (decoding the model's compute did not hide) and
    # inside the model. A slow run then shows which stage was slow.
    decode_wait_s: float | None = None
    model_s: float | None = None


B = TypeVar("B")


def waited(batches: Iterable[B], stats: EmbedStats) -> Iterator[B]:
    """`batches` (never None), adding the time spent waiting for each one, the loader's
    workers starting included, to stats.decode_wait_s."""
    stats.decode_wait_s = stats.decode_wait_s or 0.0
    it = iter(batches)
    while True:
        t0 = time.perf_counter()
        batch = next(it, None)
        stats.decode_wait_s += time.perf_counter() - t0
        if batch is None:
            return
        yield batch


@contextmanager
def model_time(stats: EmbedStats) -> Iterator[None]:
    """Adds the block's wall time to stats.model_s (adapters return host arrays, so device
    work is finished when the block ends)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        stats.model_s = (stats.model_s or 0.0) + time.perf_counter() - t0


def dataset_items(ctx: RunContext) -> list[ItemRecord]:
    """The run's images and captions, with every image file present on this machine."""
    items = load_items(ctx.run.dataset_id)
    if not items:
        raise ValueError(f"dataset {ctx.run.dataset_id} has no images")
    ensure_local([(it.sha256, it.path.suffix.lstrip(".")) for it in items])
    return items


def model_cache_key(model: LazyModel, *, no_cache: bool) -> str | None:
    """Embedding-cache key for this run's model, or None when caching is off/impossible.

    Prefer the file-based identity (no model load); otherwise use the loaded fingerprint.
    Random-init models have no stable identity and are never cached.
    """
    model.check_files()  # the identity reads the local files: they must be the queued ones
    if no_cache:
        return None
    from mirada.worker.identity import cache_identity

    identity = cache_identity(model.model_id, model.dtype)
    model.identity = identity
    if identity is None:
        fp = model.get().fingerprint()
        if fp.revision is None:
            return None
        identity = fp.as_dict()
    return embedding_cache.cache_key(identity)


def _cached(key: str | None, kind: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
    return embedding_cache.lookup(key, kind, hashes) if key else {}


@dataclass(frozen=True)
class _TextWork:
    """A list of texts against the cache: what is left to embed and what was found."""

    hashes: list[str]  # one per text, in order
    found: dict[str, np.ndarray]
    n_cached: int  # texts (not unique ones) whose vector was cached
    todo: list[str]  # unique uncached hashes, shortest text first: small padding per batch
    text_of: dict[str, str]


def _text_work(key: str | None, texts: Sequence[str]) -> _TextWork:
    hashes = [embedding_cache.text_hash(t) for t in texts]
    found = _cached(key, "text", hashes)
    text_of = dict(zip(hashes, texts, strict=True))
    todo = sorted(dict.fromkeys(h for h in hashes if h not in found), key=lambda h: len(text_of[h]))
    return _TextWork(hashes, found, sum(1 for h in hashes if h in found), todo, text_of)


def _in_order(vectors: dict[str, np.ndarray], hashes: Sequence[str]) -> np.ndarray:
    return np.stack([vectors[h] for h in hashes]).astype(np.float32, copy=False)


def embed_images(
    model: LazyModel,
    ctx: RunContext,
    paths: Sequence[Path],
    hashes: Sequence[str],
    progress: Progress,
    stats: EmbedStats,
    key: str | None,
) -> np.ndarray:
    """Embeddings for `paths` in order; cached vectors are reused, new ones cached."""
    found = _cached(key, "image", hashes)
    missing = [i for i, h in enumerate(hashes) if h not in found]
    stats.cached += len(hashes) - len(missing)
    progress.advance(len(hashes) - len(missing))
    out: dict[str, np.ndarray] = dict(found)
    if missing:
        adapter = model.get()
        embedder = as_embedder(adapter)
        t0 = time.perf_counter()
        fresh: dict[str, np.ndarray] = {}
        batches = image_batches(
            [paths[i] for i in missing],
            adapter.image_transform,
            ctx.run.batch_size,
            pin_memory=adapter.device == Device.cuda,
        )
        for start, pixels in waited(batches, stats):
            with model_time(stats):
                vecs = embedder.encode_pixels(pixels)
            for j, vec in enumerate(vecs):
                fresh[hashes[missing[start + j]]] = vec
            progress.advance(len(vecs))
        stats.seconds += time.perf_counter() - t0
        stats.computed += len(missing)
        if key:
            embedding_cache.store(key, "image", fresh)
        out.update(fresh)
    return _in_order(out, hashes)


def embed_texts(
    model: LazyModel,
    ctx: RunContext,
    texts: Sequence[str],
    progress: Progress | None,
    stats: EmbedStats,
    key: str | None,
) -> np.ndarray:
    work = _text_work(key, texts)
    stats.cached += work.n_cached
    out: dict[str, np.ndarray] = dict(work.found)
    if progress:
        progress.advance(work.n_cached)
    if work.todo:
        embedder = as_embedder(model.get())
        t0 = time.perf_counter()
        fresh: dict[str, np.ndarray] = {}
        bs = ctx.run.batch_size
        for start in range(0, len(work.todo), bs):
            chunk = work.todo[start : start + bs]
            vecs = embedder.encode_texts([work.text_of[h] for h in chunk])
            fresh.update(zip(chunk, vecs, strict=True))
            if progress:
                progress.advance(len(chunk))
        stats.seconds += time.perf_counter() - t0
        stats.computed += len(work.todo)
        if key:
            embedding_cache.store(key, "text", fresh)
        out.update(fresh)
    return _in_order(out, work.hashes)


def embed_on_ray(
    ray: RayEmbedder,
    paths: Sequence[Path],
    hashes: Sequence[str],
    texts: Sequence[str],
    progress: Progress,
    image_stats: EmbedStats,
    text_stats: EmbedStats,
    key: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, text) embeddings in order, the missing ones from one Ray pipeline (each actor
    loads the model once for both). Each batch is cached as it arrives (a retried run resumes
    from them) and counted into progress, whose cancel/stop check ends the pipeline. A batch's
    share of the pipeline's wall time (since the batch before it) goes to its kind's stats."""
    image_found = _cached(key, "image", hashes)
    missing = [i for i, h in enumerate(hashes) if h not in image_found]
    image_todo = {hashes[i]: paths[i] for i in missing}  # duplicate images: embedded once
    text = _text_work(key, texts)
    image_stats.cached += len(hashes) - len(missing)
    text_stats.cached += text.n_cached
    progress.advance(len(hashes) - len(missing) + text.n_cached)

    vectors = {"image": dict(image_found), "text": dict(text.found)}
    stats = {"image": image_stats, "text": text_stats}
    chunks = ray.embed(list(image_todo.items()), [(h, text.text_of[h]) for h in text.todo])
    before = time.perf_counter()
    with closing(chunks):
        for kind, chunk in chunks:
            if key:
                embedding_cache.store(key, kind, chunk)
            vectors[kind].update(chunk)
            now = time.perf_counter()
            stats[kind].seconds += now - before
            stats[kind].computed += len(chunk)
            before = now
            progress.advance(len(chunk))
    image_stats.computed += len(missing) - len(image_todo)
    progress.advance(len(missing) - len(image_todo))
    return _in_order(vectors["image"], hashes), _in_order(vectors["text"], text.hashes)


def throughput_timings(prefix: str, stats: EmbedStats) -> list[TimingValue]:
    rows = [
        TimingValue(names.timing_key(prefix, names.COMPUTED), float(stats.computed), "items"),
        TimingValue(names.timing_key(prefix, names.CACHED), float(stats.cached), "items"),
    ]
    if stats.computed and stats.seconds > 0:
        per_s = stats.computed / stats.seconds
        rows.append(TimingValue(names.timing_key(prefix, names.PER_S), per_s, "items/s"))
    return rows + stage_timings(prefix, stats)


def stage_timings(prefix: str, stats: EmbedStats) -> list[TimingValue]:
    """The decode-wait and model seconds, where they were measured."""
    stages = ((names.DECODE_WAIT_S, stats.decode_wait_s), (names.MODEL_S, stats.model_s))
    return [
        TimingValue(names.timing_key(prefix, stat), seconds, "s")
        for stat, seconds in stages
        if seconds is not None
    ]


def load_timing(model: LazyModel) -> list[TimingValue]:
    if model.load_seconds is None:
        return []
    return [TimingValue(names.LOAD_S, model.load_seconds, "s")]
