"""t-SNE (scikit-learn Barnes-Hut) and PCA on 5,000 x 512 points. Prints JSON timings.

.venv/bin/python -m benchmarks.bench_tsne [--points 5000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time

import numpy as np

from mirada.metrics import projection


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--points", type=int, default=5000)
    p.add_argument("--dim", type=int, default=512)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, a.dim)).astype(np.float32)
    x = centres[rng.integers(0, 20, a.points)] + rng.standard_normal(
        (a.points, a.dim), dtype=np.float32
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t0 = time.perf_counter()
    projection.project(x, "pca")
    t_pca = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = projection.project(x, "tsne", seed=0)
    t_tsne = time.perf_counter() - t0
    import sklearn

    print(
        json.dumps(
            {
                "points": a.points,
                "dim": a.dim,
                "tsne_s": round(t_tsne, 2),
                "pca_s": round(t_pca, 3),
                "perplexity": projection.clamp_perplexity(None, a.points),
                "sklearn": sklearn.__version__,
                "cpus": os.cpu_count(),
                "opentsne_installed": importlib.util.find_spec("openTSNE") is not None,
                "finite": bool(np.isfinite(out).all()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
