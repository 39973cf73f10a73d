"""BLIP-style re-ranking: contrastive scores pick each image's top-k caption candidates, an
image-text matching (ITM) head scores those candidates, and the candidates are re-ordered by
the ITM probability (LAVIS `blip_retrieval_coco.yaml` recipe; k=16 by default here).

Re-ranked recall@k counts an image as a hit when one of its own captions is among the first k
re-ordered candidates. Captions outside the candidate list can never be recovered, so
re-ranked recall@k is bounded by the contrastive recall@(candidate count), and recall@k is only
reported for k <= candidate count. Ties in ITM probability keep the contrastive order (stable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mirada.errors import MiradaError
from mirada.metrics.names import RERANK_KS, reranked


@dataclass(frozen=True)
class RerankResult:
    metrics: dict[str, float]  # "i2t_recall@1_reranked", "i2t_recall@5_reranked", ...
    order: np.ndarray  # int64 [N, k]: caption indices re-ordered by ITM score, best first
    scores: np.ndarray  # float32 [N, k]: the ITM scores in that order
    rank: np.ndarray  # int64 [N]: 1-based position of the first own caption; 0 = not in list

    @property
    def correct(self) -> np.ndarray:
        return self.rank == 1


def rerank(
    candidates: np.ndarray, itm_scores: np.ndarray, caption_image: np.ndarray
) -> RerankResult:
    """Re-order each image's candidates [N, k] (caption indices) by ITM scores [N, k].

    Row i of `candidates` belongs to image i; `caption_image` [M] maps captions to images.
    """
    cand = np.asarray(candidates)
    itm = np.asarray(itm_scores, dtype=np.float32)
    ci = np.asarray(caption_image, dtype=np.int64)
    if cand.ndim != 2 or cand.shape != itm.shape:
        raise MiradaError(
            f"re-ranking needs candidates and ITM scores of the same shape [N, k], got "
            f"{cand.shape} and {itm.shape}"
        )
    if cand.size and (cand.min() < 0 or cand.max() >= len(ci)):
        raise MiradaError(f"candidate caption indices must lie in [0, {len(ci) - 1}]")
    if not np.isfinite(itm).all():
        raise MiradaError("ITM scores contain NaN or infinite values")
    cand = cand.astype(np.int64)
    n, k = cand.shape
    order = np.argsort(-itm, axis=1, kind="stable")
    reordered = np.take_along_axis(cand, order, axis=1)
    scores = np.take_along_axis(itm, order, axis=1)
    hit = ci[reordered] == np.arange(n)[:, None]
    rank = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0).astype(np.int64)
    metrics = {
        reranked(kk): float(np.mean((rank >= 1) & (rank <= kk))) if n else np.nan
        for kk in RERANK_KS
        if kk <= k
    }
    return RerankResult(metrics, reordered, scores, rank)
