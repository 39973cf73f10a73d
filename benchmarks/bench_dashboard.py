"""Results-page render time for a match run on a 5,000-image dataset.

Seeds a temporary MIRADA_HOME (5,000 items over 64 tiny PNGs, 2 captions each, one finished
match run with random 512-d embeddings, per-item results and metrics from the real report
builder), then renders the dashboard's Results page with Streamlit's AppTest:

- results_page_seconds: a render with empty st.cache_data caches in a process whose modules
  are already imported (as in a running dashboard): loading the run, its metrics, both
  embedding sets for the category-block heatmap and its default slice, per-item results and
  the drill-down. The 2-D projection of 5,000 points is not computed on page load (a button
  does it once and stores it), so it is not part of this number;
- results_page_warm_seconds: a rerun with warm caches;
- results_page_first_in_process_seconds: the very first render, including importing
  streamlit/altair/pandas/sqlalchemy and opening the database.

Prints one JSON object. Usage: .venv/bin/python -m benchmarks.bench_dashboard [--images N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "mirada" / "dashboard" / "app.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    from streamlit.testing.v1 import AppTest

    from tests.dashboard.dashboard_seed import seed_large

    with tempfile.TemporaryDirectory(prefix="mirada-bench-") as tmp:
        t0 = time.perf_counter()
        seeded = seed_large(Path(tmp) / "home", args.images)
        seed_s = time.perf_counter() - t0
        os.environ["MIRADA_HOME"] = str(seeded.home)

        at = AppTest.from_file(str(APP), default_timeout=args.timeout)
        at.switch_page("app_pages/results.py")
        t0 = time.perf_counter()
        at.run()
        first = time.perf_counter() - t0

        # A running dashboard has its modules imported; what a user waits for when opening a
        # run is the page's own work with empty caches: clear them and render again.
        import streamlit as st

        st.cache_data.clear()
        t0 = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t0
        problems = [str(e.value) for e in at.exception]
        charts = len(at.get("vega_lite_chart"))

        t0 = time.perf_counter()
        at.run()
        warm = time.perf_counter() - t0

    print(
        json.dumps(
            {
                "results_page_seconds": round(cold, 3),
                "results_page_warm_seconds": round(warm, 3),
                "results_page_first_in_process_seconds": round(first, 3),
                "images": args.images,
                "captions": args.images * 2,
                "embedding_dim": 512,
                "charts": charts,
                "exceptions": problems,
                "seed_seconds": round(seed_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
