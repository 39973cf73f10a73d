"""The Hardware page and `mirada show` for benchmark runs (issue 21 §4, Interfaces): the
overview lists every benchmark run of the seed, old runs included (timings only, and a variants
artifact with only the pre-issue keys); "What should I use?" follows the tolerance and withholds
a contended run's advice with the reason; repeated runs are separate series; hosts compare as a
ratio with a CI; no table shows None or nan; `show --json` carries every record field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
from cli_runner import run_cli
from dashboard_seed import CPU_VARIANTS, Seeded, SeedVariant, rounds_results
from run_helpers import work
from sqlalchemy import update
from streamlit.testing.v1 import AppTest
from test_pages import APP, PAGES

from mirada.benchmark_records import (
    CONTENDED_CPU_SHARE,
    Measurement,
    TaskMetric,
    VariantRecord,
    load_records,
)
from mirada.db import write_session
from mirada.db.models import Run
from mirada.domain import Dtype, Task
from mirada.metrics.formatting import MISSING
from mirada.metrics.names import ZEROSHOT_ACCURACY, i2t_recall
from mirada.queries import hardware, hardware_tables
from mirada.queries.speed_advice import Outcome, advise
from mirada.results import VARIANTS_ARTIFACT
from mirada.run_options import BenchmarkRunOptions

BENCHMARKS = (
    "bench_cpu",
    "bench_gpu",
    "bench_openclip",
    "bench_rounds",
    "bench_repeat",
    "bench_gpu_rounds",
    "bench_contended",
    "bench_old_variants",
)
R1 = i2t_recall(1)


# ---- pure: advice, overview, cross-host ratio ---------------------------------------------


def _record(
    name: str,
    speedup: float | None,
    ci: tuple[float, float] | None,
    *,
    low: float | None = None,
    cosine: float | None = None,
    **extra: object,
) -> VariantRecord:
    metrics = {}
    if low is not None:
        metrics[R1] = TaskMetric(90 + low + 1, 90, low + 1, (low, low + 2), 0.5, "mcnemar", 100)
    return VariantRecord(
        name=name,
        dtype=Dtype(name.split("+")[0]),
        reference=name == "fp32",
        speedup=speedup,
        speedup_ci=ci,
        min_cosine_to_fp32=cosine,
        task_metrics=metrics,
        **extra,  # type: ignore[arg-type]
    )


FP32 = _record("fp32", None, None)


def test_advice_needs_a_speed_up_above_one_and_accuracy_within_the_tolerance() -> None:
    bf16 = _record("bf16", 2.0, (1.8, 2.2), low=-0.8)
    fp16 = _record("fp16", 3.0, (2.7, 3.3), low=-3.0)
    advice = advise([FP32, bf16, fp16])
    assert advice.outcome == Outcome.variant and advice.variant == "bf16"
    assert "Image→text R@1 −0.8" in advice.summary
    assert advise([FP32, bf16, fp16], tolerance=5.0).variant == "fp16"  # the faster one
    strict = advise([FP32, bf16, fp16], tolerance=0.5)
    assert strict.outcome == Outcome.reference and strict.variant == "fp32"
    assert "may drop by up to 0.8 points" in strict.summary
    noisy = _record("bf16", 1.3, (0.9, 1.6), low=0.0)  # the CI reaches below 1: noise
    assert advise([FP32, noisy]).variant == "fp32"
    assert "not above 1 with 95% confidence" in advise([FP32, noisy]).summary
    old = _record("bf16", None, None, speedup_vs_fp32=2.0, cosine=0.9999)  # before rounds
    assert advise([FP32, old]).variant == "fp32" and "no CI" in advise([FP32, old]).summary


def test_without_task_metrics_advice_falls_back_to_the_cosine_and_says_so() -> None:
    bf16 = _record("bf16", 2.0, (1.8, 2.2), cosine=0.9995)
    advice = advise([FP32, bf16], cosine=0.999)
    assert advice.variant == "bf16" and "judged by cosine agreement" in advice.summary
    assert advise([FP32, bf16], cosine=0.9999).variant == "fp32"


def test_a_contended_measurement_withholds_the_advice_with_its_reason() -> None:
    bf16 = _record("bf16", 2.0, (1.8, 2.2), low=0.0)
    busy = Measurement(contended=True, other_cpu_share=0.48)
    advice = advise([FP32, bf16], busy)
    assert advice.outcome == Outcome.withheld and advice.variant is None
    assert "48% of the cores were busy with other work; re-run on an idle machine" in (
        advice.summary
    )
    quiet = Measurement(contended=False, other_cpu_share=CONTENDED_CPU_SHARE / 2)
    assert advise([FP32, bf16], quiet).variant == "bf16"
    assert advise([FP32]).outcome == Outcome.single


def _run(
    run_id: int, host: str, records: list[VariantRecord], **extra: object
) -> hardware.BenchmarkRun:
    fields = {"model": "m", "device": "cpu", "gpu": None, "origin": "local"}
    fields |= {"latency_only": False, "load_s": 2.0, "measurement": None}
    return hardware.BenchmarkRun(
        run_id=run_id,
        host=host,
        records=tuple(records),
        **(fields | extra),  # type: ignore[arg-type]
    )


def _seeded_records(
    variants: tuple[SeedVariant, ...], seed: int, **kw: object
) -> list[VariantRecord]:
    res = rounds_results(variants, seconds_per_item=0.004, batch_sizes=(1, 8), seed=seed, **kw)  # type: ignore[arg-type]
    return load_records(res.artifacts[VARIANTS_ARTIFACT][1])


def test_recommend_uses_the_newest_quiet_run_and_names_contended_ones_it_skipped() -> None:
    quiet = _seeded_records(CPU_VARIANTS, 1)
    busy = Measurement(contended=True, other_cpu_share=0.5)
    runs = [_run(1, "a", quiet), _run(2, "a", quiet, measurement=busy)]
    (rec,) = hardware.recommend(runs)
    assert rec.run_id == 1 and rec.advice.variant == "bf16"
    assert rec.notes and "run 2 not used" in rec.notes[0] and "50%" in rec.notes[0]
    (only_busy,) = hardware.recommend(runs[1:])
    assert only_busy.advice.outcome == Outcome.withheld


def test_overview_rows_fill_what_old_runs_have() -> None:
    new = _seeded_records(CPU_VARIANTS, 2)
    old = [dataclasses.replace(r, speedup=None, speedup_ci=None, images_per_s_ci=None,
                               task_metrics={}, rounds=None) for r in new]  # fmt: skip
    df = hardware.overview_rows([_run(1, "a", new), _run(2, "b", old)])
    assert list(df["run_id"]) == [1, 1, 1, 2, 2, 2]
    bf16 = df[(df["run_id"] == 1) & (df["variant"] == "bf16")].iloc[0]
    assert bf16["speedup_ci_low"] > 1 and bf16["throughput_ci_low"] < bf16["throughput"]
    assert bf16["accuracy_metric"] == "Text→image R@1" and bf16["accuracy_ci_low"] == -0.8
    assert bf16["contended"] is None  # no measurement artifact: never checked, not "no"
    old_bf16 = df[(df["run_id"] == 2) & (df["variant"] == "bf16")].iloc[0]
    assert pd.isna(old_bf16["speedup_ci_low"]) and pd.isna(old_bf16["accuracy_delta"])
    shown = hardware_tables.overview_display(df)
    cells = shown.drop(columns=["run_id"]).to_numpy().ravel()
    assert all(isinstance(c, str) for c in cells)
    assert not any(c in ("None", "nan", "NaN") or "None" in c or "nan" in c for c in cells)
    assert MISSING in set(shown["speed-up (×, 95% CI)"])


def test_cross_host_ratio_has_a_ci_only_when_both_sides_stored_batch_times() -> None:
    slow = _seeded_records(CPU_VARIANTS, 3)
    fast = _seeded_records(
        tuple(dataclasses.replace(v, factor=v.factor * 4) for v in CPU_VARIANTS), 4
    )
    df = hardware.cross_host_rows([_run(1, "slow", slow), _run(2, "fast", fast)])
    fp32 = df[df["variant"] == "fp32"].iloc[0]
    assert fp32["faster"] == "fast (cpu)" and fp32["slower_run"] == 1
    assert fp32["ci_low"] < fp32["ratio"] < fp32["ci_high"] and 3 < fp32["ratio"] < 5
    unavailable = {"fp16"}
    assert not set(df["variant"]) & unavailable
    bare = [dataclasses.replace(r, batches=tuple(dataclasses.replace(b, batch_seconds=())
                                                 for b in r.batches)) for r in slow]  # fmt: skip
    df = hardware.cross_host_rows([_run(1, "slow", bare), _run(2, "fast", fast)])
    assert df["ci_low"].isna().all() and df["note"].str.contains("no CI").all()
    assert hardware.cross_host_rows([_run(1, "a", slow), _run(2, "a", fast)]).empty


# ---- the seeded home ------------------------------------------------------------------------


def test_overview_lists_every_benchmark_run_old_ones_included(seeded_env: Seeded) -> None:
    df = hardware.overview()
    assert set(df["run_id"]) == {seeded_env.runs[k] for k in BENCHMARKS}
    old = df[df["run_id"] == seeded_env.runs["bench_cpu"]].iloc[0]  # timings only
    assert old["throughput"] > 0 and old["load_s"] > 0 and pd.isna(old["speedup"])
    assert old["peak_rss_mb"] > 0 and pd.isna(old["added_peak_mb"])
    pre = df[df["run_id"] == seeded_env.runs["bench_old_variants"]]  # pre-issue keys only
    assert set(pre["variant"]) == {"fp32", "fp16"} and pre["rounds"].isna().all()
    assert pre["contended"].isna().all()
    busy = df[df["run_id"] == seeded_env.runs["bench_contended"]]
    assert busy["contended"].all() and busy["contention_reason"].str.contains("48%").all()
    detail = hardware.detail("hf-clip:mirada/demo-clip")
    repeated = {s for s in detail["series"] if s.endswith("lab-cpu · bf16")}
    rounds, repeat = seeded_env.runs["bench_rounds"], seeded_env.runs["bench_repeat"]
    assert repeated == {f"run {rounds} · lab-cpu · bf16", f"run {repeat} · lab-cpu · bf16"}
    cross = hardware.cross_host()
    clip = cross[(cross["model"] == "hf-clip:mirada/demo-clip") & (cross["variant"] == "bf16")]
    assert len(clip) == 1 and clip.iloc[0]["slower_run"] == repeat  # the newest CPU run
    assert clip.iloc[0]["ci_low"] < clip.iloc[0]["ratio"] < clip.iloc[0]["ci_high"]


def _open(**params: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGES["hardware"])
    for key, value in params.items():
        at.query_params[key] = str(value)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _markdown(at: AppTest) -> str:
    """The page's Markdown as it reads (markdown_text's escapes removed)."""
    return "\n".join(m.value for m in at.markdown).replace("\\", "")


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The rendered table that has `column` (AppTest finds dataframes by position only)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _tables_have_no_none(at: AppTest) -> None:
    for frame in at.dataframe:
        text = frame.value.astype(str)
        assert not text.isin(["None", "nan", "NaN", "<NA>"]).any().any(), frame.value


def test_page_overview_advice_and_details(seeded_env: Seeded) -> None:
    at = _open()
    table = _table(at, "run")
    runs = {int(link.rsplit("=", 1)[1]) for link in table["run"]}
    assert runs == {seeded_env.runs[k] for k in BENCHMARKS}
    assert {"load (s)", "added peak (MB)", "process RSS (MB)", "contended"} <= set(table.columns)
    _tables_have_no_none(at)
    # the contended run: flagged, and its advice withheld with the reason, never a "use"
    warnings = "\n".join(w.value for w in at.warning).replace("\\", "")
    assert "48% of the cores were busy with other work" in warnings
    assert "no recommendation" in warnings
    assert "use bf16" in _markdown(at)  # the quiet demo-CLIP runs
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any('"type": "log"' in s and "ms per item" in s for s in specs)  # one log axis
    assert any("Speed-up against accuracy cost" in s for s in specs)
    assert all('"labelLimit": 0' in s for s in specs)
    ratios = _table(at, "throughput ratio (×, 95% CI)")["throughput ratio (×, 95% CI)"]
    assert ratios.str.contains("[", regex=False).all()  # both runs stored their batch times
    at.number_input(key="hardware_tolerance").set_value(0.5).run()
    assert not at.exception
    assert "use bf16" not in _markdown(at) and "use fp32 (the reference)" in _markdown(at)


def test_a_run_link_opens_its_model_and_filters_apply(seeded_env: Seeded) -> None:
    at = _open(run=seeded_env.runs["bench_contended"])
    assert at.selectbox(key="hardware_model").value == "open-clip:ViT-B-32/laion2b_s34b_b79k"
    _tables_have_no_none(at)
    at.multiselect(key="hardware_hosts").set_value(["gpu-box"]).run()
    assert not at.exception
    table = _table(at, "run")
    assert set(table["host"]) == {"gpu-box"}
    at.selectbox(key="hardware_sort").set_value("speed-up (largest first)").run()
    assert not at.exception
    first = _table(at, "run").iloc[0]
    assert first["variant"] == "fp16" and first["model"] == "mirada/demo-clip"


def test_latency_only_models_are_labelled(seeded_copy: Seeded) -> None:
    with write_session() as s:
        s.execute(
            update(Run)
            .where(Run.id == seeded_copy.runs["bench_openclip"])
            .values(model_id="open-clip:random:ViT-B-32")
        )
    at = _open()
    assert any("[latency only]" in m for m in _table(at, "run")["model"])
    at.selectbox(key="hardware_model").set_value("open-clip:random:ViT-B-32").run()
    assert not at.exception
    assert any("Latency only" in w.value for w in at.warning)


# ---- mirada show ----------------------------------------------------------------------------


def test_show_json_carries_every_record_field_and_the_measurement(seeded_env: Seeded) -> None:
    shown = json.loads(run_cli("show", str(seeded_env.runs["bench_rounds"]), "--json").stdout)
    variants = {v["name"]: v for v in shown["variants"]}
    assert {f.name for f in dataclasses.fields(VariantRecord)} <= set(variants["bf16"])
    bf16 = variants["bf16"]
    lo, hi = bf16["images_per_s_ci"]
    assert lo < bf16["images_per_s"] < hi and bf16["speedup_ci"][0] > 1
    assert bf16["contended"] is False and bf16["rounds"] == 12
    metric = bf16["task_metrics"][ZEROSHOT_ACCURACY]
    assert {"value", "delta", "delta_ci", "p_value"} <= set(metric)
    assert variants["fp32"]["task_metrics"] == {}
    assert shown["measurement"]["contended"] is False
    assert {"load_before", "load_after", "other_cpu_share"} <= set(shown["measurement"])
    old = json.loads(run_cli("show", str(seeded_env.runs["bench_old_variants"]), "--json").stdout)
    assert old["measurement"] is None and all(v["speedup_ci"] is None for v in old["variants"])
    plain = json.loads(run_cli("show", str(seeded_env.runs["bench_cpu"]), "--json").stdout)
    assert plain["measurement"] is None and "variants" not in plain
    match = json.loads(run_cli("show", str(seeded_env.runs["clip"]), "--json").stdout)
    assert "measurement" not in match


def test_show_text_prints_cis_conditions_and_withholds_advice_when_contended(
    seeded_env: Seeded,
) -> None:
    quiet = run_cli("show", str(seeded_env.runs["bench_rounds"])).stdout
    assert "speed-up [95% CI]" in quiet and "fp32 (reference)" in quiet
    assert "measured: quiet" in quiet and "advice: use bf16" in quiet
    assert "McNemar p" in quiet and "None" not in quiet
    busy = run_cli("show", str(seeded_env.runs["bench_contended"])).stdout
    assert "measured: contended" in busy
    assert "advice: no recommendation: measured under CPU contention: 48%" in busy
    assert "use " not in busy.split("advice:")[1]
    old = run_cli("show", str(seeded_env.runs["bench_old_variants"])).stdout
    assert "conditions not recorded" in old and "fp16" in old


def test_a_real_benchmark_run_reads_back(mirada_home: Path, tmp_path: Path) -> None:
    """The read models on a run the worker measured (not a hand-made record)."""
    from mirada import queue
    from mirada.datasets import import_dataset
    from mirada.demo.synthetic import write_demo_dataset

    ds = import_dataset(write_demo_dataset(tmp_path / "demo", split="demo", n=4), name="d").id
    options = {"batch_sizes": [1, 2], "warmup_batches": 1, "timed_batches": 2, "max_seconds": 0.5}
    run_id = queue.enqueue(
        ds, "hf-clip:mirada/demo-clip", Task.benchmark, device="cpu",
        options=BenchmarkRunOptions.from_dict({**options, "variants": "fp32,bf16"}),
    )  # fmt: skip
    assert work() == 1
    df = hardware.overview()
    assert set(df["variant"]) == {"fp32", "bf16"} and (df["throughput"] > 0).all()
    detail = hardware.detail("hf-clip:mirada/demo-clip")
    assert set(detail["batch_size"]) == {1, 2} and set(detail["run_id"]) == {run_id}
    assert (detail["latency_p95_ms"] >= detail["latency_p50_ms"]).all()
    (rec,) = hardware.recommendations()
    assert rec.run_id == run_id and rec.advice.outcome != Outcome.single
    shown = hardware_tables.overview_display(df)
    assert (
        not shown.drop(columns=["run_id"]).apply(lambda c: c.str.contains("None|nan")).any().any()
    )
