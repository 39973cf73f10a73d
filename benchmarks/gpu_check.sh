#!/usr/bin/env bash
# The benchmark's CUDA path end to end (issue 21), in under 5 minutes on a GPU machine: a
# throwaway MIRADA_HOME, the synthetic demo dataset, one benchmark run per model on
# --device cuda with --variants fp32,fp16,bf16,fp32+tf32 (the demo CLIP and a random-init
# open_clip ViT-B-32, both offline), a burst worker, then each run's `mirada show --json`.
# Exits non-zero when there is no CUDA device, a run fails, the fp32 reference has no CI,
# the measurement names no GPU, or a variant is unavailable without a reason.
#
#     benchmarks/gpu_check.sh [MAX_SECONDS]    # budget per operation and batch size (10)
#
# CI never has a GPU; run it whenever one is available and put the figures in
# docs/benchmarks.md with the card named.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
MAX_SECONDS="${1:-10}"
export HF_HUB_OFFLINE=1
MIRADA_HOME="$(mktemp -d -t mirada-gpu-check-XXXXXX)"
export MIRADA_HOME
unset MIRADA_DATABASE_URL
trap 'rm -rf "$MIRADA_HOME"' EXIT
mirada() { "$PY" -m mirada "$@"; }

"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device")'
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>/dev/null || true

"$PY" -c 'import sys, pathlib
from mirada.demo.synthetic import write_demo_dataset
write_demo_dataset(pathlib.Path(sys.argv[1]), split="demo")' "$MIRADA_HOME/demo-source"
mirada import "$MIRADA_HOME/demo-source" --name demo --json >/dev/null
ids="$(mirada queue --dataset demo --task benchmark --device cuda \
    --model hf-clip:mirada/demo-clip --model open-clip:ViT-B-32 \
    --variants fp32,fp16,bf16,fp32+tf32 --batch-sizes 1,32 --max-seconds "$MAX_SECONDS" --json)"
start=$SECONDS
mirada worker --burst --device cuda --no-progress
echo "gpu_check: runs took $((SECONDS - start)) s" >&2

"$PY" - "$ids" <<'PYEOF'
import json, subprocess, sys

from sqlalchemy import select

from mirada.benchmark_records import Measurement, load_measurement, to_json
from mirada.db import read_session
from mirada.db.models import RunArtifact
from mirada.results import MEASUREMENT_ARTIFACT


def stored_measurement(run_id: int) -> Measurement:
    with read_session() as s:
        blob = s.scalar(
            select(RunArtifact.data).where(
                RunArtifact.run_id == run_id, RunArtifact.name == MEASUREMENT_ARTIFACT
            )
        )
    return load_measurement(blob)


failed = []
for run_id in json.loads(sys.argv[1]):
    out = subprocess.run(
        [sys.executable, "-m", "mirada", "show", str(run_id), "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    shown = json.loads(out)
    for v in shown.get("variants") or []:
        v.pop("batches", None)  # per-batch rows: long; the summary keys stay
    print(json.dumps(shown, indent=2))
    where = f"run {run_id} ({shown.get('model')})"
    if shown.get("status") != "succeeded":
        failed.append(f"{where}: {shown.get('status')}: {shown.get('error')}")
        continue
    variants = {v["name"]: v for v in shown.get("variants") or []}
    ref = variants.get("fp32") or {}
    if not ref.get("images_per_s") or not ref.get("images_per_s_ci"):
        failed.append(f"{where}: the fp32 reference has no images/s with a CI")
    for name, v in variants.items():
        if not v.get("available") and not v.get("unavailable_reason"):
            failed.append(f"{where}: {name} unavailable without a reason")
    measurement = stored_measurement(run_id)
    print(json.dumps({"run": run_id, "measurement": to_json(measurement)}, indent=2))
    if not measurement.gpu_name:
        failed.append(f"{where}: the measurement names no GPU")
if failed:
    sys.exit("gpu_check FAILED:\n  " + "\n  ".join(failed))
print("gpu_check: ok", file=sys.stderr)
PYEOF
