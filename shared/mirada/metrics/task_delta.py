"""What a model variant costs in task terms: per-item outcomes of one variant on a dataset's
items, and the paired difference of a task metric from the reference's on the same items.

Outcomes reuse the task metrics' own definitions (mirada.metrics.retrieval for i2t/t2i R@1
with its pessimistic ties and zero-shot accuracy; pycocoevalcap's per-image CIDEr-D and BLEU-4
through mirada.metrics.captioning), so a delta here is the change the match or caption task
would report. Differences come from `stats.compare_runs`: exact McNemar p and a paired
bootstrap CI for 0/1 outcomes, a paired bootstrap for per-image scores; all in points (percent
for accuracies and recalls, caption scores times 100).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mirada.metrics import captioning, names, retrieval, stats

CAPTION_COST_METRICS: tuple[str, ...] = (names.CIDER, names.bleu(4))
# any non-empty stand-in: it keeps the image in the scored set (CIDEr-D's IDF depends on the
# set's size) and its scores are then set to 0, what pycocoevalcap gives an empty hypothesis
_EMPTY_STAND_IN = "empty"


@dataclass(frozen=True)
class EmbeddingOutcomes:
    """Per-item correctness of one embedder on a dataset's items (None: not computable)."""

    i2t_correct: np.ndarray | None  # bool [images with captions]: top-1 caption is its own
    t2i_correct: np.ndarray | None  # bool [captions]: top-1 image is the caption's own
    top1_caption: np.ndarray | None  # int64 [images with captions]: top-1 caption index
    zeroshot_correct: np.ndarray | None  # bool [images with a category among the classes]

    def columns(self) -> dict[str, np.ndarray]:
        """Per-item 0/1 outcomes by metric key (only the computable ones)."""
        out = {
            names.i2t_recall(1): self.i2t_correct,
            names.t2i_recall(1): self.t2i_correct,
            names.ZEROSHOT_ACCURACY: self.zeroshot_correct,
        }
        return {k: v for k, v in out.items() if v is not None}


def embedding_outcomes(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    categories: Sequence[str | None],
    *,
    class_emb: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> EmbeddingOutcomes:
    """Outcomes of N images (`image_emb` [N, D], L2-normalised) against their M captions
    (`text_emb` [M, D], `caption_image` [M] image positions; images without a caption are left
    out of retrieval) and, with class embeddings ([C, T, D] or [C, D]), zero-shot classes."""
    ci = np.asarray(caption_image, dtype=np.int64)
    n = len(image_emb)
    i2t = t2i = top1 = None
    if ci.size:
        captioned = np.bincount(ci, minlength=n) > 0
        position = np.cumsum(captioned) - 1  # image position among the captioned ones
        ret = retrieval.retrieve(np.asarray(image_emb)[captioned], text_emb, position[ci], k=1)
        i2t, t2i, top1 = ret.i2t_correct, ret.t2i_rank == 1, ret.topk_indices[:, 0]
    zs = None
    if class_emb is not None and class_names is not None:
        res = retrieval.zeroshot_classify(image_emb, class_emb, class_names, categories)
        zs = res.correct[res.mask] if res.mask.any() else None
    return EmbeddingOutcomes(i2t, t2i, top1, zs)


def caption_scores(
    references: Mapping[int, Sequence[str]], predictions: Mapping[int, str]
) -> dict[str, np.ndarray]:
    """Per-image CIDEr-D and BLEU-4 times 100 (points), in `references` order, by metric key;
    empty when the official tokenisation is unavailable (no Java). Every id in `references`
    needs a non-empty reference; an empty prediction scores 0."""
    empty = {k for k in references if not " ".join(str(predictions[k]).split())}
    preds = {k: _EMPTY_STAND_IN if k in empty else predictions[k] for k in references}
    scored = captioning.score_captions(references, preds, meteor=False)
    out: dict[str, np.ndarray] = {}
    for metric in CAPTION_COST_METRICS:
        if scored[metric] is None:
            continue
        per = scored["per_item"]
        out[metric] = np.array(
            [0.0 if k in empty else 100.0 * per[k][metric] for k in references], dtype=np.float64
        )
    return out


@dataclass(frozen=True)
class PairedDelta:
    """A task metric of a variant and the reference on the same items, in points (the fields
    of mirada.benchmark_records.TaskMetric)."""

    value: float
    reference: float
    delta: float  # value - reference
    delta_ci: tuple[float, float] | None
    p_value: float | None
    test: str
    n: int
    changed: int  # items whose outcome differs from the reference's


def paired_delta(
    variant: np.ndarray,
    reference: np.ndarray,
    *,
    metric: str,
    binary: bool,
    seed: int = 0,
    n_resamples: int = 1000,
) -> PairedDelta:
    """`variant` against `reference`, per-item values aligned by item: 0/1 outcomes (binary;
    reported in percent) or per-item scores already in points."""
    a = np.asarray(variant, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    out = stats.compare_runs(a, b, metric=metric, binary=binary, seed=seed, n_resamples=n_resamples)
    ci = (float(out["ci_low"]), float(out["ci_high"]))
    return PairedDelta(
        value=float(out["a"]),
        reference=float(out["b"]),
        delta=float(out["difference"]),
        delta_ci=ci if all(np.isfinite(ci)) else None,
        p_value=float(out["p_value"]) if np.isfinite(out["p_value"]) else None,
        test=str(out["test"]),
        n=int(out["n"]),
        changed=int(np.count_nonzero(a != b)),
    )
