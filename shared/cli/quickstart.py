"""`mirada demo`: a working benchmark with no internet and no GPU."""

from __future__ import annotations

import argparse

from shared.cli import arg, command


@command(
    "demo",
    "Import the demo dataset, run the shipped demo models, open the dashboard",
    arg(
        "--no-dashboard",
        action="store_true",
        help="run the demo runs in this process, print a summary table and exit",
    ),
    arg("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)"),
    arg("--port", type=int, default=8501, help="dashboard port (default 8501)"),
    description=(
        "Generate the synthetic demo dataset (coloured shapes, 4 categories), import it, queue\n"
        "match/caption/benchmark runs for the demo models shipped in the repo (a trained tiny\n"
        "CLIP, the same CLIP untrained as a chance baseline, and a tiny BLIP captioner), start\n"
        "a worker in the background and the dashboard at http://127.0.0.1:8501.\n"
        "Running it again reuses the dataset and finished runs. Ctrl-C stops everything."
    ),
)
def demo_cmd(args: argparse.Namespace) -> int:
    from shared.demo_session import run_demo

    return run_demo(dashboard=not args.no_dashboard, host=args.host, port=args.port)
