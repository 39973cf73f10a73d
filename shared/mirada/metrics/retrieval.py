"""Image<->text retrieval metrics from embeddings, computed in bounded blocks.

Inputs are L2-normalised float32 embeddings: `image_emb` [N, D], `text_emb` [M, D], and
`caption_image` [M] (int) giving each caption's image index, so an image may have any number
(>= 1) of captions. Scores are dot products (cosine similarity).

Definitions (CLIP_benchmark semantics, see shared/ANCHORS.md):

- image->text (i2t): an image's rank is the rank of its *first* (best-scoring) correct caption
  among all M captions; recall@k = share of images with rank <= k (any own caption in the top k).
  Recall@1 equals the seed study's top-1 accuracy. MRR is the mean of 1 / i2t rank.
- text->image (t2i): each caption retrieves its one image among all N images;
  recall@k = share of captions whose image ranks <= k.
- Ties count against the model (pessimistic): a wrong candidate scoring *exactly equal* to the
  best correct one is ranked ahead of it, i.e. rank = 1 + #{wrong candidates with score >= the
  correct score}. A model that gives every caption the same score therefore gets rank M - c + 1
  for an image with c captions (not 1). Ranks are 1-based; median/mean ranks use these ranks.

Memory: the N x M similarity matrix is never built. i2t works on blocks of `chunk_size` images x
all captions; t2i on blocks of captions x all images holding at most `chunk_size * M` scores;
each block's float32 scores and one boolean mask of the same shape are the largest temporaries
(256 x 25,000 -> 25.6 MB + 6.4 MB). The own-caption scores used as thresholds are read from the
same block as the competitors, so exact ties (duplicate images or captions) are compared
consistently.

Top-k lists (for drill-down and re-ranking candidates) are ordered by score, ties broken by the
lower caption index; recall@k is always derived from the ranks, not from the top-k lists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mirada.errors import MiradaError
from mirada.metrics import names
from mirada.metrics.names import i2t_recall, t2i_recall

DEFAULT_CHUNK_SIZE = 256
RECALL_KS = names.RECALL_KS
METRIC_KEYS = names.RETRIEVAL_METRICS  # what metrics_from_ranks returns

# CLIP-style zero-shot prompts; the caller encodes class_prompts(...) with the text encoder.
ZEROSHOT_TEMPLATES: tuple[str, ...] = ("a photo of {}.", "a photo of a {}.", "an image of {}.")


@dataclass(frozen=True)
class RetrievalResult:
    """Everything retrieval computes. Arrays are indexed by image (N) or caption (M) position."""

    metrics: dict[str, float]
    i2t_rank: np.ndarray  # int64 [N], 1-based rank of the first correct caption
    topk_indices: np.ndarray  # int64 [N, k], caption indices, best first
    topk_scores: np.ndarray  # float32 [N, k]
    t2i_rank: np.ndarray  # int64 [M], 1-based rank of each caption's own image

    @property
    def i2t_correct(self) -> np.ndarray:
        """bool [N]: the top-ranked caption is one of the image's own (recall@1 per image)."""
        return self.i2t_rank == 1


@dataclass(frozen=True)
class CategoryResult:
    """Per-category i2t top-1 and category-level accuracy (top-1 caption's image shares the
    query image's category). Images whose category is None are left out (mask False)."""

    per_category: dict[str, tuple[float, int]]  # category -> (i2t top-1 accuracy, n images)
    category_correct: np.ndarray  # bool [N]; meaningful where mask is True
    top1_category: list[str | None]  # category of the image owning each top-1 caption
    mask: np.ndarray  # bool [N]: image has a category
    accuracy: float  # mean of category_correct over mask (nan when no categories)


@dataclass(frozen=True)
class ZeroShotResult:
    labels: list[str]
    matrix: np.ndarray  # int64 [C, C], rows = true class, columns = predicted class
    predictions: list[str]  # predicted class name per image (all N images)
    mask: np.ndarray  # bool [N]: image has a category among `labels` (scored)
    correct: np.ndarray  # bool [N]; meaningful where mask is True
    accuracy: float
    balanced_accuracy: float  # mean recall over classes that occur among scored images
    class_index: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    # class_index: int64 [N], true class position in labels (-1 when not scored)


# ---------------------------------------------------------------------------------------------
# validation


def _as_embeddings(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise MiradaError(f"{name} must be a 2-D array [rows, dim], got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))[:10].tolist()
        raise MiradaError(f"{name} has NaN or infinite values in rows {bad}")
    return arr


def validate_inputs(
    image_emb: np.ndarray, text_emb: np.ndarray, caption_image: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (image_emb float32, text_emb float32, caption_image int64) or raise MiradaError."""
    img = _as_embeddings(image_emb, "image embeddings")
    txt = _as_embeddings(text_emb, "text embeddings")
    if img.shape[0] == 0 or txt.shape[0] == 0:
        raise MiradaError(
            f"retrieval needs at least one image and one caption (got {img.shape[0]} images, "
            f"{txt.shape[0]} captions)"
        )
    if img.shape[1] != txt.shape[1]:
        raise MiradaError(
            f"image and text embeddings differ in dimension ({img.shape[1]} vs {txt.shape[1]})"
        )
    ci = np.asarray(caption_image)
    if ci.shape != (txt.shape[0],) or (ci.size and not np.issubdtype(ci.dtype, np.integer)):
        raise MiradaError(
            f"caption_image must be an integer array with one entry per caption "
            f"(shape {(txt.shape[0],)}), got shape {ci.shape} dtype {ci.dtype}"
        )
    ci = ci.astype(np.int64)
    if ci.min() < 0 or ci.max() >= img.shape[0]:
        raise MiradaError(f"caption_image values must lie in [0, {img.shape[0] - 1}]")
    counts = np.bincount(ci, minlength=img.shape[0])
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)[:10].tolist()
        raise MiradaError(f"images at positions {missing} have no caption; every image needs one")
    return img, txt, ci


# ---------------------------------------------------------------------------------------------
# blocks


def _topk_rows(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row, best first; ties within the k broken by the lower column index."""
    m = block.shape[1]
    if k >= m:
        part = np.broadcast_to(np.arange(m), block.shape).copy()
    else:
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
    scores = np.take_along_axis(block, part, axis=1)
    order = np.lexsort((part, -scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return idx, np.take_along_axis(scores, order, axis=1).astype(np.float32)


def _caption_groups(caption_image: np.ndarray, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Captions sorted by image (stable) and the start offset of each image's group [N + 1]."""
    order = np.argsort(caption_image, kind="stable")
    starts = np.searchsorted(caption_image[order], np.arange(n_images + 1))
    return order, starts


def i2t_ranks(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    *,
    k: int = 5,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image->text: (first-correct rank [N], top-k caption indices [N,k], scores [N,k]).

    Blocks of `chunk_size` images x all captions; pessimistic ties (see module docstring).
    """
    img, txt, ci = validate_inputs(image_emb, text_emb, caption_image)
    n, m = img.shape[0], txt.shape[0]
    k = max(1, min(int(k), m))
    chunk_size = max(1, int(chunk_size))
    order, starts = _caption_groups(ci, n)
    ranks = np.empty(n, dtype=np.int64)
    top_idx = np.empty((n, k), dtype=np.int64)
    top_scores = np.empty((n, k), dtype=np.float32)
    for r0 in range(0, n, chunk_size):
        r1 = min(n, r0 + chunk_size)
        block = img[r0:r1] @ txt.T  # float32 [b, M]
        own = order[starts[r0] : starts[r1]]
        rows = ci[own] - r0
        vals = block[rows, own]
        best = np.full(r1 - r0, -np.inf, dtype=np.float32)
        np.maximum.at(best, rows, vals)
        count_ge = np.count_nonzero(block >= best[:, None], axis=1)
        own_ge = np.bincount(rows, weights=(vals >= best[rows]), minlength=r1 - r0)
        ranks[r0:r1] = 1 + count_ge - own_ge.astype(np.int64)
        top_idx[r0:r1], top_scores[r0:r1] = _topk_rows(block, k)
    return ranks, top_idx, top_scores


def t2i_ranks(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> np.ndarray:
    """Text->image: 1-based rank [M] of each caption's own image among all N images.

    Blocks of captions x all images holding at most `chunk_size * M` scores; pessimistic ties.
    """
    img, txt, ci = validate_inputs(image_emb, text_emb, caption_image)
    n, m = img.shape[0], txt.shape[0]
    step = max(1, (max(1, int(chunk_size)) * m) // n)
    ranks = np.empty(m, dtype=np.int64)
    for c0 in range(0, m, step):
        c1 = min(m, c0 + step)
        block = txt[c0:c1] @ img.T  # float32 [c, N]
        own = block[np.arange(c1 - c0), ci[c0:c1]]
        # counts the own image too (score >= itself), which supplies the +1
        ranks[c0:c1] = np.count_nonzero(block >= own[:, None], axis=1)
    return ranks


def topk_candidates(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    k: int = 16,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> np.ndarray:
    """Each image's top-k caption indices [N, k] by contrastive score, best first.

    These are the candidates to score with an image-text matching head (BLIP re-ranking);
    k is capped at the number of captions.
    """
    img = _as_embeddings(image_emb, "image embeddings")
    txt = _as_embeddings(text_emb, "text embeddings")
    k = max(1, min(int(k), txt.shape[0]))
    out = np.empty((img.shape[0], k), dtype=np.int64)
    for r0 in range(0, img.shape[0], max(1, int(chunk_size))):
        r1 = min(img.shape[0], r0 + max(1, int(chunk_size)))
        out[r0:r1] = _topk_rows(img[r0:r1] @ txt.T, k)[0]
    return out


# ---------------------------------------------------------------------------------------------
# metrics


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(np.asarray(ranks) <= k)) if len(ranks) else float("nan")


def metrics_from_ranks(i2t_rank: np.ndarray, t2i_rank: np.ndarray) -> dict[str, float]:
    """The METRIC_KEYS dict from first-correct ranks (fractions, not percent)."""
    out: dict[str, float] = {}
    for k in RECALL_KS:
        out[i2t_recall(k)] = recall_at(i2t_rank, k)
    for k in RECALL_KS:
        out[t2i_recall(k)] = recall_at(t2i_rank, k)
    out[names.MRR] = float(np.mean(1.0 / i2t_rank))
    out[names.I2T_MEDIAN_RANK] = float(np.median(i2t_rank))
    out[names.I2T_MEAN_RANK] = float(np.mean(i2t_rank))
    out[names.T2I_MEDIAN_RANK] = float(np.median(t2i_rank))
    out[names.T2I_MEAN_RANK] = float(np.mean(t2i_rank))
    return out


def retrieve(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    *,
    k: int = 5,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> RetrievalResult:
    """All retrieval metrics, per-image ranks and top-k (k for drill-down), per-caption ranks."""
    img, txt, ci = validate_inputs(image_emb, text_emb, caption_image)
    i2t, top_idx, top_scores = i2t_ranks(img, txt, ci, k=k, chunk_size=chunk_size)
    t2i = t2i_ranks(img, txt, ci, chunk_size=chunk_size)
    return RetrievalResult(metrics_from_ranks(i2t, t2i), i2t, top_idx, top_scores, t2i)


def category_array(categories: Sequence[str | None], n: int) -> list[str | None]:
    """One category per image as str or None (None and NaN, as pandas gives, mean none)."""
    cats = list(categories)
    if len(cats) != n:
        raise MiradaError(f"got {len(cats)} categories for {n} images; give one per image")
    return [None if c is None or (isinstance(c, float) and np.isnan(c)) else str(c) for c in cats]


def category_metrics(
    i2t_rank: np.ndarray,
    top1_caption: np.ndarray,
    caption_image: np.ndarray,
    categories: Sequence[str | None],
) -> CategoryResult:
    """Per-category i2t top-1 and category-level accuracy.

    `top1_caption` [N] is each image's top-ranked caption index (e.g. topk_indices[:, 0]).
    Category-level hit: that caption's image has the same category as the query image.
    """
    n = len(i2t_rank)
    cats = category_array(categories, n)
    ci = np.asarray(caption_image, dtype=np.int64)
    top_cat = [cats[int(ci[j])] for j in np.asarray(top1_caption, dtype=np.int64)]
    mask = np.array([c is not None for c in cats], dtype=bool)
    correct = np.array(
        [c is not None and c == t for c, t in zip(cats, top_cat, strict=True)], dtype=bool
    )
    hit = np.asarray(i2t_rank) == 1
    per: dict[str, tuple[float, int]] = {}
    for name in sorted({c for c in cats if c is not None}):
        sel = np.array([c == name for c in cats], dtype=bool)
        per[name] = (float(hit[sel].mean()), int(sel.sum()))
    acc = float(correct[mask].mean()) if mask.any() else float("nan")
    return CategoryResult(per, correct, top_cat, mask, acc)


# ---------------------------------------------------------------------------------------------
# zero-shot classification


def class_prompts(
    categories: Sequence[str], templates: Sequence[str] = ZEROSHOT_TEMPLATES
) -> list[list[str]]:
    """Prompts per class: [[template.format(class) for template in templates] for class ...].

    Underscores in class names become spaces (folder-style names such as "hot_dog").
    """
    return [[t.format(str(c).replace("_", " ")) for t in templates] for c in categories]


def class_embeddings(class_emb: np.ndarray) -> np.ndarray:
    """[C, D] class embeddings from [C, T, D] template embeddings (or [C, D] as given).

    CLIP recipe: L2-normalise each template embedding, average over templates, renormalise.
    A [C, D] input is only renormalised.
    """
    emb = np.asarray(class_emb, dtype=np.float32)
    if emb.ndim == 3:
        emb = emb / np.maximum(np.linalg.norm(emb, axis=2, keepdims=True), 1e-12)
        emb = emb.mean(axis=1)
    elif emb.ndim != 2:
        raise MiradaError(f"class embeddings must be [C, D] or [C, T, D], got shape {emb.shape}")
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def zeroshot_classify(
    image_emb: np.ndarray,
    class_emb: np.ndarray,
    class_names: Sequence[str],
    categories: Sequence[str | None],
) -> ZeroShotResult:
    """Predict each image's class as the argmax of image . class embedding.

    Only images whose category is one of `class_names` are scored (mask); the confusion
    matrix has rows = true class, columns = predicted class, in `class_names` order.
    """
    img = _as_embeddings(image_emb, "image embeddings")
    cls = class_embeddings(class_emb)
    labels = [str(c) for c in class_names]
    if cls.shape[0] != len(labels):
        raise MiradaError(f"{cls.shape[0]} class embeddings for {len(labels)} class names")
    if len(set(labels)) != len(labels):
        raise MiradaError("class names must be unique")
    if cls.shape[1] != img.shape[1]:
        raise MiradaError(
            f"class and image embeddings differ in dimension ({cls.shape[1]} vs {img.shape[1]})"
        )
    n = img.shape[0]
    cats = category_array(categories, n)
    pred = np.argmax(img @ cls.T, axis=1) if labels else np.zeros(n, dtype=np.int64)
    pos = {name: i for i, name in enumerate(labels)}
    true = np.array([pos.get(c, -1) if c is not None else -1 for c in cats], dtype=np.int64)
    mask = true >= 0
    c = len(labels)
    matrix = np.zeros((c, c), dtype=np.int64)
    if mask.any():
        np.add.at(matrix, (true[mask], pred[mask]), 1)
    correct = mask & (pred == true)
    acc = float(correct[mask].mean()) if mask.any() else float("nan")
    support = matrix.sum(axis=1)
    present = support > 0
    bal = float(np.mean(np.diag(matrix)[present] / support[present])) if present.any() else np.nan
    preds = [labels[int(p)] for p in pred] if labels else [""] * n
    return ZeroShotResult(labels, matrix, preds, mask, correct, acc, float(bal), true)


# ---------------------------------------------------------------------------------------------
# chance levels: what a model that ranks or guesses uniformly at random scores on these inputs


def i2t_chance(caption_image: np.ndarray, n_images: int, k: int) -> np.ndarray:
    """Per image [N]: probability that a random ordering of all M captions puts one of the
    image's c own captions in the top k, 1 - prod_{j<k} (M-c-j)/(M-j) (hypergeometric; k/M
    when every image has one caption). 1.0 where k reaches the worst possible rank M-c+1:
    there R@k is 100% for any model (trivial)."""
    ci = np.asarray(caption_image, dtype=np.int64)
    m = ci.size
    counts = np.bincount(ci, minlength=n_images).astype(np.float64)
    miss = np.ones(n_images, dtype=np.float64)
    for j in range(min(int(k), m)):
        miss *= np.clip(m - counts - j, 0, None) / (m - j)
    return 1.0 - miss


def t2i_chance(n_images: int, k: int) -> float:
    """Probability that a caption's one image is in the top k of N images ranked at random."""
    return min(int(k), n_images) / n_images if n_images else float("nan")


def category_chance(caption_image: np.ndarray, categories: Sequence[str | None]) -> np.ndarray:
    """Per image [N]: share of all captions whose image has the image's category, i.e. the
    category accuracy of a random top-1 caption (1/C for C balanced categories); NaN for
    uncategorised images."""
    ci = np.asarray(caption_image, dtype=np.int64)
    cats = category_array(categories, len(categories))
    per_caption = Counter(cats[int(i)] for i in ci)
    share = {c: per_caption[c] / ci.size for c in per_caption if c is not None}
    return np.array([share[c] if c is not None else np.nan for c in cats], dtype=np.float64)
