"""Report builders the worker calls: arrays in, `MetricValue`/`ItemOutcome`/`CaptionOutcome` out.

Confidence intervals (95%), recorded per metric as details["interval_method"]:
- Proportions (i2t/t2i recall@k, re-ranked recall, category and zero-shot accuracy, their
  per-category rows, shares of degenerate or repeated captions) use the Wilson score interval
  of successes out of trials (`stats.wilson_interval`), which never claims certainty at 0% or
  100%. For t2i recall the trials are captions, counted as independent although an image's
  captions are related (the interval is then somewhat too narrow when they succeed together).
- Means of other per-item quantities (MRR, balanced zero-shot accuracy, per-image caption
  scores, repeated n-gram rate) use the percentile bootstrap over images, one set of resamples
  (seeded) shared by every metric of a report.

Chance (details "chance", "chance_basis"): what a model ranking or guessing uniformly at random
scores on these inputs (`retrieval.*_chance`). i2t R@k: 1 - C(M-c, k)/C(M, k) for an image
with c of the M captions, averaged over images (k/M with one caption per image); t2i R@k:
k/N (each caption has one image among N); category accuracy: share of captions whose image
has the query's category, averaged over images (1/C for C balanced categories); zero-shot
accuracy (plain and balanced): 1/C classes. When chance is 100% the metric is trivial
(details "trivial" says why, e.g. k >= the number of images).

Caption metric CIs (decision): CIDEr-D and ROUGE-L corpus scores are the mean of the per-image
scores, so their CI is the bootstrap of that mean (IDF held fixed at the full set's). Corpus
BLEU and METEOR are not means of per-image scores, so ci_low/ci_high stay empty and details
carry "per_image_mean" and "per_image_mean_ci" instead (labelled, never mixed with the
official corpus value). CLIPScore and RefCLIPScore (`clipscore`, when the run names a
--clipscore-model) are means of per-image values: bootstrap CI of that mean.

Zero-shot scores per item (ItemOutcome.details["zeroshot_scores"]): the cosine similarity of
the image with each class embedding (not a softmax: no temperature is applied), as
[[class, cosine], ...] from best to worst, the ZEROSHOT_TOP_CLASSES best only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mirada.errors import MiradaError
from mirada.metrics import captioning, clipscore, degeneration, names, rerank, retrieval, stats
from mirada.metrics.types import CaptionOutcome, IntervalMethod, ItemOutcome, MetricValue

TOP_K = 5
CONFIDENCE = 0.95
ZEROSHOT_TOP_CLASSES = 20  # per-item zero-shot scores kept (all classes when there are fewer)


@dataclass
class MatchReport:
    metrics: list[MetricValue] = field(default_factory=list)
    items: list[ItemOutcome] = field(default_factory=list)
    artifacts: dict[str, tuple[str, bytes]] = field(default_factory=dict)


@dataclass
class CaptionReport:
    metrics: list[MetricValue] = field(default_factory=list)
    captions: list[CaptionOutcome] = field(default_factory=list)
    artifacts: dict[str, tuple[str, bytes]] = field(default_factory=dict)


def _ci(samples: np.ndarray) -> tuple[float | None, float | None]:
    lo, hi = stats.percentile_interval(np.asarray(samples, dtype=np.float64), CONFIDENCE)
    return (None if np.isnan(lo) else lo), (None if np.isnan(hi) else hi)


@dataclass(frozen=True)
class Chance:
    """What a random model scores on one metric, and the words that say on what basis."""

    level: float
    basis: str  # completes "within chance (25% for 4 classes)": "for 4 classes"
    trivial: str | None = None  # why every model scores 100%, when it does

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"chance": self.level, "chance_basis": self.basis}
        return {**out, "trivial": self.trivial} if self.trivial else out


class RatioMetrics:
    """Collects ratio metrics (sum(num) / sum(den) over images). Proportions (`wilson=True`:
    num counts successes out of den trials per image) get a Wilson interval; the others are
    bootstrapped all at once, one matrix product over the shared resamples (weights from
    `stats.resample_weights`)."""

    def __init__(self, weights: np.ndarray) -> None:
        self.w = weights
        self.rows: list[tuple[str, np.ndarray, np.ndarray, str | None, bool, dict[str, Any]]] = []

    def add(
        self,
        name: str,
        num: np.ndarray,
        den: np.ndarray,
        *,
        category: str | None = None,
        wilson: bool = False,
        chance: Chance | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        extra = {**(chance.details() if chance is not None else {}), **(details or {})}
        self.rows.append((name, num, den, category, wilson, extra))

    def metrics(self) -> list[MetricValue]:
        boot = {str(i): r for i, r in enumerate(self.rows) if not r[4]}
        samples = stats.bootstrap_ratios(
            {k: r[1] for k, r in boot.items()}, {k: r[2] for k, r in boot.items()}, self.w
        )
        out = []
        for i, (name, num, den, category, wilson, details) in enumerate(self.rows):
            total = float(np.sum(den))
            hits = float(np.sum(num))
            value = hits / total if total else None
            lo: float | None = None
            hi: float | None = None
            if total and wilson:
                lo, hi = stats.wilson_interval(hits, total, CONFIDENCE)
            elif total:
                lo, hi = _ci(samples[str(i)])
            method = IntervalMethod.wilson if wilson else IntervalMethod.bootstrap
            info = {"n": round(total), "interval_method": method.value, **details}
            out.append(MetricValue(name, value, category, lo, hi, info))
        return out


def _ratio_metric(
    name: str, num: np.ndarray, den: np.ndarray, w: np.ndarray, *, wilson: bool = False
) -> MetricValue:
    acc = RatioMetrics(w)
    acc.add(name, num, den, wilson=wilson)
    return acc.metrics()[0]


def _mean_chance(per_image: np.ndarray, sel: np.ndarray | None = None) -> float:
    vals = per_image if sel is None else per_image[sel.astype(bool)]
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else float("nan")


def _i2t_chance(
    per_image: np.ndarray, k: int, m: int, worst: int, sel: np.ndarray | None = None
) -> Chance:
    level = _mean_chance(per_image, sel)
    trivial = None
    if level >= 1.0 - 1e-12:
        trivial = f"trivial: k = {k} ≥ {worst}, the worst possible rank among {m} captions"
    return Chance(level, f"for {m} captions", trivial)


def _uniform_chance(c: int, one: str, many: str) -> Chance:
    """1/c for a guess among c classes (or categories)."""
    return Chance(
        1.0 / c, f"for {c} {one if c == 1 else many}", f"trivial: 1 {one}" if c == 1 else None
    )


def rerank_inputs(image_emb: np.ndarray, text_emb: np.ndarray, k: int = 16) -> np.ndarray:
    """Caption indices [N, k] (contrastive top-k per image) to score with the ITM head.

    Pass them, with the ITM scores [N, k], to build_match_report(rerank_candidates=...,
    rerank_scores=...).
    """
    return retrieval.topk_candidates(image_emb, text_emb, k)


def build_match_report(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    item_ids: Sequence[int],
    caption_ids: Sequence[int],
    categories: Sequence[str | None],
    *,
    class_emb: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    rerank_candidates: np.ndarray | None = None,
    rerank_scores: np.ndarray | None = None,
    sigmoid_calibration: tuple[float, float] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> MatchReport:
    """Retrieval, category, zero-shot and re-ranking metrics with bootstrap CIs.

    image_emb [N, D] and text_emb [M, D] are L2-normalised; caption_image [M] maps captions to
    image positions; item_ids [N] / caption_ids [M] are the database ids reported back;
    categories [N] (None = uncategorised; all None skips category and zero-shot metrics).
    class_emb: [C, T, D] per-template class text embeddings (normalised per template,
    averaged, renormalised here; the CLIP recipe) or [C, D] already averaged; class_names [C]
    in the same order (see retrieval.class_prompts / ZEROSHOT_TEMPLATES).
    rerank_candidates [N, k] caption positions (from rerank_inputs) with rerank_scores [N, k]
    ITM probabilities add `i2t_recall@{1,5,10}_reranked` (k permitting).
    sigmoid_calibration (scale, bias) of a sigmoid-loss model (SigLIP) adds
    `zeroshot_sigmoid_prob` and per item `zeroshot_prob`: sigmoid(scale · cos + bias) of the
    predicted class, cos against the template-averaged class embedding the prediction used.
    """
    img, txt, ci = retrieval.validate_inputs(image_emb, text_emb, caption_image)
    n, m = img.shape[0], txt.shape[0]
    item_ids = [int(i) for i in item_ids]
    caption_ids = [int(c) for c in caption_ids]
    if len(item_ids) != n or len(caption_ids) != m:
        raise MiradaError(
            f"got {len(item_ids)} item ids for {n} images and {len(caption_ids)} caption ids "
            f"for {m} captions"
        )
    cats = retrieval.category_array(categories, n)
    ret = retrieval.retrieve(img, txt, ci, k=TOP_K)
    w = stats.resample_weights(n, n_resamples, seed)
    ones = np.ones(n)
    per_image_captions = np.bincount(ci, minlength=n).astype(np.float64)
    report = MatchReport()
    ratios = RatioMetrics(w)

    worst = m - int(per_image_captions.min()) + 1  # an image's own caption ranks at most this
    i2t_chance = {k: retrieval.i2t_chance(ci, n, k) for k in names.RECALL_KS}
    for k in names.RECALL_KS:
        ratios.add(
            names.i2t_recall(k),
            (ret.i2t_rank <= k).astype(float),
            ones,
            wilson=True,
            chance=_i2t_chance(i2t_chance[k], k, m, worst),
        )
    for k in names.RECALL_KS:
        hits = np.bincount(ci, weights=(ret.t2i_rank <= k).astype(float), minlength=n)
        trivial = f"trivial: k = {k} ≥ {n} images" if k >= n else None
        ratios.add(
            names.t2i_recall(k),
            hits,
            per_image_captions,
            wilson=True,
            chance=Chance(retrieval.t2i_chance(n, k), f"for {n} images", trivial),
            details={"images": n},
        )
    ratios.add(names.MRR, 1.0 / ret.i2t_rank, ones)

    top1 = ret.topk_indices[:, 0]
    cat_res = retrieval.category_metrics(ret.i2t_rank, top1, ci, cats)
    hit1 = (ret.i2t_rank == 1).astype(float)
    cat_chance = retrieval.category_chance(ci, cats)
    n_categories = len(cat_res.per_category)

    def category_chance(sel: np.ndarray | None = None) -> Chance:
        level = _mean_chance(cat_chance, sel)
        trivial = "trivial: 1 category" if n_categories == 1 else None
        noun = "category" if n_categories == 1 else "categories"
        return Chance(level, f"for {n_categories} {noun}", trivial)

    sels = {name: np.array([c == name for c in cats], dtype=float) for name in cat_res.per_category}
    if cat_res.mask.any():
        mask = cat_res.mask.astype(float)
        ratios.add(
            names.CATEGORY_ACCURACY,
            cat_res.category_correct * mask,
            mask,
            wilson=True,
            chance=category_chance(),
        )
        for name, sel in sels.items():
            ratios.add(
                names.i2t_recall(1),
                hit1 * sel,
                sel,
                category=name,
                wilson=True,
                chance=_i2t_chance(i2t_chance[1], 1, m, worst, sel),
            )
            ratios.add(
                names.CATEGORY_ACCURACY,
                cat_res.category_correct * sel,
                sel,
                category=name,
                wilson=True,
                chance=category_chance(sel),
            )

    zs: retrieval.ZeroShotResult | None = None
    zs_scores: list[list[list[Any]]] | None = None
    zs_prob: np.ndarray | None = None
    if class_emb is not None and class_names is not None and cat_res.mask.any():
        zs = retrieval.zeroshot_classify(img, class_emb, class_names, cats)
        zs_scores = _zeroshot_scores(img, class_emb, zs.labels)
        if zs.mask.any():
            zmask = zs.mask.astype(float)
            zchance = _uniform_chance(len(zs.labels), "class", "classes")
            ratios.add(
                names.ZEROSHOT_ACCURACY, zs.correct * zmask, zmask, wilson=True, chance=zchance
            )
            if sigmoid_calibration is not None:
                zs_prob = _zeroshot_sigmoid_probs(img, class_emb, sigmoid_calibration)
                scale, bias = sigmoid_calibration
                ratios.add(
                    names.ZEROSHOT_SIGMOID_PROB,
                    zs_prob * zmask,
                    zmask,
                    details={"logit_scale_exp": scale, "logit_bias": bias},
                )
            for name, sel in sels.items():
                zsel = sel * zmask
                if zsel.any():
                    ratios.add(
                        names.ZEROSHOT_ACCURACY,
                        zs.correct * zsel,
                        zsel,
                        category=name,
                        wilson=True,
                        chance=zchance,
                    )
            report.artifacts["zeroshot_confusion"] = (
                "application/json",
                json.dumps({"labels": zs.labels, "matrix": zs.matrix.tolist()}).encode(),
            )
        else:
            zs = None

    rr: rerank.RerankResult | None = None
    if rerank_candidates is not None and rerank_scores is not None:
        rr = rerank.rerank(rerank_candidates, rerank_scores, ci)
        if rr.order.shape[0] != n:
            raise MiradaError(f"re-ranking candidates cover {rr.order.shape[0]} of {n} images")
        for kk in names.RERANK_KS:
            if kk <= rr.order.shape[1]:
                hits = ((rr.rank >= 1) & (rr.rank <= kk)).astype(float)
                ratios.add(
                    names.reranked(kk),
                    hits,
                    ones,
                    wilson=True,
                    details={"candidates": int(rr.order.shape[1])},
                )

    report.metrics.extend(ratios.metrics())
    if zs is not None:
        report.metrics.append(_balanced_metric(zs, w))
    for name, count in (
        (names.I2T_MEDIAN_RANK, n),
        (names.I2T_MEAN_RANK, n),
        (names.T2I_MEDIAN_RANK, m),
        (names.T2I_MEAN_RANK, m),
    ):
        report.metrics.append(MetricValue(name, ret.metrics[name], details={"n": count}))

    for i in range(n):
        top = [
            [caption_ids[int(j)], float(s)]
            for j, s in zip(ret.topk_indices[i], ret.topk_scores[i], strict=True)
        ]
        details: dict[str, Any] = {
            "top": top,
            "category_correct": bool(cat_res.category_correct[i]) if cats[i] is not None else None,
            "zeroshot_pred": zs.predictions[i] if zs is not None else None,
            "category_top1": cat_res.top1_category[i],
        }
        if zs is not None and zs_scores is not None:
            details["zeroshot_scores"] = zs_scores[i]
        if zs_prob is not None:
            details["zeroshot_prob"] = round(float(zs_prob[i]), 5)
        if rr is not None:
            details["reranked"] = [
                [caption_ids[int(j)], float(s)]
                for j, s in zip(rr.order[i], rr.scores[i], strict=True)
            ]
        report.items.append(
            ItemOutcome(
                item_id=item_ids[i],
                correct=bool(ret.i2t_rank[i] == 1),
                rank=int(ret.i2t_rank[i]),
                score=float(ret.topk_scores[i, 0]),
                details=details,
            )
        )
    return report


def _zeroshot_scores(img: np.ndarray, class_emb: np.ndarray, labels: list[str]) -> list[Any]:
    """Per image: [[class, cosine], ...] best first, the ZEROSHOT_TOP_CLASSES best (cosines of
    the normalised image and class embeddings: the quantity the prediction is the argmax of)."""
    sims = np.asarray(img, dtype=np.float64) @ retrieval.class_embeddings(class_emb).T
    keep = min(ZEROSHOT_TOP_CLASSES, len(labels))
    order = np.argsort(-sims, axis=1, kind="stable")[:, :keep]
    return [
        [[labels[int(j)], round(float(row[j]), 5)] for j in idx]
        for row, idx in zip(sims, order, strict=True)
    ]


def _zeroshot_sigmoid_probs(
    img: np.ndarray, class_emb: np.ndarray, calibration: tuple[float, float]
) -> np.ndarray:
    """Per image: sigmoid(scale · cos + bias) of its predicted class (the largest cosine with
    the template-averaged, renormalised class embeddings, as zeroshot_classify predicts)."""
    scale, bias = (float(v) for v in calibration)
    if not (np.isfinite(scale) and np.isfinite(bias)):
        raise MiradaError(f"sigmoid calibration must be finite, got scale={scale}, bias={bias}")
    sims = np.asarray(img, dtype=np.float64) @ retrieval.class_embeddings(class_emb).T
    logits = scale * sims.max(axis=1) + bias
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the logistic function, without overflow


def _balanced_metric(zs: retrieval.ZeroShotResult, w: np.ndarray) -> MetricValue:
    c = len(zs.labels)
    onehot = np.zeros((len(zs.mask), c))
    rows = np.flatnonzero(zs.mask)
    onehot[rows, zs.class_index[rows]] = 1.0
    support = w @ onehot  # [R, C]
    hits = w @ (onehot * zs.correct[:, None])
    present = onehot.sum(axis=0) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits[:, present] / support[:, present]
    samples = np.nanmean(np.where(np.isfinite(recall), recall, np.nan), axis=1)
    lo, hi = _ci(samples)
    info = {
        "n": int(zs.mask.sum()),
        "classes": int(present.sum()),
        "interval_method": IntervalMethod.bootstrap.value,
        **_uniform_chance(c, "class", "classes").details(),
    }
    return MetricValue(names.ZEROSHOT_BALANCED_ACCURACY, zs.balanced_accuracy, None, lo, hi, info)


def build_caption_report(
    references: Mapping[int, Sequence[str]],
    predictions: Mapping[int, str],
    *,
    clip: clipscore.ClipScores | None = None,
    clip_model: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> CaptionReport:
    """Official COCO caption metrics (+ per-image scores) and degeneration indicators; with
    `clip` (per-image values in `references` order, computed with the model `clip_model`),
    CLIPScore and RefCLIPScore too."""
    scored = captioning.score_captions(references, predictions)
    keys = list(references)
    n = len(keys)
    if clip is not None and len(clip.clip_s) != n:
        raise MiradaError(f"{len(clip.clip_s)} CLIPScore values for {n} images")
    w = stats.resample_weights(n, n_resamples, seed)
    ones = np.ones(n)
    unavailable: dict[str, str] = scored.get("unavailable", {})
    report = CaptionReport()
    for name in captioning.METRIC_NAMES:
        value = scored[name]
        info: dict[str, Any] = {
            "implementation": captioning.IMPLEMENTATIONS[name],
            "n": n,
            "interval_method": IntervalMethod.bootstrap.value,
        }
        if value is None:
            info["unavailable"] = unavailable.get(name, "not computed")
            report.metrics.append(MetricValue(name, None, details=info))
            continue
        per = np.array([scored["per_item"][k][name] for k in keys], dtype=np.float64)
        lo, hi = _ci(stats.bootstrap_means(per, w))
        if name in (names.CIDER, names.ROUGE_L):
            info["ci"] = "bootstrap over images of the mean per-image score"
            report.metrics.append(MetricValue(name, float(value), None, lo, hi, info))
        else:
            info["per_image_mean"] = float(per.mean())
            info["per_image_mean_ci"] = [lo, hi]
            info["ci"] = "corpus score has no CI; per_image_mean_ci bootstraps the per-image mean"
            report.metrics.append(MetricValue(name, float(value), details=info))

    if clip is not None:
        report.metrics.extend(_clip_metrics(clip, w, clip_model))
        for i, k in enumerate(keys):
            per_item = scored["per_item"][k]
            per_item[names.CLIPSCORE] = float(clip.clip_s[i])
            ref = float(clip.ref_clip_s[i])
            per_item[names.REFCLIPSCORE] = None if np.isnan(ref) else ref

    flags, corpus = degeneration.degeneration({k: predictions[k] for k in keys})
    rates = np.array([flags[k][names.REPEATED_NGRAM_RATE] for k in keys])
    report.metrics.append(_ratio_metric(names.REPEATED_NGRAM_RATE, rates, ones, w))
    for name, per_item in (  # shares of images: proportions
        (names.VERBATIM_REPEAT_SHARE, np.array([flags[k]["verbatim_repeat"] for k in keys], float)),
        (names.DEGENERATE_SHARE, np.array([flags[k]["degenerate"] for k in keys], float)),
    ):
        report.metrics.append(_ratio_metric(name, per_item, ones, w, wilson=True))
    for name in (names.distinct(1), names.distinct(2)):
        report.metrics.append(MetricValue(name, corpus[name], details={"n": n}))

    for k in keys:
        report.captions.append(
            CaptionOutcome(
                item_id=int(k),
                text=str(predictions[k]),
                scores=scored["per_item"][k],
                flags=flags[k],
            )
        )
    corpus_doc = {
        "n_images": n,
        "n_references": int(sum(len(references[k]) for k in keys)),
        "scores": {name: scored[name] for name in captioning.METRIC_NAMES},
        "unavailable": unavailable,
        "tokenization": captioning.TOKENIZATION,
        "implementations": captioning.IMPLEMENTATIONS,
        "cider_note": captioning.CIDER_NOTE,
        "degeneration": corpus,
        "degeneration_rules": {
            "repeat_threshold": degeneration.REPEAT_THRESHOLD,
            "generic_min_images": degeneration.GENERIC_MIN_IMAGES,
        },
    }
    report.artifacts["caption_corpus"] = (
        "application/json",
        json.dumps(corpus_doc, default=str).encode(),
    )
    return report


def _clip_metrics(
    clip: clipscore.ClipScores, w: np.ndarray, model: str | None
) -> list[MetricValue]:
    """Corpus CLIPScore / RefCLIPScore: means of the per-image values, bootstrap CIs."""
    out = []
    for name, per in (
        (names.CLIPSCORE, clip.clip_s),
        (names.REFCLIPSCORE, clip.ref_clip_s),
    ):
        ok = np.isfinite(per)
        info: dict[str, Any] = {
            "implementation": f"Hessel et al. 2021, w = {clipscore.W}, "
            f"prefix {clipscore.PREFIX.strip()!r}",
            "model": model,
            "n": int(ok.sum()),
            "interval_method": IntervalMethod.bootstrap.value,
            "ci": "bootstrap over images of the mean per-image score",
            **clipscore.definition(),  # prefix and w, beside the value in show --json/exports
        }
        if not ok.any():
            info["unavailable"] = "no image has reference captions"
            out.append(MetricValue(name, None, details=info))
            continue
        lo, hi = _ci(stats.bootstrap_ratio(np.where(ok, per, 0.0), ok.astype(float), w))
        out.append(MetricValue(name, float(per[ok].mean()), None, lo, hi, info))
    return out


def _paired(
    a: Mapping[int, Any], b: Mapping[int, Any], *, binary: bool, metric: str, **kw: Any
) -> dict[str, Any]:
    """Align two runs' per-item values by item id (items in both only) and compare them."""
    common = sorted(set(a) & set(b))
    if not common:
        raise MiradaError("the two runs share no items; compare runs on the same dataset")
    av = np.array([np.nan if a[i] is None else a[i] for i in common], dtype=np.float64)
    bv = np.array([np.nan if b[i] is None else b[i] for i in common], dtype=np.float64)
    if not binary and not (np.isfinite(av).all() and np.isfinite(bv).all()):
        raise MiradaError(f"per-image {metric} scores are missing for some items")
    out = stats.compare_runs(av, bv, metric=metric, binary=binary, **kw)
    return {**out, "only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a))}


def compare_match_runs(
    a_correct: Mapping[int, bool],
    b_correct: Mapping[int, bool],
    *,
    metric: str = names.i2t_recall(1),
    a_label: str = "A",
    b_label: str = "B",
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Pairwise significance of two match runs from per-item correctness keyed by item id
    (items in both runs only): exact McNemar p, paired-bootstrap CI, in points (A - B)."""
    return _paired(
        a_correct, b_correct, binary=True, metric=metric, a_label=a_label, b_label=b_label,
        n_resamples=n_resamples, seed=seed,
    )  # fmt: skip


def compare_caption_runs(
    a_scores: Mapping[int, float],
    b_scores: Mapping[int, float],
    *,
    metric: str = names.CIDER,
    a_label: str = "A",
    b_label: str = "B",
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Pairwise comparison of per-image caption scores keyed by item id (paired bootstrap of
    the mean per-image score, A - B, in the metric's units)."""
    return _paired(
        a_scores, b_scores, binary=False, metric=metric, a_label=a_label, b_label=b_label,
        n_resamples=n_resamples, seed=seed,
    )  # fmt: skip


compare = compare_match_runs
