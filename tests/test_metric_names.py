"""The metric-name table covers every key the metric builders produce, and names them once."""

from __future__ import annotations

import numpy as np

from mirada.metrics import degeneration, names
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
