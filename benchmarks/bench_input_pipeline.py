"""Input pipeline against model: which one bounds image encoding on this machine?

On real photos (scikit-learn's two, cropped, flipped and resized to 640x480 JPEGs) and
open_clip ViT-B-32 (random init, no download): decode plus preprocess images/s on one core,
exactly as the worker feeds the model (PIL decode + the model's transform) and with the opt-in
fast decoder (JPEG draft decoding + tensor resize), plus one pass with the worker's DataLoader
settings; then the model-only image_encode rate at batch 32 on 2 threads, each measured until
its 95% CI is within ±5% or its budget is spent. The input ceiling is the per-core rate times
the cores this process may use (every core decoding); the smaller of ceiling and model rate
bounds the end-to-end rate. Prints one JSON object.

Usage: .venv/bin/python -m benchmarks.bench_input_pipeline [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZE = (640, 480)


def write_photos(where: Path, n: int) -> list[Path]:
    """`n` distinct 640x480 JPEGs (quality 90) cut from scikit-learn's two real photos."""
    import sklearn.datasets
    from PIL import Image, ImageOps

    src = Path(sklearn.datasets.__file__).parent / "images"
    photos = [Image.open(src / f"{name}.jpg").convert("RGB") for name in ("china", "flower")]
    paths = []
    for i in range(n):
        im = photos[i % 2]
        w, h = im.size
        k = (i // 2) % 8  # crops of 80-100% of the photo, at shifting corners, some mirrored
        box_w, box_h = int(w * (1 - k * 0.025)), int(h * (1 - k * 0.025))
        left, top = (w - box_w) * (k % 3) // 2, (h - box_h) * (k % 2)
        out = im.crop((left, top, left + box_w, top + box_h)).resize(SIZE, Image.Resampling.BICUBIC)
        if (i // 16) % 2:
            out = ImageOps.mirror(out)
        paths.append(where / f"photo_{i:03d}.jpg")
        out.save(paths[-1], quality=90)
    return paths


def model_rate(adapter: Any, pixels: Any, max_seconds: float) -> dict[str, Any]:
    """image_encode images/s on one batch, after one warm-up batch: batches until the CI is
    within ±5% (at least 3) or the budget is spent."""
    from mirada.metrics.speed import converged, throughput

    adapter.encode_pixels(pixels)
    seconds: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(seconds) < 3 or not converged(seconds):
        t0 = time.perf_counter()
        adapter.encode_pixels(pixels)
        seconds.append(time.perf_counter() - t0)
        if time.perf_counter() >= deadline:
            break
    rate = throughput(seconds, len(pixels))
    return {"per_s": rate.per_s, "ci": rate.ci, "batches": len(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=30.0, help="per measurement")
    parser.add_argument("--quick", action="store_true", help="16 images, 8 s budgets")
    args = parser.parse_args()
    if args.quick:
        args.images, args.max_seconds = 16, 8.0

    import torch

    from mirada.benchmark_records import to_json
    from mirada.domain import Device
    from mirada.hardware import collect_profile
    from mirada.vlm.registry import load_adapter
    from mirada.worker.tasks.input_pipeline import (
        fast_decoder,
        measure_input_pipeline,
        reference_decoder,
    )

    torch.set_num_threads(args.threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    adapter = load_adapter("open-clip:ViT-B-32", device=Device.cpu)
    reference, fast = reference_decoder(adapter), fast_decoder(adapter)
    with tempfile.TemporaryDirectory(prefix="mirada-bench-input-") as tmp:
        paths = write_photos(Path(tmp), args.images)
        load1_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        # input and model each get the same budget (measure_input_pipeline shares its own
        # between its per-core reference, per-core fast and loader measurements)
        pipeline = measure_input_pipeline(
            paths, reference, batch_size=args.batch, max_seconds=3 * args.max_seconds, fast=fast
        )
        pixels = torch.stack([reference(p) for p in paths[: args.batch]])
        diff = [float((fast(p) - reference(p)).abs().mean()) for p in paths]
    model = model_rate(adapter, pixels, args.max_seconds)
    load1_after = os.getloadavg()[0]

    ceiling = pipeline.per_core_images_per_s * (cores or 1)
    fast_per_core = pipeline.fast_decode_per_core_images_per_s or 0.0
    bound = "input" if ceiling < model["per_s"] else "model"
    record = dataclasses.replace(pipeline, model_images_per_s=model["per_s"], bound=bound)
    result = {
        "benchmark": "bench_input_pipeline",
        "model": "open-clip:ViT-B-32 (random init, pretrained=None)",
        "cpu_model": collect_profile()["cpu_model"],
        "cores": cores,
        "threads": args.threads,
        "images": f"{len(paths)} JPEGs {SIZE[0]}x{SIZE[1]} from scikit-learn's photos",
        "load_average_1m": [round(load1_before, 2), round(load1_after, 2)],
        "seconds": round(time.perf_counter() - t0, 1),
        "input_pipeline": to_json(record),
        "reference_per_core_images_per_s": round(pipeline.per_core_images_per_s, 1),
        "fast_per_core_images_per_s": round(fast_per_core, 1),
        "fast_over_reference": round(fast_per_core / pipeline.per_core_images_per_s, 2),
        "fast_mean_abs_diff": round(sum(diff) / len(diff), 4),  # normalised pixel units
        "loader_images_per_s": round(pipeline.loader_images_per_s or 0.0, 1),
        "loader_workers": pipeline.loader_workers,
        "model_image_encode_per_s": round(model["per_s"], 1),
        "model_ci": model["ci"],
        "model_batches": model["batches"],
        "input_ceiling_per_s": round(ceiling, 1),
        "ceiling_over_model": round(ceiling / model["per_s"], 2),
        "fast_ceiling_over_model": round(fast_per_core * (cores or 1) / model["per_s"], 2),
        "bound": bound,
    }
    print(json.dumps(to_json(result), indent=2))  # an open CI end (inf) as null


if __name__ == "__main__":
    main()
