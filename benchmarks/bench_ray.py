"""The Ray engine's overhead: image embedding in the worker's process vs a Ray Data pipeline
with 1 and 2 model actors, same images and model, plus Ray's fixed start-up cost.

On a small CPU machine no speed-up is expected (the actors share the cores the in-process
engine already uses); the figures say what Ray costs before it can pay off on many GPUs.

    python -m benchmarks.bench_ray [--n 256] [--batch 32] [--model hf-clip:mirada/demo-clip]

Per engine, on n and on 4n images: `total_s` from the call to the last vector (Ray: actor
start and model load in the actor included; in-process: model loaded before, `load_s`).
`marginal_images_per_s` = 3n / (total_s(4n) - total_s(n)): the rate once the fixed costs are
paid (Ray buffers every vector of a small set before the first is read, so a first-to-last
batch rate would measure nothing).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks._util import emit, temp_home


def _images(home: Path, n: int) -> tuple[list[str], list[Path]]:
    from mirada.datasets import import_dataset, load_items
    from mirada.demo.synthetic import write_demo_dataset

    src = write_demo_dataset(home / "src", split="train", n=n)
    items = load_items(import_dataset(src, name="bench-ray").id)
    return [it.sha256 for it in items], [it.path for it in items]


def _rates(start: float, first: float, end: float, n: int) -> dict[str, float]:
    return {
        "n": n,
        "total_s": round(end - start, 3),
        "first_batch_s": round(first - start, 3),
        "images_per_s": round(n / (end - start), 1),
    }


def _marginal(small: dict[str, float], large: dict[str, float]) -> float | None:
    """None when the larger set did not take longer: start-up noise swamped the work."""
    extra = large["total_s"] - small["total_s"]
    return round((large["n"] - small["n"]) / extra, 1) if extra > 0 else None


def inprocess(model_id: str, paths: list[Path], batch: int) -> dict[str, float]:
    from mirada.domain import Device
    from mirada.vlm.registry import load_adapter
    from mirada.worker.data import image_batches

    t0 = time.perf_counter()
    adapter = load_adapter(model_id, device=Device.cpu)
    load_s = time.perf_counter() - t0
    out: dict[str, object] = {"load_s": round(load_s, 3)}
    for name, subset in (("small", paths[: len(paths) // 4]), ("large", paths)):
        start, first, done = time.perf_counter(), 0.0, 0
        for _, pixels in image_batches(subset, adapter.image_transform, batch):
            done += len(adapter.encode_pixels(pixels))
            first = first or time.perf_counter()
        out[name] = _rates(start, first, time.perf_counter(), done)
    out["marginal_images_per_s"] = _marginal(out["small"], out["large"])  # type: ignore[arg-type]
    return out


def on_ray(
    model_id: str, keys: list[str], paths: list[Path], batch: int, actors: int
) -> dict[str, float]:
    from mirada.domain import Device, Dtype
    from mirada.worker.model import LazyModel, ModelRequest
    from mirada.worker.ray_engine import RayEmbedder

    out: dict[str, object] = {"actors": actors}
    quarter = len(paths) // 4
    for name, ks, ps in (("small", keys[:quarter], paths[:quarter]), ("large", keys, paths)):
        request = ModelRequest(model_id, Device.cpu, Dtype.fp32)
        ray = RayEmbedder(LazyModel(request), Device.cpu, batch, actors=actors)
        start, first, done = time.perf_counter(), 0.0, 0
        for chunk in ray.images(ks, ps):
            done += len(chunk)
            first = first or time.perf_counter()
        out[name] = _rates(start, first, time.perf_counter(), done)
    out["marginal_images_per_s"] = _marginal(out["small"], out["large"])  # type: ignore[arg-type]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1024, help="the large set; the small is n/4")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--model", default="hf-clip:mirada/demo-clip")
    a = p.parse_args()
    with temp_home() as home:
        keys, paths = _images(home, a.n)
        load_before = os.getloadavg()
        result: dict[str, object] = {"model": a.model, "n_images": a.n, "batch": a.batch}
        result["inprocess"] = inprocess(a.model, paths, a.batch)

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
        init_s = time.perf_counter() - t0
        try:
            runs = [on_ray(a.model, keys, paths, a.batch, k) for k in (1, 2)]
        finally:
            ray.shutdown()
        result["ray"] = runs
        result["ray_init_s"] = round(init_s, 3)
        # fixed cost of a Ray run: start Ray, start the pool and load the model in it, before
        # the first vector comes back (the in-process engine pays only its model load)
        result["ray_startup_s"] = round(init_s + runs[0]["small"]["first_batch_s"], 3)  # type: ignore[index]
        result["cpu_count"] = os.cpu_count()
        result["loadavg_before"] = [round(x, 2) for x in load_before]
        result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    emit(result)


if __name__ == "__main__":
    main()
