"""Compare: one table pairs every headline proportion with its per-item value; each is tested
run against run (McNemar, paired bootstrap) or says why it cannot be."""

from __future__ import annotations

import pandas as pd
import pytest
from dashboard_seed import Seeded

from mirada.metrics import names
from mirada.queries import compare
from mirada.queries.compare import PAIRED, ItemRow
from mirada.queries.results import run_metrics


def _stored(run_id: int) -> pd.Series:
    df = run_metrics(run_id)
    return df[df["category"].isna()].set_index("name")["value"]


def test_every_headline_proportion_has_a_pairing() -> None:
    proportions = [k for k in names.HEADLINE if names.kind_of(k) is names.MetricKind.proportion]
    assert set(proportions) <= set(PAIRED)
    assert list(PAIRED) == [k for k in names.HEADLINE if k in PAIRED]  # the cards' order
    for key, paired in PAIRED.items():
        assert paired.key == key
        assert (paired.read is None) == bool(paired.why_not), key  # no test says why
        assert paired.binary == (names.kind_of(key) is names.MetricKind.proportion), key


def test_readers() -> None:
    row = ItemRow(
        rank=3,
        details={
            "category_correct": False,
            "zeroshot_pred": "star",
            "reranked": [[11, 0.9], [7, 0.8], [12, 0.1]],
            "probe_correct": True,
            "knn5_correct": False,
        },
        category="star",
        own=frozenset({7, 8}),
    )

    def read(key: str, r: ItemRow = row) -> float | None:
        reader = PAIRED[key].read
        assert reader is not None
        return reader(r)

    assert [read(names.i2t_recall(k)) for k in names.RECALL_KS] == [0.0, 1.0, 1.0]
    assert read(names.MRR) == pytest.approx(1 / 3)
    assert read(names.CATEGORY_ACCURACY) == 0.0
    assert read(names.ZEROSHOT_ACCURACY) == 1.0
    assert read(names.PROBE_ACCURACY) == 1.0
    assert read(names.knn_accuracy(5)) == 0.0
    assert read(names.knn_accuracy(1)) is None  # not stored: the item is not counted
    assert [read(names.reranked(k)) for k in names.RERANK_KS] == [0.0, 1.0, 1.0]
    bare = ItemRow(rank=1, details={}, category=None, own=frozenset())
    assert read(names.ZEROSHOT_ACCURACY, bare) is None and read(names.reranked(1), bare) is None


def test_match_runs_are_tested_on_every_headline_proportion(seeded_env: Seeded) -> None:
    a, b = seeded_env.runs["clip"], seeded_env.runs["clip_random"]
    sig = compare.pairwise_significance([a, b]).set_index("metric")
    stored_a, stored_b = _stored(a), _stored(b)
    expected = [k for k in PAIRED if k in stored_a.index]
    assert list(sig.index) == expected and names.ZEROSHOT_ACCURACY in expected
    assert sig["problem"].isna().all()
    tested = sig[sig["untested"].isna()]
    for key, row in tested.iterrows():
        # the per-item values are the stored metric's: their means differ as the cards do,
        # the later run minus the reference (the sign of the per-category difference chart)
        diff = (stored_b[key] - stored_a[key]) * (100 if PAIRED[key].binary else 1)
        assert row["difference"] == pytest.approx(diff, abs=1e-9), key
        assert row["ci_low"] <= row["difference"] <= row["ci_high"]
        test = "mcnemar_exact" if PAIRED[key].binary else "paired_bootstrap"
        assert row["test"] == test and row["n"] > 0
    assert set(tested.index) == {
        *(names.i2t_recall(k) for k in names.RECALL_KS),
        names.MRR,
        names.CATEGORY_ACCURACY,
        names.ZEROSHOT_ACCURACY,
    }
    assert sig.loc[names.t2i_recall(1), "untested"] == compare.T2I_WHY
    assert sig.loc[names.ZEROSHOT_BALANCED_ACCURACY, "untested"] == compare.BALANCED_WHY
    assert pd.isna(sig.loc[names.t2i_recall(1), "p_value"])


def test_a_metric_one_run_lacks_is_named_not_dropped(seeded_env: Seeded) -> None:
    blip, clip = seeded_env.runs["blip"], seeded_env.runs["clip"]
    sig = compare.pairwise_significance([blip, clip]).set_index("metric")
    label = f"#{clip} "
    row = sig.loc[names.reranked(1)]
    assert row["untested"].startswith(f"not computed for run {label}") and pd.isna(row["n"])
    # the re-ranked per-item values average to the stored metric
    values = compare.per_item(compare.item_rows(blip), names.reranked(1))
    assert sum(values.values()) / len(values) == pytest.approx(_stored(blip)[names.reranked(1)])


def test_stored_metric_without_per_item_values(seeded_copy: Seeded) -> None:
    """A run stored before per-item probe results existed: said, not tested on nothing."""
    from mirada.db import write_session
    from mirada.db.models import Metric

    a, b = seeded_copy.runs["clip"], seeded_copy.runs["clip_random"]
    with write_session() as s:
        for rid in (a, b):
            s.add(Metric(run_id=rid, name=names.PROBE_ACCURACY, value=0.5, details={}))
    sig = compare.pairwise_significance([a, b]).set_index("metric")
    assert sig.loc[names.PROBE_ACCURACY, "untested"].startswith("per-image values not computed")
