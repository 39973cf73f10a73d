"""Issue 21's acceptance experiment: one benchmark measured quiet, then with a busy loop pinned
to a core. Either the two bf16 speed-ups agree within ±20%, or the busy run says it was
contended (and so withholds its recommendation).

The dataset is 14 real photos that ship with installed packages (skimage.data, matplotlib's
sample data, scikit-learn's sample images; `pip install scikit-image matplotlib` where they
are missing, Mirada does not depend on them), saved as JPEG with one caption each. The run is
what a user queues:

    mirada queue --task benchmark --model open-clip:ViT-B-32 --variants fp32,bf16 \\
        --batch-sizes 8 --max-seconds S

(random-init ViT-B-32, built offline). The busy loop is `taskset -c 0 python3 -c "while True:
pass"`, started after the quiet run and stopped after the busy one.

    python -m benchmarks.bench_contention [--max-seconds 25]

It takes about 2 x (2 x max-seconds + 30 s). Prints one JSON object: per run the variants'
speed figures, the measurement, the `mirada show RUN --json` fields issue 21 names, and the
verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._util import emit, run_worker_once, temp_home

MODEL = "open-clip:ViT-B-32"
VARIANTS = "fp32,bf16"
AGREE_WITHIN = 0.20  # the two speed-ups, relative

# (source, name, caption, category): 14 photos, colour ones first
PHOTOS = (
    ("skimage", "astronaut", "an astronaut in a white suit in front of a flag", "person"),
    ("skimage", "chelsea", "a tabby cat looking to the side", "animal"),
    ("skimage", "coffee", "a cup of coffee on a saucer", "object"),
    ("skimage", "rocket", "a rocket on its launch pad", "object"),
    ("skimage", "hubble_deep_field", "galaxies in deep space", "space"),
    ("skimage", "retina", "a photograph of the retina of an eye", "medical"),
    ("skimage", "immunohistochemistry", "stained tissue under a microscope", "medical"),
    ("skimage", "stereo_motorcycle:0", "a motorcycle in a garage, left view", "object"),
    ("skimage", "stereo_motorcycle:1", "a motorcycle in a garage, right view", "object"),
    ("matplotlib", "grace_hopper.jpg", "a portrait of a woman in a navy uniform", "person"),
    ("sklearn", "china.jpg", "a chinese temple with a pagoda roof", "building"),
    ("sklearn", "flower.jpg", "a pink flower in close-up", "plant"),
    ("skimage", "camera", "a man with a camera on a tripod", "person"),
    ("skimage", "coins", "old coins on a dark background", "object"),
)


def _image(source: str, name: str) -> Any:
    from PIL import Image

    if source == "skimage":
        from skimage import data

        loader, _, index = name.partition(":")  # stereo_motorcycle gives (left, right, ...)
        pixels = getattr(data, loader)()
        return Image.fromarray(pixels[int(index)] if index else pixels).convert("RGB")
    if source == "matplotlib":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data(name) as f:
            return Image.open(f).convert("RGB")
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image(name)).convert("RGB")


def photo_dataset(home: Path) -> int:
    """The 14 photos as JPEGs with captions.csv, imported."""
    import csv

    from mirada.datasets import import_dataset

    src = home / "photos"
    src.mkdir()
    with (src / "captions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["filename", "caption", "category"])
        for source, name, caption, category in PHOTOS:
            filename = f"{Path(name.replace(':', '_')).stem}.jpg"
            _image(source, name).save(src / filename, quality=90)
            writer.writerow([filename, caption, category])
    return import_dataset(src, name="photos-14").id


def measure(dataset: int, max_seconds: float, label: str) -> dict[str, Any]:
    from mirada import queue
    from mirada.benchmark_records import load_measurement, load_records
    from mirada.queries.runs import run_detail
    from mirada.run_options import BenchmarkRunOptions

    options = BenchmarkRunOptions.from_dict(
        {"batch_sizes": [8], "variants": VARIANTS, "max_seconds": max_seconds}
    )
    run_id = queue.enqueue(dataset, MODEL, "benchmark", options=options)
    t0 = time.perf_counter()
    run_worker_once()
    wall = time.perf_counter() - t0
    detail = run_detail(run_id, with_captions=False)
    if detail["status"] != "succeeded":
        return {"run": label, "run_id": run_id, "error": detail["error"]}
    records, measurement = _artifacts(run_id, load_records, load_measurement)
    shown = _show(run_id)
    return {
        "run": label,
        "run_id": run_id,
        "run_wall_s": round(wall, 1),
        "variants": [
            {
                "name": r.name,
                "images_per_s": r.images_per_s,
                "images_per_s_ci": r.images_per_s_ci,
                "speedup": r.speedup,
                "speedup_ci": r.speedup_ci,
                "contended": r.contended,
                "rounds": r.rounds,
                "task_metrics": {
                    k: {"value": m.value, "delta": m.delta, "delta_ci": m.delta_ci}
                    for k, m in r.task_metrics.items()
                },
            }
            for r in records
        ],
        "measurement": {
            k: getattr(measurement, k)
            for k in (
                "contended",
                "reason",
                "other_cpu_share",
                "load_before",
                "load_after",
                "cpu_efficiency",
                "cpus",
                "threads",
                "cpu_model",
                "seconds",
            )
        },
        "show_json": shown,
    }


def _artifacts(run_id: int, load_records: Any, load_measurement: Any) -> tuple[Any, Any]:
    from sqlalchemy import select

    from mirada.db import read_session
    from mirada.db.models import RunArtifact
    from mirada.results import MEASUREMENT_ARTIFACT, VARIANTS_ARTIFACT

    with read_session() as s:
        rows = s.execute(
            select(RunArtifact.name, RunArtifact.data).where(RunArtifact.run_id == run_id)
        ).all()
    blobs = {name: data for name, data in rows}
    return load_records(blobs[VARIANTS_ARTIFACT]), load_measurement(blobs[MEASUREMENT_ARTIFACT])


def _show(run_id: int) -> dict[str, Any]:
    """`mirada show RUN --json`, the variants' keys issue 21 names and the measurement."""
    proc = subprocess.run(
        [sys.executable, "-m", "mirada", "show", str(run_id), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:]}
    shown = json.loads(proc.stdout)
    keys = (
        "name",
        "images_per_s",
        "images_per_s_ci",
        "speedup",
        "speedup_ci",
        "contended",
        "rounds",
        "min_cosine_to_fp32",
        "task_metrics",
    )
    return {
        "variants": [{k: v.get(k) for k in keys} for v in shown.get("variants") or []],
        "measurement": shown.get("measurement"),
    }


def busy_loop() -> subprocess.Popen[bytes]:
    """One busy-loop process pinned to core 0 (taskset; unpinned where taskset is missing)."""
    loop = [sys.executable, "-c", "while True: pass"]
    taskset = shutil.which("taskset")
    return subprocess.Popen([taskset, "-c", "0", *loop] if taskset else loop)


def verdict(quiet: dict[str, Any], busy: dict[str, Any]) -> dict[str, Any]:
    def bf16(run: dict[str, Any]) -> float | None:
        return next((v["speedup"] for v in run.get("variants", []) if v["name"] == "bf16"), None)

    q, b = bf16(quiet), bf16(busy)
    agree = q is not None and b is not None and abs(b / q - 1) <= AGREE_WITHIN
    busy_contended = bool(busy.get("measurement", {}).get("contended"))
    return {
        "quiet_speedup": q,
        "busy_speedup": b,
        "busy_over_quiet": b / q if q and b else None,
        "speedups_within_20pct": agree,
        "busy_run_contended": busy_contended,
        "quiet_run_contended": bool(quiet.get("measurement", {}).get("contended")),
        "pass": agree or busy_contended,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-seconds", type=float, default=25.0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    out: dict[str, Any] = {
        "benchmark": "bench_contention",
        "command": f"mirada queue --task benchmark --model {MODEL} --variants {VARIANTS} "
        f"--batch-sizes 8 --max-seconds {args.max_seconds:g}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": len(os.sched_getaffinity(0)),
    }
    with temp_home() as home:
        dataset = photo_dataset(home)
        out["quiet"] = measure(dataset, args.max_seconds, "quiet")
        loop = busy_loop()
        try:
            time.sleep(1.0)  # the loop is running before the measurement starts
            out["busy"] = measure(dataset, args.max_seconds, "busy loop on core 0")
        finally:
            loop.terminate()
            loop.wait(timeout=10)
    out["verdict"] = verdict(out["quiet"], out["busy"])
    emit(out)


if __name__ == "__main__":
    main()
