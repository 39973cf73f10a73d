"""Bootstrap CIs for all retrieval metrics of 5,000 images, 1,000 resamples: one resample set,
shared by every metric (weights matrix product). Prints JSON timings.

    .venv/bin/python -m benchmarks.bench_bootstrap
"""

from __future__ import annotations

import json
import time

import numpy as np

from mirada.metrics import report, stats


def main(n: int = 5000, per: int = 5, n_resamples: int = 1000) -> None:
    rng = np.random.default_rng(0)
    i2t = rng.geometric(0.4, size=n)
    t2i = rng.geometric(0.3, size=n * per)
    ci = np.repeat(np.arange(n), per)
    t0 = time.perf_counter()
    w = stats.resample_weights(n, n_resamples, seed=0)
    t_w = time.perf_counter() - t0
    ratios = report.RatioMetrics(w)  # the exact code path build_match_report uses
    ones = np.ones(n)
    counts = np.bincount(ci, minlength=n).astype(float)
    for k in (1, 5, 10):
        ratios.add(f"i2t_recall@{k}", (i2t <= k) * 1.0, ones)
        hits = np.bincount(ci, weights=(t2i <= k) * 1.0, minlength=n)
        ratios.add(f"t2i_recall@{k}", hits, counts)
    ratios.add("mrr", 1.0 / i2t, ones)
    cats = rng.integers(0, 20, size=n)
    for c in range(20):  # per-category recall@1 rows on the same resamples
        sel = (cats == c) * 1.0
        ratios.add("i2t_recall@1", (i2t == 1) * sel, sel, category=str(c))
    metrics = ratios.metrics()
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    stats.bootstrap_ci((i2t == 1) * 1.0, n_resamples=n_resamples)
    single = time.perf_counter() - t1
    print(
        json.dumps(
            {
                "items": n,
                "resamples": n_resamples,
                "metrics": len(metrics),
                "resample_weights_s": round(t_w, 3),
                "all_metrics_total_s": round(total, 3),
                "single_bootstrap_ci_s": round(single, 3),
                "target_s": 2.0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
