"""Bootstrap intervals, exact McNemar, paired bootstrap, run comparison, projection."""

from __future__ import annotations

import numpy as np
import pytest

from mirada.errors import MiradaError
from mirada.metrics import projection, stats


def test_bootstrap_ci_contains_estimate_and_shrinks() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 200, 2000):
        values = (rng.random(n) < 0.6).astype(float)
        lo, hi = stats.bootstrap_ci(values, n_resamples=500, seed=3)
        assert lo <= values.mean() <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert stats.bootstrap_ci([1.0]) == (1.0, 1.0)
    assert all(np.isnan(stats.bootstrap_ci([])))


def test_bootstrap_is_seeded_and_shared() -> None:
    values = np.arange(50, dtype=float)
    assert stats.bootstrap_ci(values, seed=5) == stats.bootstrap_ci(values, seed=5)
    cis = stats.bootstrap_cis({"x": values, "y": values * 2}, seed=5)
    assert cis["x"] == pytest.approx(stats.bootstrap_ci(values, seed=5))
    assert cis["y"][0] == pytest.approx(2 * cis["x"][0])
    w = stats.resample_weights(50, 100, 0)
    assert w.shape == (100, 50) and (w.sum(axis=1) == 50).all()


def test_mcnemar_textbook_cases() -> None:
    # b = 1 (A right, B wrong), c = 9 (A wrong, B right), plus concordant pairs
    a = [True] * 1 + [False] * 9 + [True] * 5 + [False] * 5
    b = [False] * 1 + [True] * 9 + [True] * 5 + [False] * 5
    res = stats.mcnemar_exact(a, b)
    assert (res["b"], res["c"], res["n"]) == (1, 9, 20)
    assert res["p_value"] == pytest.approx(0.021484375, abs=1e-12)
    same = stats.mcnemar_exact([True, False, True, False], [False, True, True, False])
    assert same["p_value"] == 1.0
    assert stats.mcnemar_exact([True, True], [True, True])["p_value"] == 1.0
    with pytest.raises(MiradaError):
        stats.mcnemar_exact([True], [True, False])


def test_mcnemar_matches_scipy() -> None:
    binomtest = pytest.importorskip("scipy.stats").binomtest
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.random(300) < 0.5
        b = rng.random(300) < 0.6
        res = stats.mcnemar_exact(a, b)
        ref = binomtest(min(res["b"], res["c"]), res["discordant"], 0.5).pvalue
        assert res["p_value"] == pytest.approx(ref, rel=1e-9)


def test_paired_bootstrap_and_compare_runs() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(400)
    b = a - 0.1 + rng.normal(0, 0.05, 400)
    res = stats.paired_bootstrap(a, b, n_resamples=500)
    assert res["ci_low"] < res["difference"] < res["ci_high"]
    assert res["difference"] == pytest.approx(0.1, abs=0.02)
    assert res["p_value"] < 0.01
    same = stats.paired_bootstrap(a, a)
    assert same["difference"] == 0 and same["p_value"] == 1.0

    a_ok = np.array([1] * 6 + [0] * 14)
    b_ok = np.array([0] * 5 + [1] + [0] * 14)
    cmp = stats.compare_runs(a_ok, b_ok, metric="i2t_recall@1", a_label="CLIP", b_label="BLIP")
    assert cmp["test"] == "mcnemar_exact" and cmp["n"] == 20
    assert cmp["difference"] == pytest.approx(25.0)
    assert cmp["p_value"] == pytest.approx(0.0625)
    assert not cmp["significant"]
    assert cmp["sentence"].startswith("CLIP vs BLIP: +25.0 points, 95% CI [")
    assert "not significant" in cmp["sentence"]
    assert set(cmp) >= {"metric", "a", "b", "difference", "ci_low", "ci_high", "p_value"}


@pytest.mark.parametrize("n", [5, 20])
def test_tsne_perplexity_clamped(n: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    assert projection.clamp_perplexity(None, 20) == 5.0
    assert projection.clamp_perplexity(30, n) == min(30, n - 1)
    out = projection.project(x, "tsne", perplexity=30)
    assert out.shape == (n, 2) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, projection.project(x, "tsne", perplexity=30))


def test_projection_small_inputs_and_pca() -> None:
    assert projection.project(np.zeros((0, 4)), "tsne").shape == (0, 2)
    np.testing.assert_array_equal(projection.project(np.ones((1, 4)), "tsne"), [[0, 0]])
    two = projection.project(np.array([[0, 0, 1.0], [1.0, 0, 0]]), "tsne")
    assert two.shape == (2, 2) and two[0, 0] == -two[1, 0] and (two[:, 1] == 0).all()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 6))
    pca = projection.project(x, "pca")
    assert pca.shape == (30, 2) and abs(float(np.corrcoef(pca.T)[0, 1])) < 1e-4
    with pytest.raises(MiradaError):
        projection.project(x, "umap")  # type: ignore[arg-type]
