"""Live progress (issue 13 §2): the worker reports each phase with its progress, the Runs
query shows it with elapsed time and an estimate of time left; match runs keep each image's
zero-shot cosine per class (issue 13 §1) for the item view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny_models
from run_helpers import work

from mirada import queue
from mirada.domain import Phase
from mirada.metrics import retrieval
from mirada.metrics.report import ZEROSHOT_TOP_CLASSES, build_match_report
from mirada.queries.runs import duration_text, eta_seconds, list_runs, run_detail, runs_frame

DATASET_IMAGES = 8  # for conftest's `dataset`


def test_eta_and_duration_text() -> None:
    assert eta_seconds(25, 100, 10.0) == pytest.approx(30.0)
    assert eta_seconds(0, 100, 10.0) is None  # no pace before the first unit
    assert eta_seconds(100, 100, 10.0) == 0.0
    assert eta_seconds(5, 10, None) is None
    assert duration_text(42.4) == "42 s"
    assert duration_text(185) == "3 min 05 s"
    assert duration_text(2 * 3600 + 600) == "2 h 10 min"
    assert duration_text(None) is None


def test_running_run_shows_its_phase_elapsed_and_time_left(dataset: int) -> None:
    run_id = queue.enqueue(dataset, "hf-clip:/nonexistent/clip", "match")
    wid, _ = queue.register_worker("w", "h", 1, [], ["cpu"], None)
    claimed = queue.claim_next(wid, ["cpu"], [])
    assert claimed is not None and claimed.id == run_id
    (row,) = list_runs()
    assert row["phase"] is None and row["eta_s"] is None and row["elapsed_s"] is not None
    assert queue.update_progress(
        run_id, wid, 3, 12, phase=Phase.embedding_images, attempt=claimed.attempts
    )
    (row,) = list_runs()
    assert row["phase"] == "embedding images"
    assert row["eta_s"] == pytest.approx(3 * row["elapsed_s"], abs=1.0)
    frame = runs_frame()
    assert frame.loc[0, "phase"] == "embedding images" and frame.loc[0, "elapsed"].endswith("s")
    assert run_detail(run_id)["model_fingerprint"] is None  # the phase is no fingerprint
    # a phase an earlier attempt reported is not shown for the next one
    queue.update_progress(run_id, wid, 3, 12, phase=Phase.reranking, attempt=claimed.attempts - 1)
    assert list_runs()[0]["phase"] is None
    queue.fail_run(run_id, wid, "boom")
    (row,) = list_runs()
    assert (row["phase"], row["elapsed_s"], row["eta_s"]) == (None, None, None)
    assert run_detail(run_id)["model_fingerprint"] is None


@pytest.mark.slow
def test_a_match_run_reports_its_phases(
    dataset: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    clip = f"hf-clip:{tiny_models.make_hf_clip(tmp_path / 'clip')}"
    seen: list[str] = []
    real = queue.update_progress

    def recording(*args: Any, **kw: Any) -> bool:
        if kw.get("phase") is not None and (not seen or seen[-1] != kw["phase"]):
            seen.append(str(kw["phase"]))
        return real(*args, **kw)

    monkeypatch.setattr(queue, "update_progress", recording)
    run_id = queue.enqueue(dataset, clip, "match", batch_size=4)
    work()
    detail = run_detail(run_id)
    assert detail["status"] == "succeeded", detail["error"]
    assert seen == [
        Phase.embedding_images,
        Phase.embedding_captions,
        Phase.embedding_prompts,
        Phase.computing_metrics,
        Phase.probing,
        Phase.writing_results,
    ]
    assert "progress_phase" not in (detail["model_fingerprint"] or {})
    assert detail["phase"] is None
    from mirada.datasets import load_items
    from mirada.queries.results import item_drilldown

    first = load_items(dataset)[0]
    view = item_drilldown(run_id, first.item_id)
    assert view is not None and view.zeroshot_scores  # the item view's per-class scores
    assert view.zeroshot_scores[0][0] == view.zeroshot_pred


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_zeroshot_scores_per_class_are_the_cosines() -> None:
    rng = np.random.default_rng(1)
    n, dim, labels = 9, 8, ["a", "b", "c"]
    img = _unit(rng.normal(size=(n, dim)))
    txt = _unit(rng.normal(size=(n, dim)))
    class_emb = _unit(rng.normal(size=(3, 2, dim)))
    report = build_match_report(
        img,
        txt,
        np.arange(n),
        list(range(n)),
        list(range(n)),
        labels * 3,
        class_emb=class_emb,
        class_names=labels,
        n_resamples=10,
    )
    by_hand = img.astype(np.float64) @ retrieval.class_embeddings(class_emb).T.astype(np.float64)
    for i, item in enumerate(report.items):
        scores = item.details["zeroshot_scores"]
        assert len(scores) == min(3, ZEROSHOT_TOP_CLASSES)
        assert scores[0][0] == item.details["zeroshot_pred"]  # best first: the prediction
        for name, value in scores:
            assert value == pytest.approx(by_hand[i, labels.index(name)], abs=1e-4)
        assert [v for _, v in scores] == sorted((v for _, v in scores), reverse=True)
