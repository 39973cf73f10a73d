"""The metric-name table covers every key the metric builders produce, and names them once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from mirada.domain import Task
from mirada.metrics import degeneration, names
from mirada.metrics.probe import with_probe
from mirada.metrics.report import build_match_report, rerank_inputs


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_every_match_metric_has_a_label() -> None:
    rng = np.random.default_rng(0)
    n, dim = 12, 16
    categories = ["a", "b", "c"] * 4
    img = _unit(rng.normal(size=(n, dim)))
    caption_image = np.repeat(np.arange(n), 2)
    txt = _unit(img[caption_image] + 0.5 * rng.normal(size=(2 * n, dim)))
    cand = rerank_inputs(img, txt, 16)
    report = build_match_report(
        img,
        txt,
        caption_image,
        list(range(n)),
        list(range(2 * n)),
        categories,
        class_emb=_unit(rng.normal(size=(3, dim))),
        class_names=["a", "b", "c"],
        rerank_candidates=cand,
        rerank_scores=rng.uniform(size=cand.shape),
        n_resamples=20,
    )
    report = with_probe(report, img, categories)  # the match task adds the probe's metrics
    produced = {m.name for m in report.metrics}
    assert "i2t_recall@10_reranked" in produced and "zeroshot_balanced_accuracy" in produced
    assert produced <= set(names.METRICS)
    assert set(names.HEADLINE) <= produced


def test_caption_and_benchmark_keys_have_labels() -> None:
    _, corpus = degeneration.degeneration({1: "a red square", 2: "a red square a red square"})
    assert set(corpus) == set(names.DEGENERATION_METRICS)
    for key in (*names.CAPTION_METRICS, *names.DEGENERATION_METRICS, "num_params"):
        assert names.METRICS[key].description
    assert names.label("image_encode_latency_p50_ms") == "Image encode latency p50"
    assert names.label("caption_per_s") == "Caption items/s"
    assert names.label("load_s") == "Model load time"
    assert names.label("a_future_metric") == "a_future_metric"  # unknown keys read as themselves


def test_one_label_per_metric() -> None:
    labels = [m.label for m in names.METRICS.values()]
    assert len(labels) == len(set(labels))
    assert names.metric_name("i2t_recall@1").label == "Image→text R@1"
    assert names.metric_name("i2t_recall@1").kind == names.MetricKind.proportion
    assert names.metric_name("i2t_median_rank").kind == names.MetricKind.rank


# ---------------------------------------------------------------------------------------------
# Nothing outside metrics/names.py spells a metric or timing key.

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("shared", "worker", "dashboard")  # the source roots of the mirada namespace
NAMES_FILE = Path("shared/mirada/metrics/names.py")
# (file, literal) pairs that look like a key but name something else, with the reason.
NOT_KEYS = {
    # training_info.json of a demo model (a file, not a run's metric)
    (Path("shared/mirada/demo/training/common.py"), names.NUM_PARAMS),
}
RECALL = re.compile(r"[it]2[it]_recall@")
# Tails of an f-string that builds a key: f"{op}_latency_p50_ms", f"{...}_reranked".
KEY_TAILS = {f"_{stat}" for stat in names.TIMING_STATS} | {"_reranked"}


def spells_a_key(text: str) -> bool:
    """True when a string literal is a metric/timing key or a piece that builds one."""
    return (
        text in names.METRICS
        or text == names.LOAD_S
        or names.TIMING_PATTERN.match(text) is not None
        or RECALL.search(text) is not None
        or text in KEY_TAILS
        or any(stat in text for stat in names.BENCHMARK_STATS)  # "throughput_per_s:Q"
    )


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def spelled_keys(path: Path, source: str) -> list[str]:
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [
        f"{path}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and spells_a_key(node.value)
        and (path, node.value) not in NOT_KEYS
    ]


def test_the_scan_finds_spelled_keys() -> None:
    """The scan below is not vacuous: each way of spelling a key by hand is caught."""
    src = (
        '"""Docstrings may mention i2t_recall@1."""\n'
        'a = m["i2t_recall@1"]\n'
        'b = f"t2i_recall@{k}"\n'
        'c = f"{op}_latency_p50_ms"\n'
        'd = "caption_per_s"\n'
        'e = "throughput_per_s:Q"\n'
        'f = ("CIDEr", "load_s", "num_params")\n'
        'g = f"i2t_recall@{k}_reranked"\n'
        'h = ("caption", "item_reranked", "images_per_s", "CIDEr-D")\n'  # not keys
    )
    lines = sorted(int(line.split(":")[1]) for line in spelled_keys(Path("x.py"), src))
    assert lines == [2, 3, 4, 5, 6, 7, 7, 7, 8, 8]


def test_nothing_outside_names_spells_a_metric_key() -> None:
    found = []
    for root in ROOTS:
        for path in sorted((REPO / root / "mirada").rglob("*.py")):
            relative = path.relative_to(REPO)
            if relative == NAMES_FILE or "migrations" in relative.parts:
                continue
            found += spelled_keys(relative, path.read_text(encoding="utf-8"))
    assert not found, "use the constants of mirada.metrics.names:\n" + "\n".join(found)


def test_task_metrics_and_timing_keys() -> None:
    assert names.metrics_of(Task.benchmark) == (
        names.NUM_PARAMS,
        names.WARMUP_BATCHES,
        names.TIMED_BATCHES,
    )
    assert set(names.metrics_of(Task.caption)) == {
        *names.CAPTION_METRICS,
        *names.CLIPSCORE_METRICS,
        *names.DEGENERATION_METRICS,
    }
    assert set(names.HEADLINE) <= set(names.metrics_of(Task.match))
    assert names.reranked(5) == "i2t_recall@5_reranked"  # the stored strings never change
    assert names.timing_key(names.IMAGE_ENCODE, names.THROUGHPUT_PER_S) == (
        "image_encode_throughput_per_s"
    )
    with pytest.raises(ValueError):
        names.timing_key("image_embed", names.PER_S)


def test_score_ceilings_are_the_scales_the_metrics_are_computed_on() -> None:
    from mirada.metrics import clipscore

    assert names.SCORE_CEILINGS[names.CLIPSCORE] == clipscore.W
    assert names.SCORE_CEILINGS[names.REFCLIPSCORE] == clipscore.W
    assert set(names.CAPTION_METRICS) <= set(names.SCORE_CEILINGS)
    assert all(names.kind_of(k) is not names.MetricKind.proportion for k in names.SCORE_CEILINGS)
