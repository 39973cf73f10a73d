"""The embedding stage of one run as a Ray Data pipeline over many GPUs or machines.

    images: read bytes (tasks pinned to this worker's node: only it can read MIRADA_HOME)
              -> decode + preprocess (CPU tasks anywhere in the cluster)  \
    texts:  (captions and class prompts, as they are)                      -> union
      -> embed (a pool of model actors, one GPU each where the cluster has GPUs)
      -> back to this worker, one batch at a time

Images and texts flow through one pipeline, so each actor loads the model once per run (a
second pipeline for the texts loaded it again: seconds per actor for a big model). Both arrive
at the actors as one row schema (key, kind, payload bytes), since Ray Data batches rows of one
schema; an actor splits each batch by kind.

The worker stays the run's owner: it claimed the run, keeps its heartbeat and progress, stores
each batch's vectors in the embedding cache as they arrive (so a retried run resumes from
them), computes the metrics and writes the results. Ray only computes vectors. Cancelling or
stopping the run closes the iteration, which shuts the pipeline and its actors down.

Ray is an optional extra (`pip install 'mirada[ray]'`): nothing imports this module unless a
run asks for `engine: ray`.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import warnings
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mirada.domain import Device
from mirada.errors import MiradaError
from mirada.run_options import RAY_INSTALL

if TYPE_CHECKING:
    from mirada.vlm.base import Embedder
    from mirada.worker.model import LazyModel, ModelRequest

logger = logging.getLogger(__name__)

# A crashed actor (OOM-killed, lost node) is restarted and its in-flight batches retried this
# many times before the run fails; an exception in our own code is never retried (Ray Data
# treats it as a user error), so a corrupt image fails the run at once, naming the file.
MAX_ACTOR_RESTARTS = 3
MAX_TASK_RETRIES = 3
ACTORS_ENV = "MIRADA_RAY_ACTORS"  # override the pool size (default: one actor per GPU, or 1)
ROWS_PER_BLOCK_BATCHES = 2  # a read task ships this many model batches of images


class RayUnavailableError(MiradaError):
    pass


def connect() -> None:
    """Join the cluster named by RAY_ADDRESS, or start a local Ray with this machine's CPUs and
    GPUs; once per process (later runs reuse the connection)."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            f"this run uses --engine ray, but Ray is not installed on this worker: {RAY_INSTALL}"
        ) from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or None
        logger.info("connecting to Ray at %s", address or "a new local instance")
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    from ray.data import DataContext

    data_ctx = DataContext.get_current()
    data_ctx.enable_progress_bars = False  # the run's own progress bar and database row say it


@dataclass(frozen=True)
class Pool:
    """The model actors of one pipeline: how many, and what each reserves."""

    actors: int
    num_gpus: float
    num_cpus: float
    # CPUs each preprocessing task reserves: one where the cluster has it beside the actors,
    # less on a 1-CPU node (Ray's default of one whole CPU never fits beside an actor there,
    # and the pipeline would wait forever)
    preprocess_cpus: float

    @property
    def device(self) -> Device:
        return Device.cuda if self.num_gpus else Device.cpu


def plan_pool(run_device: Device, actors: int | None = None) -> Pool:
    """One actor per GPU in the cluster (device auto or cuda), else CPU actors that leave a
    core for decoding. `actors` (or MIRADA_RAY_ACTORS) overrides the count."""
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    if actors is None and os.environ.get(ACTORS_ENV):
        actors = int(os.environ[ACTORS_ENV])
    if run_device == Device.mps:
        raise MiradaError("Ray runs use CUDA GPUs or CPUs; queue the run with --device auto")
    if run_device == Device.cuda and not gpus:
        raise MiradaError(
            "the run asks for --device cuda but the Ray cluster has no GPU; "
            "queue it with --device auto or cpu"
        )
    if gpus and run_device != Device.cpu:
        n, num_gpus, num_cpus = actors or gpus, 1.0, 1.0
    else:
        n, num_gpus = actors or 1, 0.0
        num_cpus = _cpu_share((cpus - 1) / n)
    return Pool(n, num_gpus, num_cpus, preprocess_cpus=_cpu_share(cpus - n * num_cpus))


def _cpu_share(cpus: float) -> float:
    """What one task or actor reserves: at most a whole CPU, at least a quarter (Ray packs
    four such on a CPU, so a node too small for a whole one still schedules them)."""
    return max(0.25, min(1.0, cpus))


# Row kinds in the pipeline; a batch's payload holds pixels (.npy bytes) or UTF-8 text.
IMAGE, TEXT = "image", "text"
# a caption with a lone surrogate reaches the model as the same str as in-process
_TEXT_ERRORS = "surrogatepass"


class _Embedder:
    """A model actor: loads the run's model once, then embeds batches of pixels and texts
    (a batch may hold both where the union's branches meet)."""

    def __init__(self, spec: ModelRequest) -> None:
        """Load the run's model as `spec` asks, on the actor's device."""
        from mirada.vlm.base import as_embedder

        spec.check_files()  # a node's files must be the queued ones
        self.adapter: Embedder = as_embedder(spec.load())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kinds = batch["kind"]
        parts: list[tuple[np.ndarray, np.ndarray]] = []  # (row positions, their vectors)
        images = np.flatnonzero(kinds == IMAGE)
        if images.size:
            import torch

            pixels = np.stack([_pixels(batch["payload"][i]) for i in images])
            parts.append((images, np.asarray(self.adapter.encode_pixels(torch.from_numpy(pixels)))))
        texts = np.flatnonzero(kinds == TEXT)
        if texts.size:
            strings = [bytes(batch["payload"][i]).decode("utf-8", _TEXT_ERRORS) for i in texts]
            parts.append((texts, np.asarray(self.adapter.encode_texts(strings))))
        vectors = np.empty((len(kinds), parts[0][1].shape[1]), dtype=np.float32)
        for rows, vecs in parts:
            vectors[rows] = vecs
        return {"key": batch["key"], "kind": kinds, "vector": vectors}


def _pixels(payload: bytes) -> np.ndarray:
    return np.load(io.BytesIO(bytes(payload)), allow_pickle=False)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


@contextmanager
def _remote_args_accepted() -> Iterator[None]:
    """Ray 2.60 deprecates `**ray_remote_args` in map_batches but names no parameter for the
    two we need (scheduling_strategy: reads on this node; max_restarts); quiet until it does."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        yield


def _read_bytes(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    data = np.empty(len(batch["path"]), dtype=object)
    for i, path in enumerate(batch["path"]):
        data[i] = Path(str(path)).read_bytes()
    return {"key": batch["key"], "path": batch["path"], "data": data}


def _preprocess(batch: dict[str, np.ndarray], transform: Any) -> dict[str, np.ndarray]:
    from mirada.worker.data import decode_rgb

    payload = np.empty(len(batch["path"]), dtype=object)
    for i, (data, path) in enumerate(zip(batch["data"], batch["path"], strict=True)):
        payload[i] = _npy(transform(decode_rgb(bytes(data), str(path))).numpy())
    return {"key": batch["key"], "kind": np.full(len(payload), IMAGE), "payload": payload}


class RayEmbedder:
    """The run's embedding stage on Ray, connected on first use (a fully cached run never
    starts Ray). The worker's own copy of the model loads on its CPU, only for the picklable
    image transform and the fingerprint; the GPUs are the actors'."""

    def __init__(
        self, model: LazyModel, run_device: Device, batch_size: int, *, actors: int | None = None
    ) -> None:
        # never take a GPU from the actors
        model.request = dataclasses.replace(model.request, device=Device.cpu)
        self.model = model
        self.run_device = run_device
        self.batch_size = batch_size
        self.actors = actors
        self.pool: Pool | None = None

    @property
    def resolved_device(self) -> Device | None:
        """Where the vectors were computed (the actors' device), once the pipeline ran."""
        return self.pool.device if self.pool else None

    def _start(self) -> tuple[Pool, ModelRequest]:
        if self.pool is None:
            connect()
            self.pool = plan_pool(self.run_device, self.actors)
            logger.info(
                "Ray pipeline: %s %s actor(s) for %s",
                self.pool.actors,
                self.pool.device,
                self.model.model_id,
            )
        return self.pool, dataclasses.replace(self.model.request, device=self.pool.device)

    def embed(
        self, images: Sequence[tuple[str, Path]], texts: Sequence[tuple[str, str]]
    ) -> Generator[tuple[str, dict[str, np.ndarray]]]:
        """(kind, {content hash: vector}) per batch, in completion order, for `images`
        ((hash, path) pairs) and `texts` ((hash, text) pairs, sorted by length to keep padding
        small), through one pool of model actors."""
        if not images and not texts:
            return
        pool, spec = self._start()
        branches = []
        if images:
            branches.append(self._image_rows(pool, images))
        if texts:
            rows = [
                {"key": k, "kind": TEXT, "payload": t.encode("utf-8", _TEXT_ERRORS)}
                for k, t in texts
            ]
            branches.append(self._items(rows))
        ds = branches[0] if len(branches) == 1 else branches[0].union(*branches[1:])
        yield from self._embed(ds, pool, spec)

    def _image_rows(self, pool: Pool, images: Sequence[tuple[str, Path]]) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        rows = [{"key": k, "path": str(p)} for k, p in images]
        with _remote_args_accepted():
            ds = self._items(rows).map_batches(_read_bytes, num_cpus=0.25, scheduling_strategy=here)
        return ds.map_batches(
            _preprocess,
            fn_kwargs={"transform": self.model.get().image_transform},
            batch_size=self.batch_size,
            num_cpus=pool.preprocess_cpus,
        )

    def _items(self, rows: list[dict[str, Any]]) -> Any:
        import ray.data

        per_block = self.batch_size * ROWS_PER_BLOCK_BATCHES
        return ray.data.from_items(
            rows, override_num_blocks=max(1, math.ceil(len(rows) / per_block))
        )

    def _embed(
        self, ds: Any, pool: Pool, spec: ModelRequest
    ) -> Generator[tuple[str, dict[str, np.ndarray]]]:
        from ray.data import ActorPoolStrategy

        with _remote_args_accepted():
            ds = ds.map_batches(
                _Embedder,
                fn_constructor_kwargs={"spec": spec},
                batch_size=self.batch_size,
                compute=ActorPoolStrategy(size=pool.actors),
                num_gpus=pool.num_gpus or None,
                num_cpus=pool.num_cpus,
                max_restarts=MAX_ACTOR_RESTARTS,
                max_task_retries=MAX_TASK_RETRIES,
            )
        # one model batch at a time: each is cached as it arrives
        batches = iter(ds.iter_batches(batch_size=self.batch_size, batch_format="numpy"))
        try:
            for batch in batches:
                # a batch may straddle the union's two branches: hand each kind on by itself
                for kind in (IMAGE, TEXT):
                    rows = np.flatnonzero(batch["kind"] == kind)
                    if rows.size:
                        keys = (str(k) for k in batch["key"][rows])
                        yield kind, dict(zip(keys, batch["vector"][rows], strict=True))
        finally:
            # leaving early (cancelled, stopped, failed) shuts the pipeline and its actors down
            close = getattr(batches, "close", None)
            if close is not None:
                close()
