"""The worker end to end on tiny random models: match, caption, benchmark, cache, failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_helpers import work

from mirada import queue
from mirada.datasets import load_items
from mirada.queries.runs import run_detail
from mirada.run_options import BenchmarkRunOptions, CaptionRunOptions, MatchRunOptions

DATASET_IMAGES = 12  # for conftest's `dataset`


@pytest.mark.slow
def test_match_caption_benchmark_store_everything(dataset: int, models: dict[str, str]) -> None:
    match = queue.enqueue(dataset, models["clip"], "match", batch_size=5)
    rerank = queue.enqueue(dataset, models["itm"], "match", batch_size=5)
    caption = queue.enqueue(
        dataset, models["caption"], "caption", batch_size=5, options=CaptionRunOptions(max_length=8)
    )
    bench = queue.enqueue(
        dataset,
        models["clip"],
        "benchmark",
        options=BenchmarkRunOptions(
            batch_sizes=(1, 4), warmup_batches=1, timed_batches=2, max_seconds=0.5
        ),
    )
    assert work() == 4

    m = run_detail(match)
    assert m["status"] == "succeeded", m["error"]
    for key in (
        "i2t_recall@1",
        "i2t_recall@5",
        "i2t_recall@10",
        "t2i_recall@1",
        "mrr",
        "category_accuracy",
        "zeroshot_accuracy",
    ):
        assert key in m["metrics"], key
    assert m["metrics"]["i2t_recall@1_ci_low"] <= m["metrics"]["i2t_recall@1"]
    assert m["per_category"], "per-category rows"
    assert m["hardware"]["cpu_cores"] >= 1 and m["hardware"]["torch"]
    assert m["model_fingerprint"]["model_id"] == models["clip"]
    assert m["resolved_device"] == "cpu"
    assert m["progress"]["done"] == m["progress"]["total"] > 0

    r = run_detail(rerank)
    assert r["status"] == "succeeded", r["error"]
    assert "i2t_recall@1_reranked" in r["metrics"]

    c = run_detail(caption)
    assert c["status"] == "succeeded", c["error"]
    assert len(c["captions"]) == 12
    assert {"BLEU-4", "ROUGE-L", "CIDEr", "METEOR"} <= set(c["metrics"])
    assert all(cap["flags"] is not None for cap in c["captions"])

    b = run_detail(bench)
    assert b["status"] == "succeeded", b["error"]
    names = {(t["name"], t["batch_size"]) for t in b["timings"]}
    for bs in (1, 4):
        for op in ("image_encode", "text_encode"):
            assert (f"{op}_latency_p50_ms", bs) in names
            assert (f"{op}_throughput_per_s", bs) in names
            assert (f"{op}_peak_rss_mb", bs) in names
    assert ("load_s", None) in names


def test_rerun_reuses_cached_embeddings_without_loading(
    dataset: int, models: dict[str, str]
) -> None:
    first = queue.enqueue(dataset, models["clip"], "match")
    second = queue.enqueue(dataset, models["clip"], "match")
    fresh = queue.enqueue(dataset, models["clip"], "match", options=MatchRunOptions(no_cache=True))
    assert work() == 3
    t1 = {t["name"]: t["value"] for t in run_detail(first)["timings"]}
    t2 = {t["name"]: t["value"] for t in run_detail(second)["timings"]}
    t3 = {t["name"]: t["value"] for t in run_detail(fresh)["timings"]}
    assert t1["image_encode_computed"] == 12 and t1["image_encode_cached"] == 0
    assert t2["image_encode_computed"] == 0 and t2["image_encode_cached"] == 12
    assert t2["text_encode_computed"] == 0
    assert "load_s" not in t2, "a fully cached re-run must not load the model"
    assert t3["image_encode_computed"] == 12
    m1, m2 = run_detail(first)["metrics"], run_detail(second)["metrics"]
    assert m1["i2t_recall@1"] == m2["i2t_recall@1"] and m1["mrr"] == m2["mrr"]


def test_failures_fail_the_run_and_the_worker_keeps_serving(
    dataset: int, models: dict[str, str], tmp_path: Path
) -> None:
    missing = queue.enqueue(dataset, f"hf-clip:{tmp_path / 'nope'}", "match")
    items = load_items(dataset)
    items[3].path.write_bytes(b"not an image at all")
    uncached = MatchRunOptions(no_cache=True)
    corrupt = queue.enqueue(dataset, models["clip"], "match", options=uncached)
    short = CaptionRunOptions(max_length=5)
    cap = queue.enqueue(dataset, models["caption"], "caption", options=short)
    assert work() == 3
    d = run_detail(missing)
    assert d["status"] == "failed" and "nope" in d["error"] and d["traceback"]
    d = run_detail(corrupt)
    assert d["status"] == "failed" and items[3].path.name in d["error"]
    assert d["metrics"] == {}, "a failed run shows no results"
    assert run_detail(cap)["status"] == "failed"  # same corrupt image


def test_zeroshot_templates_flow_from_cli_to_prompts(
    dataset: int, models: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from mirada.cli import main

    base = ["queue", "--dataset", "tiny-demo", "--model", models["clip"], "--task", "match"]
    assert main([*base, "--template", "no placeholder"]) == 2
    assert "exactly one {}" in capsys.readouterr().err
    assert main([*base, "--template", "a {} shape", "--json"]) == 0
    (run_id,) = __import__("json").loads(capsys.readouterr().out)
    assert work() == 1
    detail = run_detail(run_id)
    assert detail["options"]["zeroshot_templates"] == ["a {} shape"]
    assert "zeroshot_accuracy" in detail["metrics"]
    # the prompts really came from the template: their embeddings are in the cache
    from sqlalchemy import select

    from mirada.db import read_session
    from mirada.db.models import EmbeddingCache
    from mirada.embedding_cache import text_hash

    with read_session() as s:
        cached = set(s.scalars(select(EmbeddingCache.content_sha256)).all())
    assert text_hash("a circle shape") in cached
    assert text_hash("a photo of a circle shape.") not in cached


def test_worker_command_prints_its_log_lines(
    mirada_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    from mirada.cli import main

    assert main(["worker", "--burst", "--no-progress", "--device", "cpu", "--name", "w1"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    stamp = r"^\[mirada worker \d\d:\d\d:\d\d\] "
    assert re.match(stamp + r"w1 \(id \d+\) serving \['cpu'\], labels \[\]$", lines[0]), lines
    assert re.match(stamp + r"queue empty; exiting \(--burst\)$", lines[-1]), lines
