"""2-D projections of embeddings for the dashboard's scatter views.

- "pca": centred data projected on the top two eigenvectors of its scatter matrix, signs
  fixed so the largest loading of each component is positive (deterministic).
  Fewer than two informative directions -> zeros.
- "tsne": scikit-learn's Barnes-Hut t-SNE (PCA initialisation, learning_rate="auto").
  Default perplexity = min(30, max(2, n / 4)) (5 for the study's 20 points); any perplexity is
  clamped to at most n - 1 because scikit-learn requires perplexity < n. With n <= 3 points
  t-SNE is meaningless and the PCA layout is returned instead.

n = 0 gives an empty [0, 2] array, n = 1 gives [[0, 0]]. Output is float32 [N, 2].
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mirada.errors import MiradaError

Method = Literal["tsne", "pca"]


def default_perplexity(n: int) -> float:
    return float(min(30.0, max(2.0, n / 4.0)))


def clamp_perplexity(perplexity: float | None, n: int) -> float:
    """The perplexity actually used for n points (see module docstring)."""
    p = default_perplexity(n) if perplexity is None else float(perplexity)
    if p <= 0:
        raise MiradaError(f"perplexity must be positive, got {perplexity}")
    return float(min(p, max(1.0, n - 1.0)))


def _pca(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2:
        return out
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    # eigenvectors of the D x D scatter matrix (cheaper than an SVD of the N x D data)
    evals, evecs = np.linalg.eigh(centred.T @ centred)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    keep = int(np.count_nonzero(evals > max(float(evals[0]), 0.0) * 1e-10)) if evals[0] > 0 else 0
    for c in range(min(2, keep)):
        v = evecs[:, c]
        v = v if v[np.argmax(np.abs(v))] >= 0 else -v
        out[:, c] = (centred @ v).astype(np.float32)
    return out


def project(
    embeddings: np.ndarray,
    method: Method = "tsne",
    *,
    seed: int = 0,
    perplexity: float | None = None,
) -> np.ndarray:
    """Project [N, D] embeddings to float32 [N, 2] with t-SNE or PCA (see module docstring)."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise MiradaError(f"embeddings must be [N, D], got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise MiradaError("embeddings contain NaN or infinite values")
    if method not in ("tsne", "pca"):
        raise MiradaError(f"unknown projection method {method!r}; use 'tsne' or 'pca'")
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if method == "pca" or n <= 3:
        return _pca(x)
    from sklearn.manifold import TSNE  # heavy import, only when needed

    tsne = TSNE(
        n_components=2,
        perplexity=clamp_perplexity(perplexity, n),
        init="pca",
        learning_rate="auto",
        method="barnes_hut",
        random_state=seed,
    )
    return np.asarray(tsne.fit_transform(x), dtype=np.float32)
