"""The Results page's Probe tab (issue 24 §3): figures with intervals, per-fold accuracies,
chance, confusion and recall charts, the images behind wrong predictions, and the honest
message when there is no figure. Its own small home: match runs whose results include the
probe (`mirada.metrics.probe.with_probe`, as the match task stores them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from dashboard_seed import _finish, match_results, use_home
from PIL import Image as PILImage
from streamlit.testing.v1 import AppTest

from mirada.datasets import import_dataset, load_items
from mirada.db import dispose_engines
from mirada.demo.synthetic import write_demo_dataset
from mirada.metrics import names
from mirada.metrics.probe import ITEM_KEYS, with_probe
from mirada.metrics.report import MatchReport
from mirada.queries.probe import probe_mistakes, probe_view
from mirada.queue import enqueue, register_worker
from mirada.text_safety import markdown_text

APP = str(Path(__file__).resolve().parents[2] / "dashboard/mirada/dashboard/app.py")


def _with_probe(dataset_id: int, *, noise: float, seed: int) -> int:
    """A finished match run on `dataset_id` with the probe on its (synthetic) embeddings."""
    res = match_results(dataset_id, noise=noise, seed=seed, n_resamples=50)
    cats = [it.category for it in load_items(dataset_id)]
    report = with_probe(
        MatchReport(list(res.metrics), list(res.items), dict(res.artifacts)),
        res.embeddings[0].vectors,
        cats,
        seed=seed,
    )
    run_id = enqueue(dataset_id, "hf-clip:mirada/demo-clip", "match", device="cpu")
    worker, _ = register_worker(f"w{run_id}", "host", 1, [], ["cpu"], None)
    _finish(
        run_id,
        worker,
        ["cpu"],
        None,
        replace(res, metrics=report.metrics, items=report.items, artifacts=dict(report.artifacts)),
    )
    return run_id


def _one_category(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows = ["filename,caption,category"]
    for i, cat in enumerate(["cat", "cat", "cat", "dog"]):
        PILImage.new("RGB", (16, 16), (50 * i, 90, 200)).save(folder / f"{i}.png")
        rows.append(f"{i}.png,a {cat} number {i},{cat}")
    (folder / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def probe_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    saved = {k: os.environ.get(k) for k in ("MIRADA_HOME", "MIRADA_DATABASE_URL")}
    root = tmp_path_factory.mktemp("probe")
    use_home(root / "home")
    shapes = import_dataset(write_demo_dataset(root / "shapes", n=32), name="shapes").id
    pets = import_dataset(_one_category(root / "pets"), name="pets").id
    runs = {
        "noisy": _with_probe(shapes, noise=6.0, seed=3),  # far from perfect: mistakes to show
        "one_category": _with_probe(pets, noise=1.0, seed=0),
    }
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    dispose_engines()
    return root / "home", runs


@pytest.fixture
def env(
    probe_home: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, int]]:
    """Point this test at the module's home (pages may write into it: only this module reads)."""
    monkeypatch.setenv("MIRADA_HOME", str(probe_home[0]))
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    dispose_engines()
    yield probe_home[1]
    dispose_engines()


def _open(**params: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("app_pages/results.py")
    for key, value in params.items():
        at.query_params[key] = str(value)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    parts = [*at.info, *at.warning, *at.error, *at.markdown, *at.caption]
    return "\n".join(str(p.value) for p in parts)


def test_probe_view_reads_what_the_run_stored(env: dict[str, int]) -> None:
    view = probe_view(env["noisy"])
    assert view is not None and view.reason is None and view.folds
    keys = [f.key for f in view.figures]
    assert keys == [names.PROBE_ACCURACY, *(names.knn_accuracy(k) for k in names.KNN_KS)]
    for fig in view.figures:
        assert fig.value is not None and fig.ci_low is not None and fig.ci_high is not None
        assert fig.ci_low <= fig.value <= fig.ci_high and fig.interval == "95% Wilson"
        assert fig.value == pytest.approx(fig.correct / fig.n)
        assert len(view.per_fold[view.per_fold["metric"] == fig.key]) == view.folds
        matrix = view.confusion[fig.key]
        assert matrix["count"].sum() == fig.n
        wrong = probe_mistakes(env["noisy"], fig.key)
        assert len(wrong) == fig.n - fig.correct  # every wrong prediction leads to its image
        assert (wrong["category"] != wrong["predicted"]).all()
    assert view.majority_share is not None and view.uniform_chance == 1 / len(view.labels)
    assert view.majority_share >= view.uniform_chance
    assert view.per_fold["chosen_c"].notna().sum() == view.folds
    with pytest.raises(ValueError, match="not a probe metric"):
        probe_mistakes(env["noisy"], names.MRR)


def test_probe_tab_shows_figures_chance_folds_and_wrong_images(env: dict[str, int]) -> None:
    run = env["noisy"]
    at = _open(run=run, tab="Probe")
    view = probe_view(run)
    assert view is not None
    labels = [m.label for m in at.metric]
    for fig in view.figures:
        assert fig.label in labels
    text = _texts(at)
    assert "95% Wilson [" in text and "per fold: " in text
    assert "Chance: " in text and "always predicting the largest category" in text
    assert f"{view.folds}-fold stratified" in text and "chosen C per fold" in text
    assert len(at.get("vega_lite_chart")) == 2  # confusion and per-category recall
    folds, wrong = at.dataframe[0].value, at.dataframe[1].value
    assert list(folds["fold"]) == list(range(1, view.folds + 1))
    assert (wrong["view"] == [f"results?run={run}&item={i}" for i in wrong["item_id"]]).all()
    assert (wrong["category"] != wrong["predicted"]).all()
    # another classifier, then only the images of one true category
    at.segmented_control(key="results_probe_method").set_value(names.knn_accuracy(1)).run()
    assert not at.exception
    category = view.labels[0]
    at.selectbox(key="results_probe_true").select(category).run()
    assert not at.exception
    if len(at.dataframe) > 1:
        assert set(at.dataframe[1].value["category"]) == {category}
    else:
        assert "No wrong predictions here." in _texts(at)


def test_probe_tab_says_why_there_is_no_figure(env: dict[str, int]) -> None:
    at = _open(run=env["one_category"], tab="Probe")
    text = _texts(at)
    assert "No probe figures: 1 category with at least 2 images" in text
    assert markdown_text("fewer than 2 images in 'dog': probe skipped") in text
    probe_labels = {names.metric_name(k).label for k in ITEM_KEYS}
    shown = [m.value for m in at.metric if m.label in probe_labels]
    assert len(shown) >= len(probe_labels) and set(shown) == {"–"}  # never None or nan
    assert not at.get("vega_lite_chart")


def test_a_run_without_the_artifact_has_no_view(env: dict[str, int]) -> None:
    assert probe_view(10**6) is None
    assert probe_mistakes(10**6, names.PROBE_ACCURACY).empty


def test_the_item_view_shows_each_held_out_prediction(env: dict[str, int]) -> None:
    """Every probe number leads to its images: an image's item view says what the probe and
    each kNN predicted while it was held out, and whether that was right."""
    from mirada.queries.results import item_drilldown

    run = env["noisy"]
    wrong = probe_mistakes(run, names.PROBE_ACCURACY)
    item_id = int(wrong["item_id"].iloc[0])
    d = item_drilldown(run, item_id)
    assert d is not None and set(d.held_out) == set(ITEM_KEYS)
    pred, ok = d.held_out[names.PROBE_ACCURACY]
    assert not ok and pred != d.category
    at = _open(run=run, item=item_id)
    shown = _texts(at)
    assert f"**Linear-probe prediction:** {markdown_text(pred)}" in shown
    assert "kNN (k=5) prediction:" in shown
