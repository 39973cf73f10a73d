"""Blocked retrieval metrics vs a dense NumPy reference: time and peak RSS, in subprocesses.

5,000 images x 25,000 captions (5 per image), dim 512, random unit vectors. Each method runs
in its own child process (peak RSS = the child's own ru_maxrss, so the two do not mix); the
parent checks that ranks, metrics and top-5 lists are equal and prints JSON.

    .venv/bin/python -m benchmarks.bench_retrieval [--images 5000] [--per-image 5] [--dim 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(n: int, per: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    img = rng.standard_normal((n, dim), dtype=np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    ci = np.repeat(np.arange(n), per)
    txt = img[ci] + rng.standard_normal((n * per, dim), dtype=np.float32) * 1.5
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    return img, txt, ci


def dense(img: np.ndarray, txt: np.ndarray, ci: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Full N x M matrix; same definitions (pessimistic ties) as mirada.metrics.retrieval."""
    s = img @ txt.T
    n = img.shape[0]
    own = np.zeros_like(s, dtype=bool)
    own[ci, np.arange(len(ci))] = True
    best = np.where(own, s, -np.inf).max(axis=1)
    i2t = 1 + np.count_nonzero((s >= best[:, None]) & ~own, axis=1)
    own_t = s[ci, np.arange(len(ci))]
    t2i = np.count_nonzero(s >= own_t[None, :], axis=0)
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    sc = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -sc), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    del n
    return {"i2t": i2t, "t2i": t2i, "top": top, "top_scores": np.take_along_axis(sc, order, 1)}


def child(method: str, n: int, per: int, dim: int, out: str) -> None:
    from mirada.metrics import retrieval

    img, txt, ci = make_data(n, per, dim)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if method == "chunked":
        res = retrieval.retrieve(img, txt, ci, k=5)
        arrays = {
            "i2t": res.i2t_rank,
            "t2i": res.t2i_rank,
            "top": res.topk_indices,
            "top_scores": res.topk_scores,
        }
        metrics = res.metrics
    else:
        arrays = dense(img, txt, ci, 5)
        metrics = retrieval.metrics_from_ranks(arrays["i2t"], arrays["t2i"])
    elapsed = time.perf_counter() - t0
    np.savez(out, **arrays)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "time_s": elapsed,
                "peak_rss_mb": peak / 1024,
                "input_rss_mb": base_rss / 1024,
                "metrics": metrics,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--per-image", type=int, default=5)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--child", choices=["chunked", "dense"])
    p.add_argument("--out")
    a = p.parse_args()
    if a.child:
        child(a.child, a.images, a.per_image, a.dim, a.out)
        return
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {}
        for method in ("chunked", "dense"):
            out = str(Path(tmp) / f"{method}.npz")
            cmd = [sys.executable, __file__, "--child", method, "--out", out]
            cmd += ["--images", str(a.images), "--per-image", str(a.per_image)]
            cmd += ["--dim", str(a.dim)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
            arrays[method] = dict(np.load(out))
        c, d = arrays["chunked"], arrays["dense"]
        checks = {
            "i2t_ranks_equal": bool(np.array_equal(c["i2t"], d["i2t"])),
            "t2i_ranks_equal": bool(np.array_equal(c["t2i"], d["t2i"])),
            "top5_equal": bool(np.array_equal(c["top"], d["top"])),
            "top5_scores_max_abs_diff": float(np.abs(c["top_scores"] - d["top_scores"]).max()),
            "metrics_equal": results["chunked"]["metrics"] == results["dense"]["metrics"],
        }
    print(
        json.dumps(
            {
                "images": a.images,
                "captions": a.images * a.per_image,
                "dim": a.dim,
                "chunked_time_s": round(results["chunked"]["time_s"], 3),
                "dense_time_s": round(results["dense"]["time_s"], 3),
                "chunked_peak_rss_mb": round(results["chunked"]["peak_rss_mb"], 1),
                "dense_peak_rss_mb": round(results["dense"]["peak_rss_mb"], 1),
                "input_rss_mb": round(results["chunked"]["input_rss_mb"], 1),
                "checks": checks,
                "metrics": results["chunked"]["metrics"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
