"""Linear probe and kNN: fidelity to scikit-learn, sanity on synthetic data, honest skips."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mirada.errors import MiradaError
from mirada.metrics import probe
from mirada.metrics.stats import wilson_interval

SMALL_GRID = (1e-2, 1.0, 1e2)


def _clusters(
    n_per: int, k: int, dim: int, spread: float, seed: int
) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    x = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centres])
    labels = [f"cat{i}" for i in range(k) for _ in range(n_per)]
    return x, labels


def test_probe_predictions_equal_sklearn_with_the_same_folds_and_c() -> None:
    x, labels = _clusters(12, 3, 8, 1.5, seed=3)
    result = probe.probe_accuracy(x, labels, seed=7, c_grid=SMALL_GRID)
    folds = probe.make_folds(labels, seed=7)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array(labels)
    direct = np.empty(len(y), dtype=object)
    for f, (tr, te) in enumerate(folds.splits):
        assert np.array_equal(np.flatnonzero(result.fold_of == f), np.sort(te))
        model = LogisticRegression(C=result.chosen_c[f], max_iter=1000).fit(xn[tr], y[tr])
        direct[te] = model.predict(xn[te])
    assert list(result.predictions) == list(direct)
    assert result.correct == int(np.sum(direct == y))
    assert result.ci == wilson_interval(result.correct, len(y))
    assert len(result.per_fold) == 5 and set(result.chosen_c) <= set(SMALL_GRID)


def test_separable_clusters_are_near_perfect_and_random_labels_near_chance() -> None:
    x, labels = _clusters(20, 4, 16, 0.05, seed=0)
    sep = probe.probe_accuracy(x, labels, c_grid=SMALL_GRID)
    assert sep.accuracy is not None and sep.accuracy >= 0.95
    assert np.trace(sep.confusion) == sep.correct and sep.confusion.sum() == 80
    assert all(r >= 0.9 for r in sep.recall.values())
    knn = probe.knn_accuracy(x, labels)
    assert all(r.accuracy is not None and r.accuracy >= 0.95 for r in knn.values())

    rng = np.random.default_rng(1)
    noise = rng.normal(size=(120, 16))
    shuffled = [f"cat{i}" for i in rng.integers(0, 4, size=120)]
    rand = probe.probe_accuracy(noise, shuffled, c_grid=SMALL_GRID)
    assert rand.accuracy is not None and rand.accuracy <= 0.5  # chance 0.25
    rand_knn = probe.knn_accuracy(noise, shuffled, ks=(5,))[5]
    assert rand_knn.accuracy is not None and rand_knn.accuracy <= 0.5


def test_small_category_is_skipped_with_a_message() -> None:
    x, labels = _clusters(6, 2, 4, 0.1, seed=2)
    x = np.vstack([x, np.ones((1, 4))])
    labels = [*labels, "lonely"]
    result = probe.probe_accuracy(x, labels, c_grid=SMALL_GRID)
    assert "fewer than 2 images in 'lonely': probe skipped" in result.messages
    assert result.categories == ("cat0", "cat1") and result.n == 12
    assert 12 not in result.indices
    assert result.reason is None and result.accuracy is not None
    knn = probe.knn_accuracy(x, labels, ks=(1,))[1]
    assert "fewer than 2 images in 'lonely': probe skipped" in knn.messages


def test_fewer_than_two_categories_gives_no_figure_and_says_why() -> None:
    x = np.random.default_rng(0).normal(size=(5, 3))
    result = probe.probe_accuracy(x, ["a", "a", "a", "a", "b"])
    assert result.accuracy is None and result.ci is None
    assert result.reason is not None and "1 category" in result.reason
    assert "fewer than 2 images in 'b': probe skipped" in result.messages
    knn = probe.knn_accuracy(x, ["a"] * 5)
    assert all(r.accuracy is None and r.reason for r in knn.values())


def test_tiny_categories_fall_back_to_c_1_and_say_so() -> None:
    x, labels = _clusters(2, 3, 4, 0.1, seed=5)  # k = 2 folds, 1 training image per category
    result = probe.probe_accuracy(x, labels)
    assert result.chosen_c == (1.0, 1.0)
    assert any("too few training images" in m for m in result.messages)


def test_knn_on_a_hand_made_example_equals_a_direct_computation() -> None:
    # angles on the unit circle: 'a' near 0 degrees, 'b' near 90 degrees
    deg = np.array([0, 10, 20, 30, 80, 85, 90, 95, 100, 50])
    labels = ["a", "a", "a", "a", "b", "b", "b", "b", "b", "a"]
    x = np.stack([np.cos(np.radians(deg)), np.sin(np.radians(deg))], axis=1) * 3.0
    results = probe.knn_accuracy(x, labels, ks=(1, 3), seed=4, max_folds=2)
    folds = probe.make_folds(labels, seed=4, max_folds=2)
    for k, res in results.items():
        expected = []
        pos = dict.fromkeys(range(len(labels)), "")
        for tr, te in folds.splits:
            for t in te:
                # cosine between unit vectors = cos(angle difference)
                sims = sorted(
                    ((np.cos(np.radians(deg[t] - deg[i])), i) for i in tr),
                    key=lambda s: (-s[0], s[1]),
                )[:k]
                tally: dict[str, list[float]] = {}
                for s, i in sims:
                    tally.setdefault(labels[i], []).append(s)
                pos[t] = max(sorted(tally), key=lambda c: (len(tally[c]), sum(tally[c])))
        expected = [pos[i] for i in range(len(labels))]
        assert list(res.predictions) == expected
        assert res.correct == sum(p == t for p, t in zip(expected, labels, strict=True))


def test_knn_vote_breaks_ties_by_similarity_sum() -> None:
    sims = np.array([[0.9, 0.8, 0.85, 0.1]])
    train_y = np.array([0, 0, 1, 1])
    # k = 2: one vote each; 'a' has 0.9, 'b' 0.85 -> a
    assert probe.knn_vote(sims, train_y, 2, 2).tolist() == [0]
    # k = 4: two votes each; 'a' 1.7, 'b' 0.95 -> a; flip the sums -> b
    assert probe.knn_vote(sims, train_y, 4, 2).tolist() == [0]
    assert probe.knn_vote(np.array([[0.1, 0.2, 0.9, 0.8]]), train_y, 4, 2).tolist() == [1]


def test_same_seed_same_result_other_seed_other_folds() -> None:
    x, labels = _clusters(10, 3, 6, 1.0, seed=9)
    a = probe.probe_accuracy(x, labels, seed=1, c_grid=SMALL_GRID)
    b = probe.probe_accuracy(x, labels, seed=1, c_grid=SMALL_GRID)
    assert a.predictions == b.predictions and a.chosen_c == b.chosen_c
    assert np.array_equal(a.fold_of, b.fold_of)
    c = probe.probe_accuracy(x, labels, seed=2, c_grid=SMALL_GRID)
    assert not np.array_equal(a.fold_of, c.fold_of)
    k1 = probe.knn_accuracy(x, labels, seed=1)
    k2 = probe.knn_accuracy(x, labels, seed=1)
    assert all(k1[k].predictions == k2[k].predictions for k in (1, 5))


def test_scale_and_zero_rows_do_not_matter_and_bad_input_is_refused() -> None:
    x, labels = _clusters(6, 2, 4, 0.5, seed=1)
    scaled = x * np.linspace(0.1, 10, len(x))[:, None]
    assert (
        probe.probe_accuracy(x, labels, c_grid=SMALL_GRID).predictions
        == probe.probe_accuracy(scaled, labels, c_grid=SMALL_GRID).predictions
    )
    assert np.all(probe.normalise(np.zeros((2, 3))) == 0)
    with pytest.raises(MiradaError, match="labels"):
        probe.probe_accuracy(x, labels[:-1])
    with pytest.raises(MiradaError, match="NaN"):
        probe.knn_accuracy(np.full((4, 2), np.nan), ["a", "a", "b", "b"])
    with pytest.raises(MiradaError, match="c_grid"):
        probe.probe_accuracy(x, labels, c_grid=(0.0,))
