"""Everything the CLI prints is free of terminal escapes and bidi overrides (issue 12 item 18).

A category holding an OSC retitle (ESC ] 0 ; pwned BEL), CSI sequences and bidi overrides is
shown by `mirada show`, `mirada runs`, `mirada datasets`, error messages and worker log lines
as visible escapes (\\x1b, \\u202e), never as raw bytes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cli_runner import run_cli
from hostile_text import CONTROL, DATASET_NAME, OSC_TITLE, import_hostile

from mirada.results import ItemOutcome, MetricValue, RunResults


@pytest.fixture
def hostile_runs(db_url: str, mirada_home: Path, tmp_path: Path) -> tuple[int, int]:
    """(a succeeded match run with per-category metrics, a failed run with a hostile error)."""
    from mirada.datasets import load_items
    from mirada.queue import claim_next, enqueue, fail_run, finish_run, register_worker

    dataset_id = import_hostile(tmp_path)
    items = load_items(dataset_id)
    categories = sorted({it.category for it in items if it.category})
    worker, _ = register_worker("w\x1b[2J", "host", 1, [], ["cpu"], None)
    ok = enqueue(dataset_id, "hf-clip:mirada/demo-clip", "match", device="cpu")
    claimed = claim_next(worker, ["cpu"], [])
    assert claimed is not None and claimed.id == ok
    results = RunResults(
        metrics=[
            MetricValue("i2t_recall@1", 0.5),
            *(MetricValue("i2t_recall@1", 0.5, category=c) for c in categories),
        ],
        items=[ItemOutcome(item_id=it.item_id, correct=True, rank=1, score=0.3) for it in items],
    )
    assert finish_run(
        ok, worker, results, hardware_profile_id=None, model_fingerprint=None, resolved_device="cpu"
    )
    bad = enqueue(dataset_id, "hf-clip:mirada/demo-clip", "match", device="cpu")
    claimed = claim_next(worker, ["cpu"], [])
    assert claimed is not None and claimed.id == bad
    fail_run(bad, worker, f"ValueError: category {categories[0]}\u202e", "Traceback ...")
    return ok, bad


def _clean(text: str, where: str) -> None:
    assert not CONTROL.search(text), (where, CONTROL.search(text), text)


def test_show_runs_datasets_print_no_raw_controls(hostile_runs: tuple[int, int]) -> None:
    ok, bad = hostile_runs
    for args in (
        ("show", str(ok)),
        ("show", str(bad)),
        ("runs",),
        ("datasets",),
        ("show", str(ok), "--json"),
        ("runs", "--json"),
        ("datasets", "--json"),
    ):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        _clean(result.stdout + result.stderr, " ".join(args))
    shown = run_cli("show", str(ok)).stdout
    assert "\\x1b]0;pwned\\x07" in shown  # the category, visible
    assert "\\u202edemo" in run_cli("datasets").stdout  # the dataset name's bidi override
    as_json = json.loads(run_cli("datasets", "--json").stdout)
    assert as_json[0]["name"] == DATASET_NAME  # JSON escapes, the value is unchanged


def test_errors_and_exports_print_no_raw_controls(hostile_runs: tuple[int, int]) -> None:
    ok, bad = hostile_runs
    failed = run_cli("export", str(bad))  # "run N failed: <the error>; nothing to export"
    assert failed.returncode != 0 and "\\x1b[2J\\x1b[31m\\u202e;" in failed.stderr
    _clean(failed.stdout + failed.stderr, "export failed run")
    for fmt in ("markdown", "csv", "json"):
        result = run_cli("export", str(ok), "--format", fmt)
        assert result.returncode == 0, result.stderr
        _clean(result.stdout, f"export {fmt}")


def test_worker_log_lines_print_no_raw_controls(capsys: pytest.CaptureFixture[str]) -> None:
    from mirada.cli import show_log

    show_log("mirada.test_hostile_log", "%(message)s")
    logging.getLogger("mirada.test_hostile_log").info("caption of %s", "cat " + OSC_TITLE)
    err = capsys.readouterr().err
    assert "cat \\x1b]0;pwned\\x07" in err
    _clean(err, "log line")
