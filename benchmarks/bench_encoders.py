"""Encoder throughput: Mirada's open_clip adapter vs the raw model, side by side.

Random-init open_clip ViT-B-32 (no download), batch 32, 2 threads, same preprocessed pixels.
Texts: the adapter (tokenise + trim padding to the longest caption) vs raw `encode_text` on
77-padded tokens. Prints one JSON object. Usage: .venv/bin/python -m benchmarks.bench_encoders
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CAPTIONS = [
    "a dog runs across a grassy field",
    "two people ride bicycles down a city street",
    "a plate of pasta with tomato sauce",
    "a red bus parked next to the sidewalk",
    "a cat sleeping on a wooden chair",
    "children playing soccer in the park",
    "a man surfing a large wave",
    "a bowl of fruit on a kitchen table",
]


def _rates(
    fns: dict[str, Callable[[], Any]], items: int, reps: int, sync: Callable[[], None]
) -> dict[str, float]:
    """items/s of each fn, interleaved rep by rep and taking each one's fastest rep, so load
    from other processes on a shared CPU biases neither side."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()  # warm-up: allocator, kernels
    for _ in range(reps):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: round(items / t, 1) for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-reps", type=int, default=3)
    parser.add_argument("--text-reps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from mirada.domain import Device, parse_choice
    from mirada.vlm.registry import load_adapter

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    device = parse_choice(Device, args.device, "device")  # the edge: text -> Device
    adapter = load_adapter("open-clip:ViT-B-32", device=device)
    load_s = time.perf_counter() - t0
    model = adapter.model  # same module and weights for the raw calls
    tokenizer = adapter.tokenizer

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray((rng.random((256, 320, 3)) * 255).astype("uint8"))
        for _ in range(args.batch)
    ]
    pixels = torch.stack([adapter.image_transform(im) for im in images])
    texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.batch)]
    padded = tokenizer(texts).to(adapter.torch_device)
    trimmed_len = int(adapter.tokenize(texts).shape[1])

    def raw_images() -> Any:
        with torch.inference_mode():
            return model.encode_image(pixels.to(adapter.torch_device))

    def raw_texts_77() -> Any:
        with torch.inference_mode():
            return model.encode_text(padded)

    # Equal outputs first: a fast but wrong adapter would be no result.
    with torch.inference_mode():
        raw_t = torch.nn.functional.normalize(model.encode_text(padded).float(), dim=-1)
    max_diff = float(np.abs(adapter.encode_texts(texts) - raw_t.cpu().numpy()).max())

    sync = adapter.synchronize
    result = {
        "benchmark": "bench_encoders",
        "model": "open-clip:ViT-B-32 (random init, pretrained=None)",
        "device": adapter.device,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "batch": args.batch,
        "load_s": round(load_s, 2),
        "images_per_s": _rates(
            {"adapter": lambda: adapter.encode_pixels(pixels), "raw": raw_images},
            args.batch,
            args.image_reps,
            sync,
        ),
        "texts_per_s": _rates(
            {"adapter_trimmed": lambda: adapter.encode_texts(texts), "raw_padded_77": raw_texts_77},
            args.batch,
            args.text_reps,
            sync,
        ),
        "text_tokens": {"padded": int(padded.shape[1]), "trimmed": trimmed_len},
        "max_abs_diff_trimmed_vs_77": max_diff,
    }
    texts_rate = result["texts_per_s"]
    result["text_speedup_trimming"] = round(
        texts_rate["adapter_trimmed"] / texts_rate["raw_padded_77"], 2
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
