"""`mirada show` and `mirada export` on a stored match run with perfect retrieval: Wilson
intervals (never [1, 1]), the interval method, chance levels and trivial R@k."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli

from mirada.datasets import import_dataset, load_items
from mirada.demo.synthetic import write_demo_dataset
from mirada.export import build_export, metric_table, to_markdown
from mirada.metrics import names
from mirada.metrics.formatting import format_interval, format_metric
from mirada.metrics.report import build_match_report
from mirada.metrics.types import MetricValue
from mirada.queue import claim_next, enqueue, finish_run, register_worker
from mirada.results import RunResults, TimingValue


def _perfect_run(
    tmp_path: Path,
    extra: Sequence[MetricValue] = (),
    timings: Sequence[TimingValue] = (),
) -> int:
    """12 demo images (4 shapes), each image's captions nearest to it: R@5 = 1.0 (plus `extra`
    metrics and `timings`, as a benchmark stores them)."""
    src = write_demo_dataset(tmp_path / "shapes", n=12)
    ds = import_dataset(src, name="shapes").id
    items = load_items(ds)
    n = len(items)
    caption_ids = [cid for it in items for cid, _ in it.captions]
    ci = np.array([i for i, it in enumerate(items) for _ in it.captions], np.int64)
    img = np.eye(n, dtype=np.float32)
    txt = img[ci]
    cats = [it.category for it in items]
    names = sorted({c for c in cats if c})
    # class prompts far from every image: zero-shot accuracy is poor, within chance
    cls = np.full((len(names), n), 1.0, np.float32)
    cls[:, 0] += np.arange(len(names))
    report = build_match_report(
        img, txt, ci, [it.item_id for it in items], caption_ids, cats,
        class_emb=cls, class_names=names, n_resamples=200,
    )  # fmt: skip
    run_id = enqueue(ds, "hf-clip:mirada/demo-clip", "match", device="cpu")
    worker, profile = register_worker("w", "host", 1, [], ["cpu"], None)
    assert claim_next(worker, ["cpu"], []) is not None
    results = RunResults(
        metrics=[*report.metrics, *extra], items=list(report.items), timings=list(timings)
    )
    assert finish_run(
        run_id,
        worker,
        results,
        hardware_profile_id=profile,
        model_fingerprint=None,
        resolved_device="cpu",
    )
    return run_id


@pytest.fixture
def perfect_run(mirada_home: Path, tmp_path: Path) -> int:
    return _perfect_run(tmp_path)


def test_show_json_perfect_recall_has_wilson_interval(perfect_run: int) -> None:
    res = run_cli("show", str(perfect_run), "--json")
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout)["metrics"]
    assert metrics["i2t_recall@5"] == 1.0
    assert metrics["i2t_recall@5_ci_high"] == 1.0
    assert metrics["i2t_recall@5_ci_low"] < 1.0
    assert metrics["i2t_recall@5_ci_low"] == pytest.approx(0.7575, abs=1e-4)  # Wilson 12 of 12
    assert metrics["i2t_recall@5_interval_method"] == "wilson"
    assert metrics["mrr_interval_method"] == "bootstrap"
    assert metrics["zeroshot_accuracy_chance"] == pytest.approx(0.25)
    assert metrics["zeroshot_accuracy_chance_basis"] == "for 4 classes"
    assert "k = 5 ≥ 4 images" not in json.dumps(metrics)  # 12 images: t2i R@5 is not trivial
    assert "i2t_recall@1_trivial" not in metrics


def test_show_text_says_method_and_chance(perfect_run: int) -> None:
    res = run_cli("show", str(perfect_run))
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.strip().startswith("i2t_recall@5 "))
    assert "100.0%  95% CI [75.8, 100.0] (Wilson)" in line  # percent, as on the Results page
    mrr = next(x for x in res.stdout.splitlines() if x.strip().startswith("mrr "))
    assert "(bootstrap)" in mrr
    zs = next(x for x in res.stdout.splitlines() if x.strip().startswith("zeroshot_accuracy "))
    assert "within chance (25% for 4 classes)" in zs
    assert "_chance" not in res.stdout and "_interval_method" not in res.stdout


def test_export_records_interval_method_and_chance(perfect_run: int) -> None:
    export = build_export(perfect_run)
    m = export["metrics"]["i2t_recall@5"]
    assert m["ci_low"] < 1.0 and m["interval_method"] == "wilson"
    assert export["metrics"]["zeroshot_accuracy"]["chance"] == pytest.approx(0.25)
    assert any("Wilson" in note for note in export["notes"])
    columns, rows = metric_table(export)
    assert {"interval_method", "chance"} <= set(columns)
    assert all(set(r) <= set(columns) for r in rows)
    md = to_markdown(export)
    assert "Wilson" in md and "within chance" in md


def test_show_prints_integers_as_integers_and_percentages_as_the_dashboard(
    mirada_home: Path, tmp_path: Path
) -> None:
    extra = [
        MetricValue(names.NUM_PARAMS, 315201.0),
        MetricValue(names.WARMUP_BATCHES, 2.0),
    ]
    p50 = names.timing_key(names.IMAGE_ENCODE, names.LATENCY_P50_MS)
    timings = [TimingValue(p50, 3.4, "ms", 8), TimingValue(names.LOAD_S, 1.25, "s")]
    run_id = _perfect_run(tmp_path, extra, timings)
    res = run_cli("show", str(run_id))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()

    def line(key: str) -> str:
        return next(x for x in lines if x.strip().startswith(f"{key} "))

    assert line(names.NUM_PARAMS).split()[-1] == "315201"
    assert line(names.WARMUP_BATCHES).split()[-1] == "2"
    assert "315201.0" not in res.stdout and "2.0000" not in res.stdout
    # each proportion reads as the Results page's card and its interval caption
    metrics = json.loads(run_cli("show", str(run_id), "--json").stdout)["metrics"]
    for k in names.RECALL_KS:
        key = names.t2i_recall(k)
        card = format_metric(key, metrics[key])
        ci = format_interval(key, metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"])
        assert card.endswith("%") and ci.startswith("[")
        assert f"{card}  95% CI {ci}" in line(key)
    # per category: percentages too
    per_category = lines[lines.index("per category:") + 1]
    assert f"{names.i2t_recall(1)} 100.0%" in per_category
    # timings: the value by its kind, the unit in its own column; nothing prints None or nan
    assert any(x.split()[:4] == [p50, "3.40", "ms", "8"] for x in lines)
    assert any(x.split()[:3] == [names.LOAD_S, "1.25", "s"] for x in lines)
    assert "None" not in res.stdout and "nan" not in res.stdout


def test_missing_intervals_say_why_and_clipscore_carries_its_definition(
    mirada_home: Path, tmp_path: Path
) -> None:
    """BLEU-4 (corpus-level, per-image mean CI stored), a count without an interval, and a
    CLIPScore stored before its details recorded prefix and w: `show` says why there is no
    interval and shows the prefix and w; `show --json` and the exports carry them."""
    from mirada.metrics import clipscore

    bleu = MetricValue(
        names.BLEU_4,
        0.2512,
        details={"per_image_mean": 0.2, "per_image_mean_ci": [0.1, 0.3], "n": 12},
    )
    clip = MetricValue(names.CLIPSCORE, 0.676, None, 0.584, 0.767, {"interval_method": "bootstrap"})
    extra = [bleu, clip, MetricValue(names.NUM_PARAMS, 315201.0)]
    run_id = _perfect_run(tmp_path, extra)
    text = run_cli("show", str(run_id))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()

    def line(key: str) -> str:
        return next(x for x in lines if x.strip().startswith(f"{key} "))

    assert line(names.BLEU_4).endswith(
        "0.251  (corpus-level score (pooled over all captions), so no interval; "
        "per-image mean 0.200 [0.100, 0.300] (95% bootstrap))"
    )
    assert line(names.NUM_PARAMS).endswith(" 315201")  # a count: exact, no reason needed
    assert line(names.CLIPSCORE).endswith(
        '0.676  95% CI [0.584, 0.767] (bootstrap); prefix "A photo depicts ", w = 2.5'
    )
    assert "None" not in text.stdout and "nan" not in text.stdout
    assert "_prefix" not in text.stdout and "_per_image_mean" not in text.stdout

    metrics = json.loads(run_cli("show", str(run_id), "--json").stdout)["metrics"]
    assert metrics[f"{names.CLIPSCORE}_prefix"] == clipscore.PREFIX == "A photo depicts "
    assert metrics[f"{names.CLIPSCORE}_w"] == clipscore.W == 2.5
    assert metrics[f"{names.BLEU_4}_per_image_mean_ci_low"] == 0.1
    assert f"{names.MRR}_prefix" not in metrics

    export = build_export(run_id)
    entry = export["metrics"][names.CLIPSCORE]
    assert (entry["prefix"], entry["w"]) == (clipscore.PREFIX, clipscore.W)
    assert "prefix" not in export["metrics"][names.MRR]
    assert export["metrics"][names.BLEU_4]["per_image_mean_ci"] == [0.1, 0.3]
    assert any("Hessel et al. 2021" in n and "'A photo depicts '" in n for n in export["notes"])
    row = next(r for r in metric_table(export)[1] if r["metric"] == names.CLIPSCORE)
    assert {c: row[c] for c in ("prefix", "w")} == {"prefix": clipscore.PREFIX, "w": 2.5}
    md = to_markdown(export)
    assert "| CLIPScore | CLIPScore | 0.676 [0.584, 0.767] | 95% bootstrap |" in md


def test_clipscore_descriptions_state_the_definition_in_use() -> None:
    from mirada.metrics import clipscore

    for key in names.CLIPSCORE_METRICS:
        description = names.METRICS[key].description
        assert f'"{clipscore.PREFIX}"' in description and f"w = {clipscore.W}" in description
        assert "Hessel et al. 2021" in description
