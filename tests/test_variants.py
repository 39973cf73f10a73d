"""Precision variants in one benchmark run (issue 14 §1): parsing at queue time, one run that
measures fp32 and bf16 side by side with their agreement, unavailable variants reported
instead of crashing the run, and `mirada show --json` keys."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import numpy as np
import pytest
from cli_runner import run_cli
from run_helpers import work

from mirada import queue
from mirada.domain import Dtype, Task
from mirada.errors import MiradaError
from mirada.metrics.agreement import caption_agreement, cosine_agreement
from mirada.queries.runs import run_detail
from mirada.run_options import (
    REFERENCE_VARIANT,
    BenchmarkRunOptions,
    Variant,
    measured_variants,
    parse_variant,
)

SHOW_KEYS = {"name", "images_per_s", "min_cosine_to_fp32"}


def _bench(dataset: int, model: str, variants: str, **extra: Any) -> int:
    options = {
        "batch_sizes": [2, 4],
        "warmup_batches": 1,
        "timed_batches": 2,
        "max_seconds": 0.5,  # rounds stop at the budget: tiny models are too noisy to converge
        "variants": variants,
        **extra,
    }
    return queue.enqueue(
        dataset, model, Task.benchmark, options=BenchmarkRunOptions.from_dict(options)
    )


def _variants(run_id: int) -> dict[str, dict[str, Any]]:
    result = run_cli("show", str(run_id), "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["status"] == "succeeded", shown["error"]
    assert all(SHOW_KEYS <= set(v) for v in shown["variants"])
    return {v["name"]: v for v in shown["variants"]}


# --- parsing ---------------------------------------------------------------------------------
def test_variant_names_are_canonical_and_the_reference_comes_first() -> None:
    opts = BenchmarkRunOptions.from_dict({"variants": "bf16+threads=1+compile, fp16"})
    assert opts.variants == (
        Variant(Dtype.bf16, compile=True, threads=1),
        Variant(Dtype.fp16),
    )
    assert opts.to_dict() == {"variants": ["bf16+compile+threads=1", "fp16"]}
    measured = measured_variants(opts.variants or ())
    assert measured[0] == REFERENCE_VARIANT and measured[0].name == "fp32"
    assert [v.name for v in measured[1:]] == ["bf16+compile+threads=1", "fp16"]
    listed_first = measured_variants(BenchmarkRunOptions(variants=("bf16", "fp32")).variants or ())
    assert [v.name for v in listed_first] == ["fp32", "bf16"]  # not measured twice
    assert parse_variant("fp32+threads=1").is_reference is False
    assert measured_variants(()) == []
    # newer modifiers spell after the older ones, so older names stay what they were
    late = BenchmarkRunOptions.from_dict({"variants": "fp32+fast_decode+tf32+compile"})
    assert late.variants == (Variant(Dtype.fp32, compile=True, tf32=True, fast_decode=True),)
    assert late.to_dict() == {"variants": ["fp32+compile+tf32+fast_decode"]}
    assert parse_variant("bf16+fast_decode").name == "bf16+fast_decode"


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("int8", "not a dtype"),
        ("bf16+fast", "unknown modifier 'fast'"),
        ("bf16+compile+compile", "+compile twice"),
        ("bf16,bf16", "listed twice"),
        ("bf16+compile+channels_last,bf16+channels_last+compile", "listed twice"),
        ("bf16+threads=0", "threads wants a whole number"),
        ("bf16+threads=two", "threads wants a whole number"),
        ("bf16+tf32", "+tf32 runs fp32 matmuls on TF32 tensor cores, so it needs fp32"),
        ("fp16+compile+tf32", "(write fp32+tf32)"),
        ("fp32+tf32+tf32", "+tf32 twice"),
        ("fp32+tf32=1", "unknown modifier 'tf32=1'"),
        ("fp32,,bf16", "an empty variant"),
    ],
)
def test_bad_variants_are_refused_when_queued(dataset: int, typed: str, why: str) -> None:
    with pytest.raises(MiradaError, match=re.escape(why)):
        BenchmarkRunOptions.from_dict({"variants": typed})
    result = run_cli(
        "queue",
        "--dataset",
        "tiny-demo",
        "--model",
        "hf-clip:mirada/demo-clip",
        "--task",
        "benchmark",
        "--variants",
        typed,
    )
    assert result.returncode != 0
    assert "--variants" in result.stderr and why in result.stderr
    assert run_cli("runs", "--json").stdout.strip() == "[]"  # nothing queued


def test_variants_flag_is_for_benchmarks_and_fp32_models(dataset: int) -> None:
    common = ("queue", "--dataset", "tiny-demo", "--model", "hf-clip:mirada/demo-clip")
    match = run_cli(*common, "--task", "match", "--variants", "bf16")
    assert match.returncode != 0 and "--task benchmark" in match.stderr
    dtype = run_cli(*common, "--task", "benchmark", "--variants", "bf16", "--dtype", "bf16")
    assert dtype.returncode != 0 and "drop --dtype" in dtype.stderr
    ok = run_cli(*common, "--task", "benchmark", "--variants", "fp32,bf16", "--json")
    assert ok.returncode == 0, ok.stderr
    (run_id,) = json.loads(ok.stdout)
    assert run_detail(run_id)["options"]["variants"] == ["fp32", "bf16"]


# --- agreement ---------------------------------------------------------------------------------
def test_agreement_figures() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 16)).astype(np.float32)
    same = cosine_agreement(a, a.copy())
    assert same.min == same.mean == 1.0 and same.n == 6
    noisy = cosine_agreement(a, a + rng.normal(scale=0.05, size=a.shape).astype(np.float32))
    assert 0.9 < noisy.min < noisy.mean < 1.0
    assert cosine_agreement(a[:2], -a[:2]).min == -1.0
    with pytest.raises(ValueError, match="shape"):
        cosine_agreement(a, a[:3])
    caps = caption_agreement(["a red square.", "a cat"], ["a red square.", "a blue circle"])
    assert caps.identical_share == 0.5 and 0.0 < caps.bleu4 < 1.0
    assert (
        caption_agreement(["a red square on the left"], ["a red square on the left"]).bleu4 > 0.999
    )


# --- one run, several variants ---------------------------------------------------------------
def test_fp32_and_bf16_in_one_run_with_agreement(dataset: int, models: dict[str, str]) -> None:
    run_id = _bench(dataset, models["clip"], "bf16,bf16+threads=1,bf16+channels_last")
    assert work() == 1
    variants = _variants(run_id)
    assert list(variants) == ["fp32", "bf16", "bf16+threads=1", "bf16+channels_last"]

    ref = variants["fp32"]
    assert ref["reference"] and not ref["requested"]  # added as the reference
    assert ref["min_cosine_to_fp32"] == 1.0 and ref["mean_cosine_to_fp32"] == 1.0
    assert ref["speedup_vs_fp32"] == 1.0

    bf16 = variants["bf16"]
    assert bf16["available"] and bf16["requested"] and not bf16["reference"]
    assert bf16["dtype"] == "bf16" and bf16["setup_s"] > 0
    assert 0.9 < bf16["min_cosine_to_fp32"] < 1.0
    assert bf16["min_cosine_to_fp32"] <= bf16["mean_cosine_to_fp32"] < 1.0
    assert bf16["image_cosine_to_fp32"]["n"] == 4  # the largest batch: 4 distinct items
    assert bf16["text_cosine_to_fp32"]["min"] >= bf16["min_cosine_to_fp32"] - 1e-12
    assert variants["bf16+threads=1"]["threads"] == 1
    assert variants["bf16+channels_last"]["channels_last"]

    for v in variants.values():
        assert v["images_per_s"] > 0 and v["texts_per_s"] > 0 and v["captions_per_s"] is None
        assert v["compile_s"] is None  # nothing compiled
        rows = {(b["op"], b["batch_size"]): b for b in v["batches"]}
        assert set(rows) == {(op, bs) for op in ("image_encode", "text_encode") for bs in (2, 4)}
        for row in rows.values():
            # at least timed_batches rounds, every variant timed in each
            assert row["repeats"] >= 2 and row["first_call_s"] > 0
            assert len(row["batch_seconds"]) == row["repeats"]
            assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"]
            assert row["peak_rss_mb"] > 0 and row["cuda_max_allocated_mb"] is None
        assert v["images_per_s"] == rows[("image_encode", 4)]["throughput_per_s"]

    # the run's own timings stay the reference's, under the names the Hardware page reads
    detail = run_detail(run_id)
    timings = {(t["name"], t["batch_size"]): t["value"] for t in detail["timings"]}
    assert timings[("image_encode_throughput_per_s", 4)] == ref["images_per_s"]
    assert detail["model_fingerprint"]["dtype"] == "fp32"

    text = run_cli("show", str(run_id))
    assert text.returncode == 0
    assert "variants" in text.stdout and "fp32 (reference)" in text.stdout
    assert "bf16+channels_last" in text.stdout


def test_a_plain_benchmark_run_has_its_dtype_as_the_one_variant(
    dataset: int, models: dict[str, str]
) -> None:
    run_id = queue.enqueue(
        dataset,
        models["clip"],
        Task.benchmark,
        options=BenchmarkRunOptions(
            batch_sizes=(2,), warmup_batches=1, timed_batches=2, max_seconds=0.5
        ),
    )
    assert work() == 1
    shown = json.loads(run_cli("show", str(run_id), "--json").stdout)
    assert shown["status"] == "succeeded"
    (only,) = shown["variants"]
    assert only["name"] == "fp32" and only["reference"] and only["requested"]
    assert only["available"] and only["images_per_s"] > 0 and only["speedup"] == 1.0
    assert only["task_metrics"] == {}  # nothing to compare: no accuracy stage
    names = {t["name"] for t in shown["timings"]}
    assert {"image_encode_throughput_per_s", "text_encode_latency_p95_ms"} <= names


def test_captioner_variants_compare_captions(dataset: int, models: dict[str, str]) -> None:
    run_id = _bench(dataset, models["caption"], "bf16", max_length=6, num_beams=1)
    assert work() == 1
    variants = _variants(run_id)
    for v in variants.values():
        assert v["images_per_s"] is None and v["min_cosine_to_fp32"] is None  # no embeddings
        assert v["captions_per_s"] > 0
    assert variants["fp32"]["caption_identical_share"] == 1.0
    assert variants["fp32"]["caption_bleu4_to_fp32"] > 0.999
    assert 0.0 <= variants["bf16"]["caption_identical_share"] <= 1.0
    assert variants["bf16"]["agreement_items"] == 4


def test_a_variant_the_device_cannot_run_is_reported_not_fatal(
    dataset: int, models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    class NoCompiler(torch.nn.Module):
        """What torch.compile gives where inductor finds no compiler: failing on first call."""

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("no working C++ compiler found\nmore details")

    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: NoCompiler())
    run_id = _bench(dataset, models["clip"], "bf16,fp32+compile")
    assert work() == 1
    variants = _variants(run_id)
    broken = variants["fp32+compile"]
    assert not broken["available"] and broken["images_per_s"] is None
    assert broken["unavailable_reason"] == (
        "image_encode at batch 2: RuntimeError: no working C++ compiler found"
    )
    assert broken["min_cosine_to_fp32"] is None and broken["batches"] == []
    assert variants["bf16"]["available"] and variants["bf16"]["images_per_s"] > 0


def test_tf32_off_cuda_is_reported_not_fatal(dataset: int, models: dict[str, str]) -> None:
    run_id = _bench(dataset, models["clip"], "fp32+tf32", batch_sizes=[2])
    assert work() == 1
    tf32 = _variants(run_id)["fp32+tf32"]
    assert tf32["tf32"] and not tf32["available"] and tf32["images_per_s"] is None
    assert tf32["unavailable_reason"] == "tf32 applies to CUDA matmuls only"


@pytest.mark.slow
def test_compile_where_available(
    dataset: int, models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.compile of the tiny image tower: measured with its compile time apart, or (no
    compiler, unsupported platform) reported unavailable with the reason.

    Dynamo captures the graph as in a real run, but the captured graph runs eagerly: inductor's
    C++ code generation costs about 45 s of CPU with a cold cache (every CI run) and proves
    nothing about our bookkeeping. `make bench` (benchmarks/bench_variants.py) compiles with
    inductor and reports its figures."""
    import torch

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    run_id = _bench(dataset, models["clip"], "fp32+compile", batch_sizes=[4])
    assert work() == 1
    compiled = _variants(run_id)["fp32+compile"]
    if compiled["available"]:
        assert compiled["compile_s"] > 0 and compiled["images_per_s"] > 0
        first = compiled["batches"][0]["first_call_s"]
        assert first > 4 / compiled["images_per_s"]  # compiling is not in the steady state
        assert compiled["min_cosine_to_fp32"] > 0.999  # same dtype: only kernels differ
    else:
        assert compiled["unavailable_reason"]
