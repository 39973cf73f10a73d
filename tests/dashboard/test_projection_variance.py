"""PCA axes say how much of the variance they show: the shares match scikit-learn's PCA."""

from __future__ import annotations

import numpy as np
import pytest
from dashboard_seed import Seeded

from mirada import projections
from mirada.queries.similarity import load_embeddings


@pytest.mark.parametrize("kind", ["image", "joint"])
def test_explained_variance_matches_sklearn(seeded_copy: Seeded, kind: str) -> None:
    from sklearn.decomposition import PCA

    rid = seeded_copy.runs["clip"]
    parts = [load_embeddings(rid, p) for p in (["image", "text"] if kind == "joint" else [kind])]
    vectors = np.concatenate([p[1] for p in parts if p is not None]).astype(np.float64)
    expected = PCA(n_components=2).fit(vectors).explained_variance_ratio_
    fresh = projections.get_projection(rid, "pca", kind)
    stored = projections.get_projection(rid, "pca", kind)  # read back: the same shares
    assert not fresh.cached and stored.cached
    for proj in (fresh, stored):
        assert proj.explained is not None
        assert np.allclose(proj.explained, expected, atol=1e-5)
    _, facts = projections.projection_frame(rid, "pca", kind)
    assert facts.explained == stored.explained
    assert projections.get_projection(rid, "tsne", "image", max_points=40).explained is None


def test_total_variance_in_chunks_is_the_whole() -> None:
    x = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float32)
    whole = float(x.astype(np.float64).var(axis=0).sum())
    assert projections.total_variance(x, chunk=64) == pytest.approx(whole, rel=1e-10)
    assert projections.explained_variance(np.zeros((3, 2)), np.ones((3, 4))) is None
