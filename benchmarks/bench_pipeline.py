"""Pipeline overhead: a worker `match` run ÷ the raw batched model forward, same inputs.

The run's wall time covers decode, preprocess, encode, persist and all metrics (with
bootstrap CIs); model load is reported separately and excluded, since the raw forward also
needs a loaded model. The raw side encodes the same preprocessed tensors and the same
(trimmed) token batches with open_clip/transformers directly.

    python -m benchmarks.bench_pipeline [--n 256] [--models ID,ID]
"""

from __future__ import annotations

import argparse
import time

from benchmarks._util import emit, import_synthetic, run_seconds, run_worker_once, temp_home, timing


def raw_forward_seconds(model_id: str, paths: list, texts: list[str], batch: int) -> float:
    import torch
    from PIL import Image

    from mirada.domain import Device
    from mirada.vlm.registry import load_adapter

    adapter = load_adapter(model_id, device=Device.cpu)
    transform = adapter.image_transform
    pixels = [transform(Image.open(p).convert("RGB")) for p in paths]  # untimed: preprocessing
    module = adapter.model if hasattr(adapter, "model") else adapter.module
    is_open_clip = model_id.startswith("open-clip:")
    if is_open_clip:
        from mirada.vlm.open_clip_family import trim_tokens, trimmed_encode_text

        # Same trimming as the adapter (to the batch's longest sequence): the raw side gets
        # the same speed-up, so the ratio measures only Mirada's overhead.
        trimmed = [
            trim_tokens(adapter.tokenizer(texts[i : i + batch]))
            for i in range(0, len(texts), batch)
        ]
    else:
        # the adapter's tokenizer call pads to the batch's longest caption, as users would
        trimmed = [adapter.tokenize(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    with torch.inference_mode():
        t0 = time.perf_counter()
        for i in range(0, len(pixels), batch):
            x = torch.stack(pixels[i : i + batch])
            if is_open_clip:
                module.encode_image(x)
            else:
                module.get_image_features(pixel_values=x)
        for t in trimmed:
            if is_open_clip:
                trimmed_encode_text(module, t)
            else:
                module.get_text_features(**t)
        return time.perf_counter() - t0


def measure(model_id: str, n: int, batch: int) -> dict:
    from mirada import queue
    from mirada.datasets import load_items
    from mirada.run_options import MatchRunOptions

    with temp_home() as home:
        ds = import_synthetic(home, n)
        options = MatchRunOptions(no_cache=True)
        run_id = queue.enqueue(ds, model_id, "match", batch_size=batch, options=options)
        run_worker_once()
        wall = run_seconds(run_id)
        load = timing(run_id, "load_s") or 0.0
        items = load_items(ds)
        texts = [t for it in items for _, t in it.captions]
        raw = raw_forward_seconds(model_id, [it.path for it in items], texts, batch)
    pipeline = wall - load
    return {
        "model": model_id,
        "images": n,
        "captions": len(texts),
        "batch_size": batch,
        "run_wall_s": round(wall, 3),
        "model_load_s": round(load, 3),
        "pipeline_s": round(pipeline, 3),
        "raw_forward_s": round(raw, 3),
        "overhead_ratio": round(pipeline / raw, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--models", default="open-clip:ViT-B-32,hf-clip:mirada/demo-clip")
    a = p.parse_args()
    import torch

    torch.set_num_threads(2)
    emit({"pipeline_overhead": [measure(m, a.n, a.batch) for m in a.models.split(",")]})


if __name__ == "__main__":
    main()
