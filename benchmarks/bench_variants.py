"""Precision variants in one benchmark run: images/s (captions/s) and agreement with fp32.

Real worker `benchmark` runs with `variants` (what `mirada queue --task benchmark --variants
fp32,bf16,bf16+compile` queues), on random-init models built offline:
- open_clip ViT-B-32 (`open-clip:ViT-B-32`, pretrained=None), batch sizes 8 and 32;
- a BLIP-base-size captioner: transformers' BlipConfig defaults (ViT-B/16 at 384 px, BERT-base
  text decoder, vocabulary 30,524), random weights (vision initializer_range 0.02, since the
  default 1e-10 makes the image irrelevant), a filler WordPiece vocabulary with BERT's special
  tokens at their usual ids; batch 2, beam 3, 20 new tokens (a batch takes seconds). It falls
  back to the demo captioner (`blip-caption:mirada/demo-blip`) if that cannot be built.

Variants are measured in interleaved rounds inside each run (rotating order, until every
throughput CI is within ±5% or --max-seconds per operation and batch size), so the paired
speed-ups compare like with like even while other processes load the machine; the run's
measurement (contention, load average, CPU efficiency) is reported with the figures.

    python -m benchmarks.bench_variants [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from benchmarks._util import emit, import_synthetic, run_worker_once, temp_home

CLIP_VARIANTS = "fp32,bf16,bf16+compile"
BLIP_VARIANTS = "fp32,bf16,bf16+compile"
DEMO_BLIP = "blip-caption:mirada/demo-blip"


def build_blip_base(directory: Path, seed: int = 0) -> str:
    """A random-init BLIP-base-size captioner saved as a local transformers directory."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    defaults = BlipConfig()
    size = defaults.text_config.vocab_size  # 30524: BERT's 30522 + [DEC] + [ENC]
    tokens = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100))]
    tokens += ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"w{i}" for i in range(len(tokens), size - 2)] + ["[DEC]", "[ENC]"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n")
    tokenizer = BertTokenizer(
        str(directory / "vocab.txt"), bos_token="[DEC]", additional_special_tokens=["[ENC]"]
    )
    text = defaults.text_config.to_dict()
    text.update(
        bos_token_id=tokenizer.convert_tokens_to_ids("[DEC]"),
        pad_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.sep_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    vision = {**defaults.vision_config.to_dict(), "initializer_range": 0.02}
    config = BlipConfig(text_config=text, vision_config=vision)
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    image_size = config.vision_config.image_size
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return f"blip-caption:{directory}"


def measure(
    home: Path, dataset: int, model_id: str, label: str, variants: str, options: dict[str, Any]
) -> dict[str, Any]:
    from mirada import queue
    from mirada.queries.runs import run_detail
    from mirada.queries.variants import run_variants
    from mirada.run_options import BenchmarkRunOptions

    load_before = os.getloadavg()
    run_id = queue.enqueue(
        dataset,
        model_id,
        "benchmark",
        options=BenchmarkRunOptions.from_dict({**options, "variants": variants}),
    )
    t0 = time.perf_counter()
    run_worker_once()
    wall = time.perf_counter() - t0
    detail = run_detail(run_id, with_captions=False)
    if detail["status"] != "succeeded":
        return {"model": label, "error": detail["error"]}
    records = run_variants(run_id) or []
    keep = (
        "name",
        "available",
        "unavailable_reason",
        "threads",
        "images_per_s",
        "texts_per_s",
        "captions_per_s",
        "speedup_vs_fp32",
        "speedup_ci",
        "images_per_s_ci",
        "captions_per_s_ci",
        "rounds",
        "contended",
        "weights_mb",
        "added_peak_mb",
        "min_cosine_to_fp32",
        "mean_cosine_to_fp32",
        "caption_identical_share",
        "caption_bleu4_to_fp32",
        "agreement_items",
        "setup_s",
        "compile_s",
    )
    rows = []
    for r in records:
        row = {k: r.get(k) for k in keep}
        row["batches"] = [
            {
                k: b.get(k)
                for k in (
                    "op",
                    "batch_size",
                    "repeats",
                    "throughput_per_s",
                    "latency_p50_ms",
                    "latency_p95_ms",
                    "peak_rss_mb",
                    "added_peak_mb",
                    "converged",
                    "first_call_s",
                )
            }
            for b in r["batches"]
        ]
        rows.append(row)
    return {
        "model": label,
        "model_id": model_id,
        "command": f"mirada queue --task benchmark --model {model_id} --variants {variants} "
        f"--batch-sizes {','.join(map(str, options['batch_sizes']))}",
        "options": options,
        "run_wall_s": round(wall, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "measurement": _measurement(run_id),
        "variants": rows,
        "best": best_variant(rows),
    }


def _measurement(run_id: int) -> dict[str, Any] | None:
    """The run's measurement artifact (contention, load, CPU efficiency), as stored."""
    import json

    from sqlalchemy import select

    from mirada.db import read_session
    from mirada.db.models import RunArtifact
    from mirada.results import MEASUREMENT_ARTIFACT

    with read_session() as s:
        blob = s.scalar(
            select(RunArtifact.data).where(
                RunArtifact.run_id == run_id, RunArtifact.name == MEASUREMENT_ARTIFACT
            )
        )
    return json.loads(blob) if blob is not None else None


def best_variant(rows: list[dict[str, Any]], min_cosine: float = 0.999) -> dict[str, Any] | None:
    """The fastest available variant whose agreement stays above `min_cosine` (captioners:
    by captions/s, agreement by identical captions not judged here)."""
    speed = "images_per_s" if any(r.get("images_per_s") for r in rows) else "captions_per_s"
    ok = [
        r
        for r in rows
        if r["available"]
        and r.get(speed)
        and (r.get("min_cosine_to_fp32") is None or r["min_cosine_to_fp32"] >= min_cosine)
    ]
    if not ok:
        return None
    top = max(ok, key=lambda r: r[speed])
    return {"name": top["name"], "by": speed, "speedup_vs_fp32": top["speedup_vs_fp32"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short budget (smoke check)")
    parser.add_argument("--skip-blip", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    timed, budget = (2, 2.0) if args.quick else (5, 30.0)
    out: dict[str, Any] = {
        "benchmark": "bench_variants",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "runs": [],
    }
    with temp_home() as home:
        # a cold compile, as a user's first run sees it: no kernels cached by earlier runs
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(home / "inductor-cache")
        out["inductor_cache"] = "cold (a fresh TORCHINDUCTOR_CACHE_DIR)"
        dataset = import_synthetic(home, 64)
        out["runs"].append(
            measure(
                home,
                dataset,
                "open-clip:ViT-B-32",
                "open-clip:ViT-B-32",
                CLIP_VARIANTS,
                {
                    "batch_sizes": [8, 32],
                    "warmup_batches": 2,
                    "timed_batches": timed,
                    "max_seconds": budget,
                },
            )
        )
        if not args.skip_blip:
            try:
                blip, label = build_blip_base(home / "blip-base"), "BLIP base size (random init)"
            except Exception as exc:  # no BLIP-base build here: the demo captioner instead
                blip, label = DEMO_BLIP, f"{DEMO_BLIP} (BLIP base failed: {exc})"
            out["runs"].append(
                measure(
                    home,
                    dataset,
                    blip,
                    label,
                    BLIP_VARIANTS,
                    {
                        "batch_sizes": [2],
                        "warmup_batches": 1,
                        "timed_batches": 2,
                        "max_seconds": budget,
                    },
                )
            )
    emit(out)


if __name__ == "__main__":
    main()
