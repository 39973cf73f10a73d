"""`--engine ray`: the match run's embedding stage as one Ray Data pipeline (images, captions
and prompts through one pool of model actors) on a local Ray with one CPU (the tightest node a
user may have, where a whole-CPU preprocessing task once waited forever beside the model
actor), started once for the module: results equal an in-process run's, a killed model actor
is restarted, a killed worker's retry resumes from the cached batches, an actor embeds a batch
that holds both kinds; without Ray installed the run is refused at queue time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from cli_runner import run_cli
from run_helpers import backdate_heartbeat, work, worker_of
from sqlalchemy import func, select

from mirada.db import read_session
from mirada.db.models import EmbeddingCache
from mirada.queries.runs import run_detail
from mirada.queries.similarity import load_embeddings

CLIP = "hf-clip:mirada/demo-clip"
N_IMAGES = 16
DATASET_IMAGES = N_IMAGES  # for conftest's `dataset`
BATCH = 4


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray = pytest.importorskip("ray")
    info = ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING")
    yield info.address_info["address"]
    ray.shutdown()


def _queue(dataset: int, *flags: str) -> int:
    out = run_cli(
        "queue", "--dataset", str(dataset), "--model", CLIP, "--task", "match",
        "--batch-size", str(BATCH), "--json", *flags,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (run_id,) = json.loads(out.stdout)
    return int(run_id)


def _timings(run_id: int) -> dict[str, float]:
    return {t["name"]: t["value"] for t in run_detail(run_id)["timings"]}


def _cached_images() -> int:
    with read_session() as s:
        count = s.scalar(
            select(func.count()).select_from(EmbeddingCache).where(EmbeddingCache.kind == "image")
        )
    return int(count or 0)


def _embedder_processes() -> list[int]:
    """The model actors' processes: Ray titles each after its class,
    ray::MapWorker(MapBatches(_Embedder))."""
    import psutil

    return [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if "_Embedder" in " ".join(p.info["cmdline"] or ())
    ]


def _kill_first_embedder(killed: list[tuple[int, int]], stop: threading.Event) -> None:
    """SIGKILL the first model actor's process as soon as it exists (it is then still loading
    the model: no batch can have been embedded yet); record (pid, images cached by then)."""
    import psutil

    while not stop.is_set():
        for pid in _embedder_processes():
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                continue
            killed.append((pid, _cached_images()))
            return
        time.sleep(0.05)


# The killed worker: caches the first batch of image vectors, then dies as if SIGKILLed.
_DYING_WORKER = """
import os, signal, sys
from mirada import embedding_cache
store = embedding_cache.store
def store_then_die(key, kind, vectors):
    store(key, kind, vectors)
    if kind == "image":
        os.kill(os.getpid(), signal.SIGKILL)
embedding_cache.store = store_then_die
from mirada.cli import main
sys.exit(main(["worker", "--burst", "--no-progress", "--device", "cpu"]))
"""


def _wait_for_no_embedder(seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while _embedder_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _embedder_processes(), "the model actors were shut down"


@pytest.mark.slow
def test_a_ray_run_survives_a_killed_worker_and_a_killed_actor_and_equals_inprocess(
    ray_address: str, dataset: int
) -> None:
    """One run through both disasters (one Ray run fewer than a test for each: each costs a
    model actor's start): its worker dies after caching a batch, the retry resumes from the
    cache although its model actor is killed while loading, and the results equal an
    in-process run's."""
    on_ray = _queue(dataset, "--engine", "ray")
    env = {**os.environ, "RAY_ADDRESS": ray_address, "MIRADA_HEARTBEAT_SECONDS": "1"}
    proc = subprocess.run([sys.executable, "-c", _DYING_WORKER], env=env, timeout=300)
    assert proc.returncode == -9
    assert run_detail(on_ray)["status"] == "running"
    first = _cached_images()
    assert 0 < first < N_IMAGES
    _wait_for_no_embedder()  # Ray ends the dead worker's actors; the killer must not find them

    reference = _queue(dataset, "--no-cache")  # in-process, reads and writes no cache
    # The dead worker's last heartbeat, an hour ago: stale, so the next worker requeues.
    backdate_heartbeat(worker_of(on_ray), 3600)
    killed: list[tuple[int, int]] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_embedder, args=(killed, stop), daemon=True)
    killer.start()
    try:
        work()
    finally:
        stop.set()
        killer.join()

    ref, ray_run = run_detail(reference), run_detail(on_ray)
    assert ref["status"] == "succeeded", ref["error"]
    assert ray_run["status"] == "succeeded", ray_run["error"]
    assert ray_run["attempts"] == 2
    assert killed and killed[0][1] == first, (
        f"the actor killed before the retry's batches: {killed}"
    )
    timings = _timings(on_ray)
    assert timings["image_encode_cached"] == first
    assert timings["image_encode_computed"] == N_IMAGES - first  # fewer model calls this time
    assert _cached_images() == N_IMAGES  # the retry filled the shared embedding cache
    assert ray_run["progress"]["done"] == ray_run["progress"]["total"] > 0
    assert ray_run["metrics"] == ref["metrics"]
    assert ray_run["per_category"] == ref["per_category"]
    for kind in ("image", "text"):
        ref_emb, ray_emb = load_embeddings(reference, kind), load_embeddings(on_ray, kind)
        assert ref_emb is not None and ray_emb is not None
        np.testing.assert_array_equal(ref_emb[0], ray_emb[0])
        np.testing.assert_allclose(ray_emb[1], ref_emb[1], atol=1e-5, rtol=0)


def test_engine_ray_is_refused_at_queue_time_without_ray(
    dataset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )
    out = run_cli("queue", "--dataset", str(dataset), "--model", CLIP, "--task", "match",
                  "--engine", "ray")  # fmt: skip
    assert out.returncode != 0
    assert "pip install 'mirada[ray]'" in out.stderr
    assert run_cli("runs", "--json").stdout.strip() == "[]"  # nothing was queued


@pytest.mark.slow
def test_cancel_stops_the_pipeline(
    ray_address: str, dataset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada import embedding_cache, queue

    run_id = _queue(dataset, "--engine", "ray")
    store = embedding_cache.store

    def store_then_cancel(key: str, kind: str, vectors: dict[str, np.ndarray]) -> None:
        store(key, kind, vectors)
        if kind == "image" and run_detail(run_id)["status"] == "running":
            queue.cancel_run(run_id)  # as `mirada cancel` would, from elsewhere
            time.sleep(0.6)  # the next progress report then reaches the database

    monkeypatch.setattr(embedding_cache, "store", store_then_cancel)
    work()
    assert run_detail(run_id)["status"] == "cancelled"
    assert _cached_images() < N_IMAGES  # the pipeline stopped at the next batch
    _wait_for_no_embedder(30)


@pytest.mark.parametrize("cpus", [1.0, 2.0, 16.0])
def test_a_preprocessing_task_fits_beside_the_model_actors(
    cpus: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a 1-CPU node a whole-CPU preprocessing task never fits beside the actor, and the
    pipeline would wait forever; elsewhere it keeps a whole CPU."""
    ray = pytest.importorskip("ray")
    from mirada.worker.ray_engine import plan_pool

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": cpus})
    pool = plan_pool("cpu")
    assert pool.actors * pool.num_cpus + pool.preprocess_cpus <= cpus
    assert pool.preprocess_cpus == (1.0 if cpus >= 2 else 0.75)


class _FakeAdapter:
    """Image vectors hold the pixel mean, text vectors the text's length: each row's vector
    says which input it came from."""

    def encode_pixels(self, pixels: object) -> np.ndarray:
        import torch

        assert isinstance(pixels, torch.Tensor) and pixels.shape[1:] == (3, 2, 2)
        return np.stack([np.full(4, float(p.mean())) for p in pixels])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return np.stack([np.full(4, float(len(t))) for t in texts])


def test_an_actor_embeds_a_batch_that_straddles_images_and_texts() -> None:
    from mirada.worker.ray_engine import IMAGE, TEXT, _Embedder, _npy

    actor = _Embedder.__new__(_Embedder)  # the model load is not what this checks
    actor.adapter = _FakeAdapter()
    lone_surrogate = "hé\ud800".encode("utf-8", "surrogatepass")  # as the pipeline ships it
    rows = [(IMAGE, _npy(np.full((3, 2, 2), 0.5))), (TEXT, lone_surrogate),
            (IMAGE, _npy(np.full((3, 2, 2), 2.0))), (TEXT, b"ab")]  # fmt: skip
    payload = np.empty(len(rows), dtype=object)
    payload[:] = [p for _, p in rows]
    out = actor({"key": np.array(["a", "b", "c", "d"]),
                 "kind": np.array([k for k, _ in rows]), "payload": payload})  # fmt: skip
    assert list(out["key"]) == ["a", "b", "c", "d"]
    assert list(out["kind"]) == [IMAGE, TEXT, IMAGE, TEXT]
    assert out["vector"].dtype == np.float32
    np.testing.assert_array_equal(out["vector"][:, 0], [0.5, 3.0, 2.0, 2.0])
