"""CLIPScore and RefCLIPScore (Hessel et al., 2021, "CLIPScore: A Reference-free Evaluation
Metric for Image Captioning"), from embeddings.

CLIP-S(c, v) = w * max(cos(c, v), 0) with w = 2.5, where c is the candidate caption's text
embedding and v the image's. RefCLIP-S(c, R, v) = H-Mean(CLIP-S(c, v), max(max_{r in R}
cos(c, r), 0)): the harmonic mean of CLIP-S and the best reference similarity (0 when both
are 0). As in the paper's code, every text (candidate and references) is embedded with the
prefix "A photo depicts " before it (`PREFIX`; the caller adds it). The corpus score is the
mean of the per-image values.

Negative cosines are clipped per image, before the mean. torchmetrics' `CLIPScore` differs: it
reports 100 * cos (no w) with no prefix, and clips the mean rather than each image, so its
numbers are not comparable with these. The prefix matters: on the demo's captions the corpus
CLIPScore is 0.676 with it and 2.10 without. Each stored value carries the `prefix` and `w`
it was computed with (`definition`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mirada.errors import MiradaError
from mirada.metrics.names import CLIPSCORE_METRICS

W = 2.5
PREFIX = "A photo depicts "
METRIC_NAMES = CLIPSCORE_METRICS  # the keys this module's scores are stored under


def definition(details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{"prefix", "w"}: what a stored CLIPScore or RefCLIPScore was computed with, as its
    details record them; runs stored before they were recorded used these same constants."""
    info = details or {}
    return {"prefix": info.get("prefix", PREFIX), "w": info.get("w", W)}


@dataclass(frozen=True)
class ClipScores:
    clip_s: np.ndarray  # [N] per image
    ref_clip_s: np.ndarray  # [N] per image; NaN for an image without references


def _unit(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise MiradaError(f"{what} must be a 2-D array, got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def harmonic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2ab / (a + b) elementwise, 0 where a + b is 0 (both scores are clipped at 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * a * b / np.where(total > 0, total, 1.0), 0.0)


def clip_scores(
    image_emb: np.ndarray,
    candidate_emb: np.ndarray,
    reference_emb: np.ndarray,
    reference_image: Sequence[int] | np.ndarray,
    *,
    w: float = W,
) -> ClipScores:
    """Per-image CLIP-S and RefCLIP-S.

    image_emb [N, D] and candidate_emb [N, D] (row i: image i and its generated caption);
    reference_emb [M, D] with reference_image [M] the image position of each reference.
    Embeddings need not be normalised (cosines are taken here).
    """
    img = _unit(image_emb, "image embeddings")
    cand = _unit(candidate_emb, "candidate embeddings")
    if img.shape != cand.shape:
        raise MiradaError(f"{img.shape[0]} images but {cand.shape[0]} candidate captions")
    n = img.shape[0]
    clip_s = w * np.maximum(np.sum(img * cand, axis=1), 0.0)
    owner = np.asarray(reference_image, dtype=np.int64)
    best = np.full(n, -np.inf)
    if owner.size:
        refs = _unit(reference_emb, "reference embeddings")
        if refs.shape[0] != owner.size or refs.shape[1] != cand.shape[1]:
            raise MiradaError(
                f"reference embeddings {refs.shape} do not match {owner.size} references of "
                f"dimension {cand.shape[1]}"
            )
        if owner.min() < 0 or owner.max() >= n:
            raise MiradaError("a reference points to an image outside the candidates")
        sims = np.sum(refs * cand[owner], axis=1)
        np.maximum.at(best, owner, sims)
    has_ref = np.isfinite(best)
    ref_part = np.maximum(np.where(has_ref, best, 0.0), 0.0)
    ref_clip_s = np.where(has_ref, harmonic_mean(clip_s, ref_part), np.nan)
    return ClipScores(clip_s=clip_s, ref_clip_s=ref_clip_s)
