"""Seed a MIRADA_HOME with datasets and finished runs for dashboard tests and benchmarks.

Runs go through the real queue (enqueue, register_worker, claim_next, finish_run/fail_run)
with results from the real metric builders (mirada.metrics.report) on synthetic embeddings:
noisy copies of per-image "concepts", so retrieval is good but imperfect. No model code runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage

from mirada.benchmark_records import (
    BatchRow,
    InputPipeline,
    Measurement,
    TaskMetric,
    VariantRecord,
    contention_reason,
    dump_measurement,
    dump_records,
)
from mirada.datasets import import_dataset, load_items
from mirada.db import dispose_engines, get_engine
from mirada.demo.synthetic import write_demo_dataset
from mirada.domain import Dtype
from mirada.metrics.names import (
    IMAGE_ENCODE,
    LATENCY_P50_MS,
    LATENCY_P95_MS,
    LOAD_S,
    TEXT_ENCODE,
    THROUGHPUT_PER_S,
    ZEROSHOT_ACCURACY,
    i2t_recall,
    t2i_recall,
    timing_key,
)
from mirada.metrics.report import build_caption_report, build_match_report, rerank_inputs
from mirada.metrics.retrieval import class_prompts
from mirada.queue import (
    claim_next,
    enqueue,
    fail_run,
    finish_run,
    register_worker,
    stop_worker,
)
from mirada.results import (
    MEASUREMENT_ARTIFACT,
    VARIANTS_ARTIFACT,
    EmbeddingSet,
    RunResults,
    TimingValue,
)

if TYPE_CHECKING:
    import pytest

DIM = 64
I2T_R1, T2I_R1 = i2t_recall(1), t2i_recall(1)


@dataclass
class Seeded:
    home: Path
    dataset_id: int
    runs: dict[str, int] = field(default_factory=dict)


def use_home(home: Path) -> None:
    """Point this process at `home` (default SQLite inside it) and migrate."""
    os.environ["MIRADA_HOME"] = str(home)
    os.environ.pop("MIRADA_DATABASE_URL", None)
    dispose_engines()
    get_engine()


def _profile(host: str, gpu: str | None) -> dict[str, Any]:
    return {
        "hostname": host,
        "os": "Linux 6.1",
        "cpu_model": "AMD EPYC 7B13" if gpu else "Intel Xeon E5-2690",
        "cpu_cores": 16 if gpu else 8,
        "ram_bytes": (128 if gpu else 32) * 2**30,
        "gpu_name": gpu,
        "gpu_memory_bytes": 80 * 2**30 if gpu else None,
        "python_version": "3.12.3",
        "torch_version": "2.5.1",
        "cuda_version": "12.4" if gpu else None,
        "transformers_version": "4.46.0",
        "open_clip_version": "2.29.0",
        "details": {},
    }


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_embeddings(
    categories: list[str | None],
    caption_image: np.ndarray,
    *,
    noise: float,
    seed: int,
    dim: int = DIM,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(image_emb, text_emb, class_emb [C, D], class names): concept + category + noise."""
    rng = np.random.default_rng(seed)
    n = len(categories)
    names = sorted({c for c in categories if c})
    cat_vec = {c: rng.normal(size=dim) for c in names}
    concept = rng.normal(size=(n, dim)) + np.stack(
        [cat_vec[c] * 1.2 if c else np.zeros(dim) for c in categories]
    )
    img = _normalise(concept + noise * rng.normal(size=(n, dim)))
    txt = _normalise(concept[caption_image] + noise * rng.normal(size=(len(caption_image), dim)))
    cls = _normalise(
        np.stack([cat_vec[c] for c in names]) + 0.5 * rng.normal(size=(len(names), dim))
    )
    return img, txt, cls, names


def match_results(
    dataset_id: int, *, noise: float, seed: int, rerank: bool = False, n_resamples: int = 200
) -> RunResults:
    items = load_items(dataset_id)
    caption_ids = [cid for it in items for cid, _ in it.captions]
    caption_image = np.array([i for i, it in enumerate(items) for _ in it.captions], np.int64)
    categories: list[str | None] = [it.category for it in items]
    img, txt, cls, names = synthetic_embeddings(categories, caption_image, noise=noise, seed=seed)
    assert len(class_prompts(names)) == len(names)
    cand = scores = None
    if rerank:
        cand = rerank_inputs(img, txt, 16)
        rng = np.random.default_rng(seed + 1)
        own = caption_image[cand] == np.arange(len(items))[:, None]
        scores = np.clip(0.3 + 0.5 * own + 0.25 * rng.normal(size=cand.shape), 0, 1)
    report = build_match_report(
        img,
        txt,
        caption_image,
        [it.item_id for it in items],
        caption_ids,
        categories,
        class_emb=cls if len(names) >= 2 else None,
        class_names=names if len(names) >= 2 else None,
        rerank_candidates=cand,
        rerank_scores=scores,
        n_resamples=n_resamples,
    )
    return RunResults(
        metrics=list(report.metrics),
        items=list(report.items),
        timings=[
            TimingValue("load_s", 1.5, "s"),
            TimingValue("image_encode_per_s", 250.0, "items/s"),
        ],
        embeddings=[
            EmbeddingSet("image", np.array([it.item_id for it in items], np.int64), img),
            EmbeddingSet("text", np.array(caption_ids, np.int64), txt),
        ],
        artifacts=dict(report.artifacts),
    )


def caption_results(dataset_id: int, *, seed: int = 3) -> RunResults:
    """Generated captions: mostly a shortened reference, some repetitive or generic."""
    rng = np.random.default_rng(seed)
    items = load_items(dataset_id)
    references = {it.item_id: [t for _, t in it.captions] for it in items}
    predictions: dict[int, str] = {}
    for i, it in enumerate(items):
        words = it.captions[0][1].split()
        if i % 11 == 0:
            predictions[it.item_id] = "a shape a shape a shape on a background"
        elif i % 7 == 0:
            predictions[it.item_id] = f"a {words[2]} {words[2]} {words[3]}"
        else:
            cut = int(rng.integers(4, len(words) + 1))
            predictions[it.item_id] = " ".join(words[:cut])
    report = build_caption_report(references, predictions, n_resamples=200)
    return RunResults(
        metrics=list(report.metrics),
        captions=list(report.captions),
        timings=[TimingValue("load_s", 2.0, "s")],
        artifacts=dict(report.artifacts),
    )


def benchmark_results(*, gpu: bool, scale: float, batch_sizes: tuple[int, ...]) -> RunResults:
    timings = [TimingValue("load_s", 3.2 * scale, "s")]
    for bs in batch_sizes:
        for op, base in (("image_encode", 12.0), ("text_encode", 3.0)):
            p50 = base * scale / (bs**0.6) * (0.2 if gpu else 1.0)
            timings += [
                TimingValue(f"{op}_latency_p50_ms", p50, "ms", bs),
                TimingValue(f"{op}_latency_p95_ms", p50 * 1.3, "ms", bs),
                TimingValue(f"{op}_throughput_per_s", 1000.0 / p50, "items/s", bs),
                TimingValue(f"{op}_peak_rss_mb", 900 + 40 * bs * scale, "MB", bs),
            ]
            if gpu:
                timings.append(TimingValue(f"{op}_cuda_max_allocated_mb", 300 + 25 * bs, "MB", bs))
    return RunResults(timings=timings)


# ---- benchmark runs measured in interleaved rounds (issue 21), from synthetic batch times ----

OLD_STYLE_KEYS = (  # the fields a variants artifact had before issue 21
    "name", "dtype", "reference", "available", "unavailable_reason", "images_per_s",
    "texts_per_s", "captions_per_s", "speedup_vs_fp32", "min_cosine_to_fp32", "batches",
)  # fmt: skip


def _batch(
    op: str, bs: int, seconds: np.ndarray, reference: np.ndarray | None, added_mb: float
) -> BatchRow:
    """One op at one batch size from its timed batches, summarised by the benchmark's own
    batch_row (a process at 1.1 GB RSS, 97% CPU efficiency, `added_mb` plus 2 MB per item)."""
    from mirada.worker.tasks.benchmark import Timed, batch_row

    def timed(values: np.ndarray) -> list[Timed]:
        return [Timed(float(t), cpu_seconds=0.97 * float(t), peak_rss=1100 * 2**20) for t in values]

    return batch_row(
        op,
        bs,
        timed(seconds),
        reference=timed(reference) if reference is not None else None,
        weights_bytes=round((added_mb + 2.0 * bs) * 2**20),
    )


def _task_metrics(losses: dict[str, float], n: int = 120) -> dict[str, TaskMetric]:
    """Task-metric differences in points: `losses` maps a metric key to its mean difference;
    the CI is +-0.8 points around it."""
    out = {}
    for key, delta in losses.items():
        reference = 90.0
        out[key] = TaskMetric(
            value=reference + delta,
            reference=reference,
            delta=delta,
            delta_ci=(delta - 0.8, delta + 0.8),
            p_value=1.0 if delta == 0 else 0.5,
            test="mcnemar_exact",
            n=n,
            changed=int(abs(delta) * 2) + 1,
        )
    return out


@dataclass(frozen=True)
class SeedVariant:
    name: str
    factor: float  # how much faster than the reference (1 for it)
    cosine: float | None = None
    losses: dict[str, float] = field(default_factory=dict)  # task-metric deltas in points
    available: bool = True


# bf16 within a point on every task metric (lowest CI bound -0.8), fp16 unavailable on a CPU
CPU_VARIANTS = (
    SeedVariant("fp32", 1.0),
    SeedVariant("bf16", 2.0, 0.99985, {I2T_R1: 0.4, T2I_R1: 0.0, ZEROSHOT_ACCURACY: 0.4}),
    SeedVariant("fp16", 1.0, available=False),
)
# fp16 is faster but costs 3 points of zero-shot accuracy; bf16 qualifies (lowest bound -0.9)
GPU_VARIANTS = (
    SeedVariant("fp32", 1.0),
    SeedVariant("bf16", 2.6, 0.9998, {I2T_R1: 0.0, T2I_R1: -0.1, ZEROSHOT_ACCURACY: 0.0}),
    SeedVariant("fp16", 3.1, 0.9999, {I2T_R1: -0.4, T2I_R1: 0.0, ZEROSHOT_ACCURACY: -3.0}),
)


def rounds_results(
    variants: tuple[SeedVariant, ...],
    *,
    seconds_per_item: float,
    batch_sizes: tuple[int, ...],
    seed: int,
    rounds: int = 12,
    contended_share: float | None = None,
    load_s: float = 3.0,
) -> RunResults:
    """A benchmark run with "variants" and "measurement" artifacts as the worker writes them
    (records through `benchmark_records.dump_records`), the reference's timings and load time
    (`contended_share`: the CPU share other processes took; None for a quiet machine)."""
    rng = np.random.default_rng(seed)
    noise = 0.25 if contended_share else 0.03
    records: list[VariantRecord] = []
    reference_seconds: dict[tuple[str, int], np.ndarray] = {}
    for v in variants:
        if not v.available:
            records.append(
                VariantRecord(v.name, Dtype(v.name.split("+")[0]), available=False,
                              unavailable_reason=f"{v.name} is not supported on this device")
            )  # fmt: skip
            continue
        batches = []
        for op, cost in ((IMAGE_ENCODE, 1.0), (TEXT_ENCODE, 0.25)):
            for bs in batch_sizes:
                mean = seconds_per_item * cost * bs**0.7 / v.factor
                secs = np.abs(mean * (1 + noise * rng.standard_normal(rounds))) + 1e-4
                ref = reference_seconds.get((op, bs))
                batches.append(_batch(op, bs, secs, ref, 300.0 / v.factor))
                reference_seconds.setdefault((op, bs), secs)
        top = max((b for b in batches if b.op == IMAGE_ENCODE), key=lambda b: b.batch_size)
        reference = v is variants[0]
        records.append(
            VariantRecord(
                name=v.name,
                dtype=Dtype(v.name.split("+")[0]),
                threads=2,
                reference=reference,
                requested=True,
                images_per_s=top.throughput_per_s,
                texts_per_s=max(
                    (b for b in batches if b.op == TEXT_ENCODE), key=lambda b: b.batch_size
                ).throughput_per_s,
                speedup_vs_fp32=top.speedup,
                min_cosine_to_fp32=None if reference else v.cosine,
                agreement_items=120,
                batches=tuple(batches),
                images_per_s_ci=top.throughput_ci,
                speedup=top.speedup,
                speedup_ci=top.speedup_ci,
                contended=contended_share is not None,
                rounds=rounds,
                task_metrics={} if reference else _task_metrics(v.losses),
                top1_changed=None if reference else 3,
                accuracy_items=120,
                weights_mb=600.0 / v.factor,
                added_peak_mb=top.added_peak_mb,
            )
        )
    contended = contended_share is not None
    measurement = Measurement(
        contended=contended,
        reason=contention_reason(contended_share) if contended_share is not None else None,
        load_before=1.4 if contended else 0.2,
        load_after=1.6 if contended else 0.3,
        other_cpu_share=contended_share if contended_share is not None else 0.02,
        cpu_efficiency=0.52 if contended else 0.97,
        cpus=2,
        threads=2,
        interop_threads=2,
        cpu_model="Intel Xeon E5-2690",
        max_seconds=60.0,
        target_rel_ci=0.05,
        min_rounds=5,
        seconds=42.0,
        input_pipeline=InputPipeline(
            images=120, batch_size=max(batch_sizes), per_core_images_per_s=224.0,
            per_core_ci=(218.0, 230.0), model_images_per_s=records[0].images_per_s,
            bound="model" if (records[0].images_per_s or 0) < 224.0 else "input",
        ),
    )  # fmt: skip
    timings = [TimingValue(LOAD_S, load_s, "s")]
    for b in records[0].batches:
        for stat, value, unit in (
            (LATENCY_P50_MS, b.latency_p50_ms, "ms"),
            (LATENCY_P95_MS, b.latency_p95_ms, "ms"),
            (THROUGHPUT_PER_S, b.throughput_per_s, "items/s"),
        ):
            timings.append(TimingValue(timing_key(b.op, stat), value, unit, b.batch_size))
    artifacts = {
        VARIANTS_ARTIFACT: ("application/json", dump_records(records)),
        MEASUREMENT_ARTIFACT: ("application/json", dump_measurement(measurement)),
    }
    return RunResults(timings=timings, artifacts=artifacts)


def old_style_variants_results() -> RunResults:
    """A variants artifact as Mirada wrote it before issue 21: only OLD_STYLE_KEYS, no
    measurement artifact; the reference's timings beside it."""
    new = rounds_results(
        (SeedVariant("fp32", 1.0), SeedVariant("fp16", 3.0, cosine=0.9991)),
        seconds_per_item=0.002,
        batch_sizes=(1, 8, 32),
        seed=11,
    )
    records = json.loads(new.artifacts[VARIANTS_ARTIFACT][1])
    old_batch = ("op", "batch_size", "repeats", "throughput_per_s", "latency_p50_ms",
                 "latency_p95_ms", "peak_rss_mb", "cuda_max_allocated_mb",
                 "first_call_s")  # fmt: skip
    old = [
        {k: r[k] for k in OLD_STYLE_KEYS if k != "batches"}
        | {"batches": [{k: b[k] for k in old_batch} for b in r["batches"]]}
        for r in records
    ]
    return RunResults(
        timings=new.timings,
        artifacts={VARIANTS_ARTIFACT: ("application/json", json.dumps(old).encode())},
    )


def _finish(
    run_id: int, worker: int, devices: list[str], profile: int | None, res: RunResults
) -> None:
    claimed = claim_next(worker, devices, [])
    assert claimed is not None and claimed.id == run_id, (claimed, run_id)
    device = "cuda" if "cuda" in devices else "cpu"
    assert finish_run(
        run_id,
        worker,
        res,
        hardware_profile_id=profile,
        model_fingerprint=None,
        resolved_device=device,
    )


def shared_seed(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The demo seed, built once per test session and shared by pytest-xdist's processes (it
    costs about 12 s of CPU, caption metrics included): the first process builds it under the
    session's common temporary folder while holding a lock; the others wait for the lock and
    read what it recorded. Nobody may write into it (see `seeded_copy`). Changes the process's
    MIRADA_HOME when it builds (as `seed_demo` does); callers restore theirs."""
    from filelock import FileLock  # with torch and huggingface_hub; benchmarks need none

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "shared-dashboard-seed"
    record = folder / "seeded.json"
    with FileLock(str(root / "shared-dashboard-seed.lock")):
        if record.is_file():
            saved = json.loads(record.read_text(encoding="utf-8"))
            return Seeded(Path(saved["home"]), saved["dataset_id"], saved["runs"])
        folder.mkdir(parents=True, exist_ok=True)
        seeded = seed_demo(folder / "home")
        dispose_engines()  # closes the connections, which checkpoints the WAL into the file
        record.write_text(
            json.dumps(
                {"home": str(seeded.home), "dataset_id": seeded.dataset_id, "runs": seeded.runs}
            ),
            encoding="utf-8",
        )
        return seeded


def copy_home(src: Path, dst: Path) -> None:
    """Copy a seeded home that other processes may be reading: SQLite readers create and
    remove the -wal/-shm files as they come and go (empty: nobody writes), so copy without
    them; the database file itself is complete (`shared_seed` checkpointed it)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*-wal", "*-shm"))


def seed_demo(home: Path, *, with_caption: bool = True) -> Seeded:
    """The demo dataset (120 images) with match, caption, benchmark, failed and queued runs."""
    use_home(home)
    src = write_demo_dataset(Path(tempfile.mkdtemp(dir=home.parent)) / "demo-shapes")
    report = import_dataset(src, name="demo-shapes")
    ds = report.id
    seeded = Seeded(home, ds)
    cpu_w, cpu_p = register_worker(
        "lab-cpu-1", "lab-cpu", 101, [], ["cpu"], _profile("lab-cpu", None)
    )
    gpu_w, gpu_p = register_worker(
        "gpu-box-1", "gpu-box", 202, [], ["cpu", "cuda"], _profile("gpu-box", "NVIDIA A100 80GB")
    )
    plan: list[tuple[str, str, str, str, int, RunResults | None]] = [
        (
            "clip",
            "hf-clip:mirada/demo-clip",
            "match",
            "cpu",
            cpu_w,
            match_results(ds, noise=1.5, seed=1),
        ),
        (
            "clip_random",
            "hf-clip:mirada/demo-clip-random",
            "match",
            "cpu",
            cpu_w,
            match_results(ds, noise=2.6, seed=2),
        ),
        (
            "blip",
            "blip-itm:Salesforce/blip-itm-base-coco",
            "match",
            "cpu",
            cpu_w,
            match_results(ds, noise=1.7, seed=5, rerank=True),
        ),
    ]
    if with_caption:
        plan.append(
            (
                "caption",
                "blip-caption:mirada/demo-blip",
                "caption",
                "cpu",
                cpu_w,
                caption_results(ds),
            )
        )
    plan += [
        (
            "bench_cpu",
            "hf-clip:mirada/demo-clip",
            "benchmark",
            "cpu",
            cpu_w,
            benchmark_results(gpu=False, scale=1.0, batch_sizes=(1, 8)),
        ),
        (
            "bench_gpu",
            "hf-clip:mirada/demo-clip",
            "benchmark",
            "cuda",
            gpu_w,
            benchmark_results(gpu=True, scale=1.0, batch_sizes=(1, 8, 32)),
        ),
        (
            "bench_openclip",
            "open-clip:ViT-B-32/laion2b_s34b_b79k",
            "benchmark",
            "cpu",
            cpu_w,
            benchmark_results(gpu=False, scale=2.5, batch_sizes=(1, 8)),
        ),
        # measured in interleaved rounds: the same configuration twice (runs of one
        # configuration are separate series), two hosts, one run under contention, one
        # variants artifact from before issue 21
        (
            "bench_rounds",
            "hf-clip:mirada/demo-clip",
            "benchmark",
            "cpu",
            cpu_w,
            rounds_results(CPU_VARIANTS, seconds_per_item=0.004, batch_sizes=(1, 8), seed=21),
        ),
        (
            "bench_repeat",
            "hf-clip:mirada/demo-clip",
            "benchmark",
            "cpu",
            cpu_w,
            rounds_results(CPU_VARIANTS, seconds_per_item=0.0045, batch_sizes=(1, 8), seed=22),
        ),
        (
            "bench_gpu_rounds",
            "hf-clip:mirada/demo-clip",
            "benchmark",
            "cuda",
            gpu_w,
            rounds_results(GPU_VARIANTS, seconds_per_item=0.0004, batch_sizes=(1, 8, 32), seed=23),
        ),
        (
            "bench_contended",
            "open-clip:ViT-B-32/laion2b_s34b_b79k",
            "benchmark",
            "cpu",
            cpu_w,
            rounds_results(
                (SeedVariant("fp32", 1.0), SeedVariant("bf16", 1.24, 0.99994, {I2T_R1: -0.2})),
                seconds_per_item=0.04,
                batch_sizes=(8,),
                seed=24,
                rounds=6,
                contended_share=0.48,
            ),
        ),
        (
            "bench_old_variants",
            "open-clip:ViT-B-32/laion2b_s34b_b79k",
            "benchmark",
            "cuda",
            gpu_w,
            old_style_variants_results(),
        ),
        ("failed", "hf-clip:mirada/demo-clip", "match", "cpu", cpu_w, None),
    ]
    for key, model, task, device, worker, res in plan:
        run_id = enqueue(ds, model, task, device=device, batch_size=8)
        seeded.runs[key] = run_id
        devices = ["cpu", "cuda"] if worker == gpu_w else ["cpu"]
        profile = gpu_p if worker == gpu_w else cpu_p
        if res is None:
            claimed = claim_next(worker, devices, [])
            assert claimed is not None and claimed.id == run_id
            fail_run(
                run_id,
                worker,
                "RuntimeError: CUDA out of memory while encoding batch 3",
                'Traceback (most recent call last):\n  File "worker/main.py", line 1, in run\n'
                "RuntimeError: CUDA out of memory while encoding batch 3",
            )
        else:
            _finish(run_id, worker, devices, profile, res)
    seeded.runs["queued"] = enqueue(ds, "hf-clip:mirada/demo-clip", "match")
    stop_worker(cpu_w)
    stop_worker(gpu_w)
    return seeded


def _tiny_png(i: int) -> bytes:
    rng = np.random.default_rng(i)
    arr = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def seed_large(
    home: Path, n_images: int = 5000, *, n_categories: int = 10, dim: int = 512
) -> Seeded:
    """A large dataset (`n_images` items over 64 distinct tiny PNGs, 2 captions each) with one
    finished match run (random 512-d embeddings). Written through mirada.datasets.store."""
    from mirada.datasets.store import (
        NewImage,
        NewItem,
        save_dataset,
        staged_image,
        staged_thumbnail,
    )

    use_home(home)
    staging = home / "staging" / "bench"
    images = []
    shas = []
    for i in range(64):
        data = _tiny_png(i)
        sha = hashlib.sha256(data).hexdigest()
        p = staged_image(staging, sha, "png")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        t = staged_thumbnail(staging, sha)
        t.parent.mkdir(parents=True, exist_ok=True)
        PILImage.open(io.BytesIO(data)).convert("RGB").save(t, format="JPEG")
        images.append(NewImage(sha, "png", 16, 16, "PNG", len(data)))
        shas.append(sha)
    cats = [f"class_{c:02d}" for c in range(n_categories)]
    items = [
        NewItem(
            f"img_{i:05d}.png",
            shas[i % len(shas)],
            cats[i % n_categories],
            [f"caption {i} of {cats[i % n_categories]}", f"another view of thing {i}"],
        )
        for i in range(n_images)
    ]
    ds = save_dataset(
        name=f"large-{n_images}",
        source_format="csv",
        source_path=str(staging),
        images=images,
        items=items,
        staging=staging,
    )
    seeded = Seeded(home, ds)
    worker, profile = register_worker("bench-1", "bench", 1, [], ["cpu"], _profile("bench", None))
    recs = load_items(ds)
    caption_ids = [cid for it in recs for cid, _ in it.captions]
    caption_image = np.array([i for i, it in enumerate(recs) for _ in it.captions], np.int64)
    categories: list[str | None] = [it.category for it in recs]
    img, txt, cls, names = synthetic_embeddings(
        categories, caption_image, noise=1.0, seed=7, dim=dim
    )
    report = build_match_report(
        img,
        txt,
        caption_image,
        [it.item_id for it in recs],
        caption_ids,
        categories,
        class_emb=cls,
        class_names=names,
        n_resamples=200,
    )
    res = RunResults(
        metrics=list(report.metrics),
        items=list(report.items),
        embeddings=[
            EmbeddingSet("image", np.array([it.item_id for it in recs], np.int64), img),
            EmbeddingSet("text", np.array(caption_ids, np.int64), txt),
        ],
        artifacts=dict(report.artifacts),
    )
    run_id = enqueue(ds, "hf-clip:openai/clip-vit-base-patch32", "match", device="cpu")
    _finish(run_id, worker, ["cpu"], profile, res)
    seeded.runs["large"] = run_id
    stop_worker(worker)
    return seeded


def second_caption_run(seeded: Seeded, *, drop_cider_of_first: bool) -> int:
    """A finished caption run with the seeded one's captions (through the real queue)."""
    from sqlalchemy import select

    from mirada.db import read_session
    from mirada.db.models import GeneratedCaption
    from mirada.queue import cancel_run, claim_next, enqueue, finish_run, register_worker
    from mirada.results import CaptionOutcome, RunResults

    with read_session() as s:
        rows = s.execute(
            select(
                GeneratedCaption.item_id,
                GeneratedCaption.text,
                GeneratedCaption.scores,
                GeneratedCaption.flags,
            )
            .where(GeneratedCaption.run_id == seeded.runs["caption"])
            .order_by(GeneratedCaption.item_id)
        ).all()
    captions = [
        CaptionOutcome(
            item_id=item_id,
            text=text,
            scores={**scores, "CIDEr": None} if n == 0 and drop_cider_of_first else scores,
            flags=flags,
        )
        for n, (item_id, text, scores, flags) in enumerate(rows)
    ]
    cancel_run(seeded.runs["queued"])  # claim_next takes the oldest queued run
    run_id = enqueue(seeded.dataset_id, "blip-caption:mirada/demo-blip", "caption", device="cpu")
    worker, _ = register_worker("pair-test", "pair-host", 1, [], ["cpu"], None)
    claimed = claim_next(worker, ["cpu"], [])
    assert claimed is not None and claimed.id == run_id
    assert finish_run(
        run_id,
        worker,
        RunResults(captions=captions),
        hardware_profile_id=None,
        model_fingerprint=None,
        resolved_device="cpu",
    )
    return run_id


def seed_hostile(home: Path, work: Path) -> Seeded:
    """The hostile-text dataset (tests/hostile_text.py) with two match runs, a caption run and
    a failed run whose error carries the same payloads."""
    from hostile_text import BEACON, COLOUR, OSC_TITLE, import_hostile

    use_home(home)
    ds = import_hostile(work)
    seeded = Seeded(home, ds)
    worker, profile = register_worker("w-1", "host", 7, [], ["cpu"], _profile("host", None))
    plan: list[tuple[str, str, str, RunResults | None]] = [
        ("clip", "hf-clip:mirada/demo-clip", "match", match_results(ds, noise=1.5, seed=1)),
        ("random", "hf-clip:mirada/demo-clip-random", "match", match_results(ds, noise=3, seed=2)),
        ("caption", "blip-caption:mirada/demo-blip", "caption", caption_results(ds)),
        ("failed", "hf-clip:mirada/demo-clip", "match", None),
    ]
    for key, model, task, res in plan:
        run_id = enqueue(ds, model, task, device="cpu", batch_size=8)
        seeded.runs[key] = run_id
        if res is None:
            claimed = claim_next(worker, ["cpu"], [])
            assert claimed is not None and claimed.id == run_id
            error = f"ValueError: bad category {COLOUR} {BEACON} {OSC_TITLE}"
            fail_run(run_id, worker, error, "Traceback (most recent call last):\n" + error)
        else:
            _finish(run_id, worker, ["cpu"], profile, res)
    stop_worker(worker)
    return seeded
