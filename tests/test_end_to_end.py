"""The `mirada` CLI end to end with the shipped demo models, as a user would run it.

`mirada demo --no-dashboard` runs once per module (import, queue, in-process worker, summary)
and the tests read its MIRADA_HOME; the queue/worker/show path runs on a 12-image subset.
Commands run in-process (tests/cli_runner.py) except the two entry-point smoke tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_runner import CliResult, run_cli

pytestmark = pytest.mark.slow


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("MIRADA_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)


def ok_json(*args: str) -> Any:
    done = run_cli(*args, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@dataclass(frozen=True)
class Demo:
    home: Path
    first: CliResult
    runs: list[dict[str, Any]]

    def run_id(self, model: str, task: str) -> str:
        (run,) = [r for r in self.runs if r["model"] == model and r["task"] == task]
        return str(run["id"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    home = tmp_path_factory.mktemp("demo") / "home"
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, home)
        first = run_cli("demo", "--no-dashboard")
        assert first.returncode == 0, first.stderr[-3000:]
        yield Demo(home, first, ok_json("runs"))


@pytest.fixture
def demo_env(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Demo:
    use_home(monkeypatch, demo.home)
    return demo


def test_demo_summary_shows_trained_model_above_chance(demo: Demo) -> None:
    lines = demo.first.stdout.splitlines()
    assert lines[0].split() == ["model", "top-1", "BLEU-4", "METEOR", "images/s", "note"]
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert set(rows) == {
        "hf-clip:mirada/demo-clip",
        "hf-clip:mirada/demo-clip-random",
        "blip-caption:mirada/demo-blip",
    }
    # top-1 in percent, as the dashboard shows it ("100.0% [75.8, 100.0]")
    trained = float(rows["hf-clip:mirada/demo-clip"].split()[1].removesuffix("%"))
    chance = float(rows["hf-clip:mirada/demo-clip-random"].split()[1].removesuffix("%"))
    assert trained >= 90 and chance <= 20


def test_demo_log_is_free_of_library_noise(demo: Demo) -> None:
    """transformers' "Loading weights" bars interleaved with the worker's own bar; the PTB
    tokenizer's Java chatter is checked at the file-descriptor level in
    test_metrics_captioning (it bypasses Python's sys.stderr)."""
    log = demo.first.stdout + demo.first.stderr
    assert "[mirada demo] running" in log  # the log was captured at all
    assert "Loading weights" not in log
    assert "PTBTokenizer" not in log


def test_demo_runs_show_and_export(demo_env: Demo) -> None:
    assert {r["status"] for r in demo_env.runs} == {"succeeded"}, demo_env.runs
    assert set(demo_env.runs[0]) == {
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

    match_id = demo_env.run_id("hf-clip:mirada/demo-clip", "match")
    match = ok_json("show", match_id)
    assert match["metrics"]["i2t_recall@1"] >= 0.9
    assert match["metrics"]["i2t_recall@1_ci_low"] <= match["metrics"]["i2t_recall@1"]
    assert set(match["per_category"]) == {"circle", "square", "star", "triangle"}
    assert match["hardware"]["cpu_cores"] >= 1
    human = run_cli("show", match_id)
    assert "i2t_recall@1" in human.stdout and "95% CI" in human.stdout

    caption = ok_json("show", demo_env.run_id("blip-caption:mirada/demo-blip", "caption"))
    assert len(caption["captions"]) == 120
    assert caption["metrics"]["BLEU-4"] > 0.3 and caption["metrics"]["CIDEr"] > 0.5

    for fmt in ("csv", "json", "markdown"):
        out = run_cli("export", match_id, "--format", fmt)
        assert out.returncode == 0 and out.stdout.strip(), out.stderr


def test_demo_rerun_reuses_dataset_and_runs(demo_env: Demo) -> None:
    again = run_cli("demo", "--no-dashboard")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing dataset" in again.stderr
    assert ok_json("runs") == demo_env.runs
    assert [d["name"] for d in ok_json("datasets")] == ["mirada-demo"]


def test_queue_worker_show_on_a_demo_subset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.demo.synthetic import write_demo_dataset

    use_home(monkeypatch, tmp_path / "home")
    src = write_demo_dataset(tmp_path / "demo", split="demo", n=12)
    assert ok_json("import", str(src), "--name", "shapes")["images"] == 12

    queued = {}
    bench = ["--batch-sizes", "1,4", "--max-seconds", "1"]  # the default budget is 60 s
    for task, extra in (("match", []), ("benchmark", bench)):
        args = ("--dataset", "shapes", "--model", "hf-clip:mirada/demo-clip", "--task", task)
        queued[task] = ok_json("queue", *args, *extra)[0]
    refused = run_cli(
        "queue", "--dataset", "shapes", "--model", "hf-clip:mirada/demo-clip", "--task", "caption"
    )
    assert refused.returncode == 2 and "cannot run task 'caption'" in refused.stderr

    worker = run_cli("worker", "--burst", "--no-progress")
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert {r["status"] for r in ok_json("runs")} == {"succeeded"}

    match = ok_json("show", str(queued["match"]))
    assert match["metrics"]["i2t_recall@1"] >= 0.9
    bench = ok_json("show", str(queued["benchmark"]))
    latency = {(t["name"], t["batch_size"]): t["value"] for t in bench["timings"]}
    assert latency[("image_encode_latency_p50_ms", 4)] > 0
    assert (
        latency[("image_encode_latency_p95_ms", 1)] >= latency[("image_encode_latency_p50_ms", 1)]
    )
    assert latency[("text_encode_throughput_per_s", 4)] > 0


# --- the real entry points, once each, in a fresh interpreter ---------------------------------


def _subprocess_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MIRADA_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("MIRADA_DATABASE_URL", None)
    return env


def test_python_dash_m_mirada_reads_the_demo(demo: Demo) -> None:
    match_id = demo.run_id("hf-clip:mirada/demo-clip", "match")
    done = subprocess.run(
        [sys.executable, "-m", "mirada", "show", match_id, "--json"],
        env=_subprocess_env(demo.home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"]["i2t_recall@1"] >= 0.9


def test_mirada_console_script_lists_the_demo_dataset(demo: Demo) -> None:
    script = Path(sys.executable).with_name("mirada")
    assert script.exists(), "the install puts the `mirada` console script beside python"
    done = subprocess.run(
        [str(script), "datasets", "--json"],
        env=_subprocess_env(demo.home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [d["name"] for d in json.loads(done.stdout)] == ["mirada-demo"]
