"""Cached re-run: wall time of re-running a finished (dataset, model) ÷ the first run.

Both are real worker `match` runs (load, encode or cache lookup, persist, metrics with
bootstrap CIs). The re-run finds every embedding in the cache by the model's file identity,
so it never loads the model. ViT-B-32 is random-init but saved to a local directory, which
gives it a stable identity (an unsaved random init is never cached).

    python -m benchmarks.bench_cache [--n 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks._util import emit, import_synthetic, run_seconds, run_worker_once, temp_home


def save_vit_b_32(directory: Path) -> str:
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    cfg = open_clip.get_model_config("ViT-B-32")
    (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(directory / "open_clip_model.safetensors"),
    )
    return f"open-clip:local-dir:{directory}"


def measure(model_id: str | None, n: int) -> dict:
    from mirada import queue

    with temp_home() as home:
        if model_id is None:
            model_id = save_vit_b_32(home / "vit-b-32")
        ds = import_synthetic(home, n)
        first = queue.enqueue(ds, model_id, "match")
        run_worker_once()
        again = queue.enqueue(ds, model_id, "match")
        run_worker_once()
        t1, t2 = run_seconds(first), run_seconds(again)
    return {
        "model": model_id
        if "local-dir" not in model_id
        else "open-clip ViT-B-32 (saved random init)",
        "images": n,
        "first_run_s": round(t1, 3),
        "rerun_s": round(t2, 3),
        "ratio": round(t2 / t1, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=256)
    a = p.parse_args()
    emit({"cached_rerun": [measure(None, a.n), measure("hf-clip:mirada/demo-clip", a.n)]})


if __name__ == "__main__":
    main()
