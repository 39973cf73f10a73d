"""Retrieval metrics: hand-computed cases, ties, categories, zero-shot, chunked == dense."""

from __future__ import annotations

import numpy as np
import pytest

from mirada.errors import MiradaError
from mirada.metrics import rerank, retrieval


def dense_ranks(img: np.ndarray, txt: np.ndarray, ci: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference on the full matrix with the documented pessimistic tie rule."""
    s = img.astype(np.float64) @ txt.astype(np.float64).T
    own = ci[None, :] == np.arange(img.shape[0])[:, None]
    best = np.where(own, s, -np.inf).max(axis=1)
    i2t = 1 + ((s >= best[:, None]) & ~own).sum(axis=1)
    own_t = s[ci, np.arange(len(ci))]
    t2i = 1 + ((s.T >= own_t[:, None]) & ~own.T).sum(axis=1)
    return i2t, t2i


def test_hand_computed_several_captions_per_image() -> None:
    img = np.eye(3, dtype=np.float32)
    # image 0: caption 0; image 1: captions 1, 2; image 2: captions 3, 4
    txt = np.array(
        [[0.9, 0.1, 0.0], [0.0, 0.5, 0.0], [0.2, 0.9, 0.0], [0.0, 0.8, 0.3], [0.0, 0.0, 0.2]],
        dtype=np.float32,
    )
    ci = np.array([0, 1, 1, 2, 2])
    res = retrieval.retrieve(img, txt, ci, k=3)
    # image 0 scores captions [.9, 0, .2, 0, 0] -> own caption 0 first
    # image 1 scores [.1, .5, .9, .8, 0] -> own caption 2 first
    # image 2 scores [0, 0, 0, .3, .2] -> own caption 3 first
    assert res.i2t_rank.tolist() == [1, 1, 1]
    # captions retrieve images: c0 [.9,.1,0] ->1; c1 [0,.5,0] ->1; c2 [.2,.9,0] ->1;
    # c3 [0,.8,.3] -> image 2 is second; c4 [0,0,.2] -> 1
    assert res.t2i_rank.tolist() == [1, 1, 1, 2, 1]
    m = res.metrics
    assert m["i2t_recall@1"] == 1.0
    assert m["t2i_recall@1"] == pytest.approx(0.8)
    assert m["t2i_recall@5"] == 1.0
    assert m["mrr"] == 1.0
    assert m["t2i_mean_rank"] == pytest.approx(1.2)
    assert m["t2i_median_rank"] == 1.0
    assert set(m) == set(retrieval.METRIC_KEYS)
    assert res.topk_indices[1].tolist() == [2, 3, 1]
    np.testing.assert_allclose(res.topk_scores[1], [0.9, 0.8, 0.5], rtol=1e-6)


def test_first_correct_caption_rank_and_mrr() -> None:
    img = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    # image 0's captions score .2 and .5; image 1's caption scores .9 for image 0
    txt = np.array([[0.2, 0.0], [0.5, 0.1], [0.9, 0.3]], dtype=np.float32)
    ci = np.array([0, 0, 1])
    res = retrieval.retrieve(img, txt, ci)
    assert res.i2t_rank.tolist() == [2, 1]  # first correct caption (0.5) is behind 0.9
    assert res.metrics["mrr"] == pytest.approx((0.5 + 1.0) / 2)
    assert res.metrics["i2t_recall@1"] == 0.5
    assert res.metrics["i2t_median_rank"] == 1.5


def test_ties_count_against_the_model() -> None:
    img = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)  # duplicate images
    txt = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)  # all equal
    ci = np.array([0, 1, 1])
    res = retrieval.retrieve(img, txt, ci)
    # image 0: own caption ties with 2 wrong ones -> rank 3; image 1: ties with 1 -> rank 2
    assert res.i2t_rank.tolist() == [3, 2]
    # every caption ties with the other image -> rank 2
    assert res.t2i_rank.tolist() == [2, 2, 2]
    assert res.metrics["i2t_recall@1"] == 0.0
    # top-k order breaks ties by the lower caption index
    assert res.topk_indices[0].tolist() == [0, 1, 2]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 1000])
def test_chunked_equals_dense_random(chunk_size: int) -> None:
    rng = np.random.default_rng(chunk_size)
    n, d = 53, 16
    counts = rng.integers(1, 5, size=n)
    ci = np.repeat(np.arange(n), counts)
    rng.shuffle(ci)
    img = rng.standard_normal((n, d)).astype(np.float32)
    txt = (img[ci] + rng.standard_normal((len(ci), d)).astype(np.float32) * 2).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    i2t, top, _ = retrieval.i2t_ranks(img, txt, ci, k=5, chunk_size=chunk_size)
    t2i = retrieval.t2i_ranks(img, txt, ci, chunk_size=chunk_size)
    ref_i2t, ref_t2i = dense_ranks(img, txt, ci)
    np.testing.assert_array_equal(i2t, ref_i2t)
    np.testing.assert_array_equal(t2i, ref_t2i)
    s = img @ txt.T
    np.testing.assert_array_equal(top, np.argsort(-s, axis=1, kind="stable")[:, :5])


@pytest.mark.parametrize("chunk_size", [2, 5, 11])
def test_chunked_equals_dense_with_exact_ties(chunk_size: int) -> None:
    # small-integer vectors: dot products are exact in float32 and ties are frequent
    rng = np.random.default_rng(7)
    n = 23
    ci = np.concatenate([np.arange(n), rng.integers(0, n, size=40)])
    img = rng.integers(-1, 2, size=(n, 4)).astype(np.float32)
    txt = rng.integers(-1, 2, size=(len(ci), 4)).astype(np.float32)
    i2t, _, _ = retrieval.i2t_ranks(img, txt, ci, chunk_size=chunk_size)
    t2i = retrieval.t2i_ranks(img, txt, ci, chunk_size=chunk_size)
    ref_i2t, ref_t2i = dense_ranks(img, txt, ci)
    np.testing.assert_array_equal(i2t, ref_i2t)
    np.testing.assert_array_equal(t2i, ref_t2i)


def test_validation_errors() -> None:
    img = np.eye(2, dtype=np.float32)
    with pytest.raises(MiradaError, match="no caption"):
        retrieval.retrieve(img, img, np.array([0, 0]))
    with pytest.raises(MiradaError, match="dimension"):
        retrieval.retrieve(img, np.ones((2, 3), np.float32), np.array([0, 1]))
    with pytest.raises(MiradaError, match="caption_image"):
        retrieval.retrieve(img, img, np.array([0, 2]))


def test_categories_with_a_single_image_category() -> None:
    img = np.eye(3, dtype=np.float32)
    txt = np.array([[0.0, 1.0, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]], dtype=np.float32)
    ci = np.array([0, 1, 2])
    res = retrieval.retrieve(img, txt, ci)
    # image 0's top caption is caption 0? scores [0, 0, 0] -> ties, caption 0 is own
    cats = ["dog", "dog", "cat"]
    cr = retrieval.category_metrics(res.i2t_rank, res.topk_indices[:, 0], ci, cats)
    assert cr.per_category["cat"] == (1.0, 1)
    assert cr.per_category["dog"][1] == 2
    assert cr.mask.all()
    # image 0's top-1 caption (index 0, tie broken by index) belongs to image 0 -> dog == dog
    assert cr.category_correct.tolist() == [True, True, True]
    none = retrieval.category_metrics(res.i2t_rank, res.topk_indices[:, 0], ci, [None] * 3)
    assert none.per_category == {} and np.isnan(none.accuracy)


def test_category_accuracy_counts_same_category_misses() -> None:
    img = np.eye(3, dtype=np.float32)
    txt = np.array([[0.0, 1.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    ci = np.array([0, 1, 2])
    res = retrieval.retrieve(img, txt, ci)
    assert res.i2t_rank[0] == 3  # all captions score 0 for image 0 -> pessimistic
    cr = retrieval.category_metrics(res.i2t_rank, res.topk_indices[:, 0], ci, ["a", "a", None])
    assert cr.top1_category == ["a", "a", None]
    assert cr.category_correct.tolist() == [True, True, False]
    assert cr.accuracy == 1.0  # the uncategorised image is left out
    # image 1's best caption is image 0's (1.0 > 0.5): an i2t miss but a category hit
    assert res.i2t_rank[1] == 2
    assert cr.per_category == {"a": (0.0, 2)}


def test_zeroshot_template_average_and_confusion() -> None:
    prompts = retrieval.class_prompts(["hot_dog", "cat"])
    assert prompts[0] == ["a photo of hot dog.", "a photo of a hot dog.", "an image of hot dog."]
    class_emb = np.array(
        [[[1.0, 0.0], [2.0, 0.2], [1.0, -0.2]], [[0.0, 1.0], [0.1, 3.0], [0.0, 1.0]]],
        dtype=np.float32,
    )
    avg = retrieval.class_embeddings(class_emb)
    np.testing.assert_allclose(np.linalg.norm(avg, axis=1), 1.0, rtol=1e-6)
    img = np.array([[1, 0.1], [0.2, 1], [1, 0], [0.9, 0.2], [0, 1]], dtype=np.float32)
    cats = ["hot_dog", "cat", "cat", None, "unknown"]
    zs = retrieval.zeroshot_classify(img, class_emb, ["hot_dog", "cat"], cats)
    assert zs.predictions == ["hot_dog", "cat", "hot_dog", "hot_dog", "cat"]
    assert zs.mask.tolist() == [True, True, True, False, False]
    assert zs.matrix.tolist() == [[1, 0], [1, 1]]
    assert zs.accuracy == pytest.approx(2 / 3)
    assert zs.balanced_accuracy == pytest.approx((1.0 + 0.5) / 2)


def test_rerank_recovers_correct_caption() -> None:
    ci = np.array([0, 0, 1, 1])
    cand = np.array([[2, 0, 3], [0, 2, 1]])
    itm = np.array([[0.1, 0.9, 0.3], [0.5, 0.5, 0.2]])
    rr = rerank.rerank(cand, itm, ci)
    assert rr.order.tolist() == [[0, 3, 2], [0, 2, 1]]  # ties keep the contrastive order
    assert rr.rank.tolist() == [1, 2]
    assert rr.metrics == {"i2t_recall@1_reranked": 0.5}  # @5 needs >= 5 candidates
    with pytest.raises(MiradaError):
        rerank.rerank(cand, itm[:, :2], ci)


def test_topk_candidates() -> None:
    rng = np.random.default_rng(0)
    img = rng.standard_normal((9, 8)).astype(np.float32)
    txt = rng.standard_normal((20, 8)).astype(np.float32)
    cand = retrieval.topk_candidates(img, txt, 16, chunk_size=4)
    np.testing.assert_array_equal(cand, np.argsort(-(img @ txt.T), axis=1)[:, :16])
    assert retrieval.topk_candidates(img, txt[:3], 16).shape == (9, 3)
