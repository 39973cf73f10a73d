"""The linear probe and kNN inside match runs (issue 24 §3): what a run stores, what bundles,
`mirada show` and exports carry, and the honest message when there is nothing to classify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from PIL import Image as PILImage
from run_helpers import work
from sqlalchemy import select

from mirada import queue
from mirada.bundles.archive import BundleError
from mirada.bundles.build import export_bundle
from mirada.bundles.load import import_bundle
from mirada.bundles.schema_checks import JSON_TYPE, check_artifact
from mirada.datasets import import_dataset, load_items
from mirada.db import read_session
from mirada.db.models import ItemResult, RunArtifact
from mirada.export import build_export, to_csv
from mirada.metrics import names, probe
from mirada.queries.results import run_metrics
from mirada.queries.runs import run_detail

DATASET_IMAGES = 16  # for conftest's `dataset`: 4 shapes
PROBE_KEYS = (names.PROBE_ACCURACY, *(names.knn_accuracy(k) for k in names.KNN_KS))
ITEM_KEYS = (
    (probe.PROBE_PRED, probe.PROBE_CORRECT),
    *((probe.knn_pred(k), probe.knn_correct(k)) for k in names.KNN_KS),
)


def _details(run_id: int) -> dict[int, dict]:
    with read_session() as s:
        rows = s.execute(
            select(ItemResult.item_id, ItemResult.details).where(ItemResult.run_id == run_id)
        ).all()
    return {int(i): d or {} for i, d in rows}


def _artifact(run_id: int) -> dict | None:
    with read_session() as s:
        blob = s.scalar(
            select(RunArtifact.data).where(
                RunArtifact.run_id == run_id, RunArtifact.name == probe.PROBE_ARTIFACT
            )
        )
    return None if blob is None else json.loads(blob)


@pytest.mark.slow
def test_a_match_run_stores_probe_knn_items_and_artifact(
    dataset: int, models: dict[str, str], tmp_path: Path
) -> None:
    run_id = queue.enqueue(dataset, models["clip"], "match", batch_size=8)
    assert work() == 1
    detail = run_detail(run_id)
    assert detail["status"] == "succeeded", detail["error"]

    metrics = run_metrics(run_id)
    overall = metrics[metrics["category"].isna()].set_index("name")
    items = load_items(dataset)
    truth = {it.item_id: it.category for it in items}
    for key in PROBE_KEYS:
        row = overall.loc[key]
        assert 0 <= row["ci_low"] <= row["value"] <= row["ci_high"] <= 1, key
        assert row["interval"] == "95% Wilson" and row["n"] == len(items)
    per_cat = metrics[metrics["category"].notna() & metrics["name"].isin(PROBE_KEYS)]
    assert set(per_cat["category"]) == set(truth.values())
    assert len(per_cat) == len(PROBE_KEYS) * len(set(truth.values()))

    details = _details(run_id)
    doc = _artifact(run_id)
    assert doc is not None and doc["reason"] is None and doc["seed"] == 0
    assert doc["labels"] == sorted(set(truth.values()))
    assert len(doc["chosen_c"]) == doc["folds"] and set(doc["chosen_c"]) <= set(probe.C_GRID)
    for key, (pred_key, ok_key) in zip(PROBE_KEYS, ITEM_KEYS, strict=True):
        method = doc["methods"][key]
        right = sum(details[i][ok_key] for i in truth)
        # the stored figure, the artifact and the per-item keys tell one story
        assert method["correct"] == right == round(overall.loc[key, "value"] * len(items))
        assert all(details[i][ok_key] == (details[i][pred_key] == truth[i]) for i in truth)
        assert np.trace(np.array(method["matrix"])) == right
        assert len(method["per_fold"]) == doc["folds"]
    # the figure is the run's own: the same features and seed give the same predictions
    with read_session() as s:
        from mirada.db.models import RunEmbedding

        emb = s.scalars(
            select(RunEmbedding).where(RunEmbedding.run_id == run_id, RunEmbedding.kind == "image")
        ).one()
        vectors = np.frombuffer(emb.data, np.float32).reshape(emb.count, emb.dim)
        order = np.frombuffer(emb.row_ids, np.int64)
    again = probe.probe_accuracy(vectors, [truth[int(i)] for i in order], seed=0)
    assert list(again.predictions) == [
        details[int(order[j])][probe.PROBE_PRED] for j in again.indices
    ]

    # `mirada show --json` and the JSON export carry the figures with their intervals
    shown = run_cli("show", str(run_id), "--json")
    assert shown.returncode == 0, shown.stderr
    flat = json.loads(shown.stdout)["metrics"]
    for key in PROBE_KEYS:
        assert flat[key] == pytest.approx(overall.loc[key, "value"])
        assert flat[f"{key}_ci_low"] == pytest.approx(overall.loc[key, "ci_low"])
    exported = build_export(run_id)
    for key in PROBE_KEYS:
        assert exported["metrics"][key]["value"] == pytest.approx(overall.loc[key, "value"])
        some = next(iter(exported["per_category"].values()))
        assert key in some["metrics"], key
    # every exported image carries its out-of-fold predictions (JSON items and the CSV)
    by_item = {it["item_id"]: it for it in exported["items"]}
    for item_id, det in details.items():
        for pred, correct in ITEM_KEYS:
            assert by_item[item_id][pred] == det.get(pred)
            assert by_item[item_id][correct] == det.get(correct)
    header = to_csv(exported).splitlines()[0].split(",")
    assert {k for pair in ITEM_KEYS for k in pair} <= set(header)

    # a bundle carries the per-item keys and the artifact through export's and import's checks
    bundle = tmp_path / "run.mirada.zip"
    export_bundle(run_id, bundle)
    imported = import_bundle(bundle)
    back = _details(imported.run_id)
    by_position = dict(zip(sorted(details), sorted(back), strict=True))
    for old, new in by_position.items():
        assert {k: back[new].get(k) for kk in ITEM_KEYS for k in kk} == {
            k: details[old].get(k) for kk in ITEM_KEYS for k in kk
        }
    assert _artifact(imported.run_id) == doc


def test_a_forged_probe_artifact_is_refused() -> None:
    x = np.random.default_rng(0).normal(size=(12, 4))
    found = probe.build_probe_report(x, ["a", "b", "c"] * 4)
    assert found is not None
    good = found.artifact
    check_artifact(probe.PROBE_ARTIFACT, JSON_TYPE, json.dumps(good).encode(), "artifacts/1.bin")
    bad = json.loads(json.dumps(good))
    bad["methods"][names.PROBE_ACCURACY]["correct"] += 1
    with pytest.raises(BundleError, match="matrix disagrees with n or correct"):
        check_artifact(probe.PROBE_ARTIFACT, JSON_TYPE, json.dumps(bad).encode(), "a/1.bin")
    bad = json.loads(json.dumps(good))
    bad["methods"]["knn9_accuracy"] = bad["methods"][names.PROBE_ACCURACY]
    with pytest.raises(BundleError, match="unknown metric 'knn9_accuracy'"):
        check_artifact(probe.PROBE_ARTIFACT, JSON_TYPE, json.dumps(bad).encode(), "a/1.bin")


def _one_category(folder: Path) -> Path:
    """Three 'cat' images and one 'dog': one category with 2 or more images."""
    folder.mkdir(parents=True)
    rows = ["filename,caption,category"]
    for i, cat in enumerate(["cat", "cat", "cat", "dog"]):
        PILImage.new("RGB", (16, 16), (50 * i, 90, 200)).save(folder / f"{i}.png")
        rows.append(f"{i}.png,a {cat} number {i},{cat}")
    (folder / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.mark.slow
def test_too_few_categories_store_the_reason_not_a_number(
    mirada_home: Path, models: dict[str, str], tmp_path: Path
) -> None:
    ds = import_dataset(_one_category(tmp_path / "pets"), name="pets").id
    run_id = queue.enqueue(ds, models["clip"], "match", batch_size=4)
    assert work() == 1
    assert run_detail(run_id)["status"] == "succeeded"
    metrics = run_metrics(run_id).set_index("name")
    for key in PROBE_KEYS:
        assert metrics.loc[key, "value"] is None or np.isnan(metrics.loc[key, "value"])
        assert "a probe needs 2 or more" in metrics.loc[key, "unavailable"]
    assert not any(probe.PROBE_PRED in d for d in _details(run_id).values())
    doc = _artifact(run_id)
    assert doc is not None and doc["methods"] == {} and doc["folds"] is None
    assert doc["skipped"] == ["fewer than 2 images in 'dog': probe skipped"]
    shown = run_cli("show", str(run_id))
    assert shown.returncode == 0, shown.stderr
    assert "a probe needs 2 or more" in shown.stdout
