"""Wilson intervals for proportions, bootstrap for means, chance levels and trivial R@k."""

from __future__ import annotations

import numpy as np
import pytest

from mirada.errors import MiradaError
from mirada.metrics import report, retrieval, stats
from mirada.metrics.types import IntervalMethod, MetricValue


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # statsmodels proportion_confint(s, n, method="wilson"), 95%; checked here by solving
        # the score-test equation (p̂ - p)² = z² p(1 - p) / n with scipy.optimize.brentq
        (0, 33, 0.0, 0.104270),
        (33, 33, 0.895730, 1.0),
        (8, 10, 0.490162, 0.943318),
        (1, 1, 0.206549, 1.0),
        (50, 100, 0.403832, 0.596168),
        (3, 7, 0.158220, 0.749542),
    ],
)
def test_wilson_known_values(successes: int, n: int, low: float, high: float) -> None:
    lo, hi = stats.wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=1e-6)
    assert hi == pytest.approx(high, abs=1e-6)


def test_wilson_never_a_point_and_validates() -> None:
    for n in (1, 4, 33, 1000):
        for s in (0, n):
            lo, hi = stats.wilson_interval(s, n)
            assert 0.0 <= lo < hi <= 1.0
    assert stats.wilson_interval(8, 10, 0.99)[0] < stats.wilson_interval(8, 10, 0.95)[0]
    assert all(np.isnan(stats.wilson_interval(0, 0)))
    with pytest.raises(MiradaError):
        stats.wilson_interval(11, 10)
    with pytest.raises(MiradaError):
        stats.wilson_interval(1, 10, confidence=1.0)


def _perfect(n_per_cat: int = 3, cats: tuple[str, ...] = ("a", "b", "c", "d")):
    """Embeddings where every image's own caption is its nearest (perfect retrieval)."""
    n = n_per_cat * len(cats)
    img = np.eye(n, dtype=np.float32)
    txt = np.eye(n, dtype=np.float32)
    ci = np.arange(n)
    categories = [c for c in cats for _ in range(n_per_cat)]
    # class embeddings: the mean of the category's images (zero-shot is perfect too)
    class_emb = np.stack(
        [img[[i for i, c in enumerate(categories) if c == k]].mean(0) for k in cats]
    )
    return img, txt, ci, categories, class_emb, list(cats)


def _by(metrics: list[MetricValue]) -> dict[tuple[str, str | None], MetricValue]:
    return {(m.name, m.category): m for m in metrics}


def test_match_report_uses_wilson_for_proportions_and_bootstrap_for_means() -> None:
    img, txt, ci, cats, class_emb, names = _perfect()
    n = img.shape[0]
    rep = report.build_match_report(
        img, txt, ci, range(n), range(n), cats, class_emb=class_emb, class_names=names,
        n_resamples=200,
    )  # fmt: skip
    by = _by(rep.metrics)
    for key in (
        ("i2t_recall@1", None),
        ("i2t_recall@5", None),
        ("t2i_recall@1", None),
        ("category_accuracy", None),
        ("zeroshot_accuracy", None),
        ("i2t_recall@1", "a"),
        ("category_accuracy", "b"),
        ("zeroshot_accuracy", "c"),
    ):
        m = by[key]
        assert m.value == 1.0, key
        assert m.details is not None and m.details["interval_method"] == IntervalMethod.wilson
        # the bootstrap said [1, 1]; Wilson never claims certainty
        assert m.ci_high == 1.0 and m.ci_low is not None and m.ci_low < 1.0, key
        lo, _ = stats.wilson_interval(m.details["n"], m.details["n"])
        assert m.ci_low == pytest.approx(lo)
    assert by[("i2t_recall@1", "a")].details["n"] == 3  # type: ignore[index]
    assert by[("mrr", None)].details["interval_method"] == "bootstrap"  # type: ignore[index]
    assert by[("zeroshot_balanced_accuracy", None)].details["interval_method"] == "bootstrap"  # type: ignore[index]


def test_chance_levels_and_trivial_recall() -> None:
    img, txt, ci, cats, class_emb, names = _perfect()  # 12 images, 12 captions, 4 classes
    n = img.shape[0]
    rep = report.build_match_report(
        img, txt, ci, range(n), range(n), cats, class_emb=class_emb, class_names=names,
        n_resamples=50,
    )  # fmt: skip
    d = {k: (m.details or {}) for k, m in _by(rep.metrics).items()}
    assert d[("zeroshot_accuracy", None)]["chance"] == pytest.approx(0.25)
    assert d[("zeroshot_accuracy", None)]["chance_basis"] == "for 4 classes"
    assert d[("zeroshot_accuracy", "a")]["chance"] == pytest.approx(0.25)
    assert d[("zeroshot_balanced_accuracy", None)]["chance"] == pytest.approx(0.25)
    assert d[("category_accuracy", None)]["chance"] == pytest.approx(0.25)  # balanced
    assert d[("i2t_recall@1", None)]["chance"] == pytest.approx(1 / 12)
    assert d[("i2t_recall@5", None)]["chance"] == pytest.approx(5 / 12)
    assert d[("t2i_recall@10", None)]["chance"] == pytest.approx(10 / 12)
    assert d[("i2t_recall@1", "b")]["chance"] == pytest.approx(1 / 12)
    assert "chance" not in d[("mrr", None)]
    assert not any("trivial" in v for v in d.values())

    # 4 images with 2 captions each: t2i R@5 and R@10 are trivial (k >= 4 images); i2t R@10
    # too (an image's own caption ranks at most 8 - 2 + 1 = 7), i2t R@5 is not.
    rng = np.random.default_rng(0)
    img4 = rng.normal(size=(4, 8)).astype(np.float32)
    img4 /= np.linalg.norm(img4, axis=1, keepdims=True)
    ci4 = np.repeat(np.arange(4), 2)
    txt4 = img4[ci4] + 0.1 * rng.normal(size=(8, 8)).astype(np.float32)
    txt4 /= np.linalg.norm(txt4, axis=1, keepdims=True)
    small = _by(report.build_match_report(img4, txt4, ci4, range(4), range(8), [None] * 4).metrics)
    assert "k = 5 ≥ 4 images" in small[("t2i_recall@5", None)].details["trivial"]  # type: ignore[index]
    assert "trivial" not in small[("t2i_recall@1", None)].details  # type: ignore[operator]
    assert small[("i2t_recall@10", None)].details["chance"] == 1.0  # type: ignore[index]
    assert "worst possible rank" in small[("i2t_recall@10", None)].details["trivial"]  # type: ignore[index]
    assert "trivial" not in small[("i2t_recall@5", None)].details  # type: ignore[operator]
    # hypergeometric: 1 - C(6, 5) / C(8, 5) = 1 - 6/56
    assert small[("i2t_recall@5", None)].details["chance"] == pytest.approx(1 - 6 / 56)  # type: ignore[index]


def test_chance_functions() -> None:
    # one caption per image: k/M; an image with all captions: 1
    assert retrieval.i2t_chance(np.arange(10), 10, 3) == pytest.approx(np.full(10, 0.3))
    assert retrieval.i2t_chance(np.array([0, 0, 1]), 2, 1) == pytest.approx([2 / 3, 1 / 3])
    assert retrieval.t2i_chance(4, 5) == 1.0 and retrieval.t2i_chance(10, 1) == 0.1
    # unbalanced categories: share of captions in the image's category
    ch = retrieval.category_chance(np.array([0, 1, 2, 2]), ["x", "y", "y", None])
    assert ch[:3] == pytest.approx([0.25, 0.75, 0.75]) and np.isnan(ch[3])


def test_interval_label_and_chance_note() -> None:
    from mirada.metrics.names import chance_note, interval_label, interval_name

    assert interval_label({"interval_method": "wilson"}) == "95% Wilson"
    assert interval_label({"interval_method": "bootstrap"}) == "95% bootstrap"
    assert interval_label(None) == "95% bootstrap"  # stored before the method was recorded
    assert interval_name({"interval_method": "wilson"}) == "Wilson"
    four = {"chance": 0.25, "chance_basis": "for 4 classes"}
    assert chance_note(0.10, 0.41, four) == "within chance (25% for 4 classes)"
    assert chance_note(0.01, 0.20, four) == "below chance (25% for 4 classes)"
    assert chance_note(0.30, 0.60, four) is None
    assert chance_note(None, None, four) is None
    trivial = {"chance": 1.0, "trivial": "trivial: k = 5 ≥ 4 images"}
    assert chance_note(0.5, 1.0, trivial) == "trivial: k = 5 ≥ 4 images"
    assert chance_note(0.1, 0.3, {}) is None
