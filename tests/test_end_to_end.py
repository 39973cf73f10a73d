"""The real `mirada` CLI end to end with the shipped demo models, as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def mirada(home: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIRADA_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("MIRADA_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "mirada", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_queue_worker_show_with_demo_models(tmp_path: Path) -> None:
    from mirada.demo.synthetic import write_demo_dataset

    home = tmp_path / "home"
    src = write_demo_dataset(tmp_path / "demo", split="demo")
    imported = mirada(home, "import", str(src), "--name", "shapes", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["images"] == 120

    queued = {}
    for task, model, extra in (
        ("match", "hf-clip:mirada/demo-clip", []),
        ("caption", "blip-caption:mirada/demo-blip", []),
        ("benchmark", "hf-clip:mirada/demo-clip", ["--batch-sizes", "1,16"]),
    ):
        out = mirada(
            home, "queue", "--dataset", "shapes", "--model", model, "--task", task, *extra, "--json"
        )
        assert out.returncode == 0, out.stderr
        queued[task] = json.loads(out.stdout)[0]
    refused = mirada(
        home,
        "queue",
        "--dataset",
        "shapes",
        "--model",
        "hf-clip:mirada/demo-clip",
        "--task",
        "caption",
    )
    assert refused.returncode == 2 and "cannot run task 'caption'" in refused.stderr

    worker = mirada(home, "worker", "--burst", "--no-progress")
    assert worker.returncode == 0, worker.stderr[-2000:]

    runs = json.loads(mirada(home, "runs", "--json").stdout)
    assert {r["status"] for r in runs} == {"succeeded"}, runs
    assert set(runs[0]) == {
        "id",
        "dataset",
        "model",
        "task",
        "status",
        "attempts",
        "device",
        "worker",
        "error",
    }

    match = json.loads(mirada(home, "show", str(queued["match"]), "--json").stdout)
    assert match["metrics"]["i2t_recall@1"] >= 0.9
    assert match["metrics"]["i2t_recall@1_ci_low"] <= match["metrics"]["i2t_recall@1"]
    assert set(match["per_category"]) == {"circle", "square", "star", "triangle"}
    assert match["hardware"]["cpu_cores"] >= 1

    caption = json.loads(mirada(home, "show", str(queued["caption"]), "--json").stdout)
    assert len(caption["captions"]) == 120
    assert caption["metrics"]["BLEU-4"] > 0.3 and caption["metrics"]["CIDEr"] > 0.5

    bench = json.loads(mirada(home, "show", str(queued["benchmark"]), "--json").stdout)
    latency = {(t["name"], t["batch_size"]): t["value"] for t in bench["timings"]}
    assert latency[("image_encode_latency_p50_ms", 16)] > 0
    assert (
        latency[("image_encode_latency_p95_ms", 1)] >= latency[("image_encode_latency_p50_ms", 1)]
    )
    assert latency[("text_encode_throughput_per_s", 16)] > 0

    human = mirada(home, "show", str(queued["match"]))
    assert "i2t_recall@1" in human.stdout and "95% CI" in human.stdout


def test_demo_no_dashboard_summary_and_rerun_reuses(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = mirada(home, "demo", "--no-dashboard")
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stdout.splitlines()
    assert lines[0].split() == ["model", "top-1", "BLEU-4", "METEOR", "images/s", "note"]
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert set(rows) == {
        "hf-clip:mirada/demo-clip",
        "hf-clip:mirada/demo-clip-random",
        "blip-caption:mirada/demo-blip",
    }
    trained = float(rows["hf-clip:mirada/demo-clip"].split()[1])
    chance = float(rows["hf-clip:mirada/demo-clip-random"].split()[1])
    assert trained >= 0.9 and chance <= 0.2
    runs_before = json.loads(mirada(home, "runs", "--json").stdout)

    again = mirada(home, "demo", "--no-dashboard")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing dataset" in again.stderr
    assert json.loads(mirada(home, "runs", "--json").stdout) == runs_before
    datasets = json.loads(mirada(home, "datasets", "--json").stdout)
    assert [d["name"] for d in datasets] == ["mirada-demo"]

    run_id = str(runs_before[-1]["id"])
    for fmt in ("csv", "json", "markdown"):
        out = mirada(home, "export", run_id, "--format", fmt)
        assert out.returncode == 0 and out.stdout.strip(), out.stderr
