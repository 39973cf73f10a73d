"""The Hardware page (issue 14 §4) under AppTest: per-operation panels, variants with their
agreement, the "what should I use" line following the user's threshold, imported hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from dashboard_seed import Seeded
from run_helpers import work
from sqlalchemy import update
from streamlit.testing.v1 import AppTest
from test_pages import APP, PAGES

from mirada.db import write_session
from mirada.db.models import Run, RunArtifact
from mirada.queries.hardware import benchmark_timings, recommend, variant_summary
from mirada.results import VARIANTS_ARTIFACT
from mirada.run_options import BenchmarkRunOptions


def _batch(op: str, bs: int, rate: float) -> dict[str, object]:
    return {
        "op": op,
        "batch_size": bs,
        "repeats": 3,
        "throughput_per_s": rate * bs**0.5,
        "latency_p50_ms": 1000 / rate,
        "latency_p95_ms": 1200 / rate,
        "peak_rss_mb": 900.0,
        "cuda_max_allocated_mb": None,
        "first_call_s": None,
    }


def _variant(name: str, rate: float, cosine: float | None, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "dtype": name.split("+")[0],
        "reference": name == "fp32",
        "available": True,
        "unavailable_reason": None,
        "images_per_s": rate * 8**0.5,
        "texts_per_s": None,
        "captions_per_s": None,
        "speedup_vs_fp32": None,
        "min_cosine_to_fp32": cosine,
        "batches": [
            _batch(op, bs, rate) for op in ("image_encode", "text_encode") for bs in (1, 8)
        ],
        **extra,
    }


def _seed_variants(seeded: Seeded) -> int:
    """A variants artifact on the CPU demo-CLIP benchmark run, and the GPU one imported."""
    run_id = seeded.runs["bench_cpu"]
    records = [
        _variant("fp32", 10.0, None),
        _variant("bf16", 20.0, 0.9995),
        _variant("fp16", 30.0, None, available=False, unavailable_reason="no fp16 on this CPU"),
    ]
    with write_session() as s:
        s.add(
            RunArtifact(
                run_id=run_id,
                name=VARIANTS_ARTIFACT,
                content_type="application/json",
                data=json.dumps(records).encode(),
            )
        )
        s.execute(
            update(Run).where(Run.id == seeded.runs["bench_gpu"]).values(origin_host="gpu-box")
        )
    return run_id


def _open() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGES["hardware"])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_queries_list_variants_and_imported_hosts(seeded_copy: Seeded) -> None:
    run_id = _seed_variants(seeded_copy)
    timings = benchmark_timings()
    mine = timings[timings["run_id"] == run_id]
    assert set(mine["variant"]) == {"fp32", "bf16", "fp16"}
    assert set(mine["repeats"]) == {3}
    gpu = timings[timings["run_id"] == seeded_copy.runs["bench_gpu"]]
    assert set(gpu["host"]) == {"gpu-box"} and set(gpu["origin"]) == {"imported"}
    summary = variant_summary()
    assert summary.set_index("variant").loc["fp32", "min_cosine_to_fp32"] == 1.0
    assert list(recommend(summary, 0.999)["variant"]) == ["bf16"]
    assert list(recommend(summary, 0.9999)["variant"]) == ["fp32"]  # unavailable fp16 never


def test_recommend_skips_variants_below_the_threshold() -> None:
    summary = pd.DataFrame(
        [
            {"run_id": 1, "model": "m", "host": "h", "device": "cpu", "variant": v,
             "reference": v == "fp32", "available": True, "unavailable_reason": None,
             "images_per_s": speed, "texts_per_s": None, "captions_per_s": None,
             "speedup_vs_fp32": None, "min_cosine_to_fp32": cos}
            for v, speed, cos in (("fp32", 10.0, 1.0), ("bf16", 20.0, 0.99), ("fp16", 15.0, 0.9999))
        ]
    )  # fmt: skip
    assert list(recommend(summary, 0.999)["variant"]) == ["fp16"]
    assert list(recommend(summary, 0.9)["variant"]) == ["bf16"]
    assert recommend(summary, 1.5).empty


def test_page_panels_and_recommendation_follow_the_threshold(seeded_copy: Seeded) -> None:
    _seed_variants(seeded_copy)
    at = _open()
    assert at.selectbox(key="hardware_model").value == "hf-clip:mirada/demo-clip"
    subheaders = [h.value for h in at.subheader]
    assert "Image encode" in subheaders and "Text encode" in subheaders
    assert "What should I use?" in subheaders
    assert "use **bf16**" in _markdown(at)
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any('"facet"' in spec and '"independent"' in spec for spec in specs)
    assert any("Speed vs agreement" in spec for spec in specs)
    assert all('"labelLimit": 0' in spec for spec in specs if '"config"' in spec)
    at.number_input(key="hardware_threshold").set_value(0.9999).run()
    assert not at.exception
    assert "use **fp32**" in _markdown(at) and "use **bf16**" not in _markdown(at)


def test_page_without_variants_says_how_to_get_them(seeded_env: Seeded) -> None:
    at = _open()
    at.selectbox(key="hardware_model").set_value("open-clip:ViT-B-32/laion2b_s34b_b79k").run()
    assert not at.exception
    assert any("--variants" in i.value for i in at.info)


def test_latency_only_models_are_labelled(seeded_copy: Seeded) -> None:
    with write_session() as s:
        s.execute(
            update(Run)
            .where(Run.id == seeded_copy.runs["bench_openclip"])
            .values(model_id="open-clip:random:ViT-B-32")
        )
    at = _open()
    assert any("[latency only]" in o for o in at.selectbox(key="hardware_model").options)
    assert not any("Latency only" in w.value for w in at.warning)  # demo CLIP: real weights
    at.selectbox(key="hardware_model").set_value("open-clip:random:ViT-B-32").run()
    assert not at.exception
    assert any("Latency only" in w.value for w in at.warning)


def test_queries_read_what_a_real_variant_run_stores(mirada_home: Path, tmp_path: Path) -> None:
    """The page's read models on a variant run the worker measured (not a hand-made record)."""
    from mirada import queue
    from mirada.datasets import import_dataset
    from mirada.demo.synthetic import write_demo_dataset

    ds = import_dataset(write_demo_dataset(tmp_path / "demo", split="demo", n=4), name="d").id
    options = {"batch_sizes": [1, 2], "warmup_batches": 1, "timed_batches": 2}
    run_id = queue.enqueue(
        ds, "hf-clip:mirada/demo-clip", "benchmark", device="cpu",
        options=BenchmarkRunOptions.from_dict({**options, "variants": "fp32,bf16"}),
    )  # fmt: skip
    work()
    timings = benchmark_timings()
    rows = timings[timings["run_id"] == run_id]
    assert set(rows["variant"]) == {"fp32", "bf16"}
    assert set(rows["batch_size"]) == {1, 2} and set(rows["repeats"]) == {2}
    assert {"image_encode", "text_encode"} <= set(rows["op"])
    assert (rows["latency_p95_ms"] >= rows["latency_p50_ms"]).all()
    summary = variant_summary()
    assert set(summary["variant"]) == {"fp32", "bf16"}
    best = recommend(summary, 0.0)
    assert len(best) == 1 and best.iloc[0]["unit"] == "images/s"
    assert best.iloc[0]["speed"] == summary["images_per_s"].max()


def test_a_plain_benchmark_run_shows_its_repeats(mirada_home: Path, tmp_path: Path) -> None:
    from mirada import queue
    from mirada.datasets import import_dataset
    from mirada.demo.synthetic import write_demo_dataset

    ds = import_dataset(write_demo_dataset(tmp_path / "demo", split="demo", n=2), name="d").id
    options = {"batch_sizes": [1], "warmup_batches": 0, "timed_batches": 3}
    run_id = queue.enqueue(ds, "hf-clip:mirada/demo-clip", "benchmark", options=options)
    work()
    rows = benchmark_timings()
    rows = rows[rows["run_id"] == run_id]
    assert not rows.empty and set(rows["repeats"]) == {3} and set(rows["variant"]) == {"fp32"}
    assert set(rows["origin"]) == {"local"} and not rows["latency_only"].any()
