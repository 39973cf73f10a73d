"""Linear probe and kNN accuracy of image features on the user's own categories.

Both answer "do these features separate *my* categories, given a few labels?", the standard
second measure of an embedding after zero-shot. Pure computation on features already
computed: no model calls.

Choices (the figures move by points with each, so they are fixed and written down):

- **Features** are L2-normalised per row here (a zero row stays zero), whatever the caller
  passed; a caller passes the embeddings after the projection.
- **Categories with fewer than 2 images are skipped** with a message ("fewer than 2 images in
  'x': probe skipped"), since such a category can be in either the training part or the
  held-out part, never both. With fewer than 2 categories left there is no figure, and the
  result says why.
- **Folds:** scikit-learn's `StratifiedKFold(k, shuffle=True, random_state=seed)` with
  k = min(max_folds, smallest category size), so every category is in every held-out fold.
  The probe and kNN share the folds (`make_folds`).
- **Probe:** scikit-learn's `LogisticRegression` (lbfgs, L2, `max_iter=1000`). Within each
  outer fold, C is chosen over a log grid (default `C_GRID`, 10^-6 .. 10^6 one decade apart:
  the range of OpenAI's sweep, CLIP paper A.3) by accuracy on a validation split of the
  training part; ties go to the smaller C (stronger regularisation). The model is then refit
  with that C on the whole training part and predicts the held-out fold. Validation split
  (`validation_split`): per category with at least 2 training images, a seeded random
  round(20%) of them, at least 1 and at most all but 1; a category with 1 training image stays
  in the fitting part. If that leaves no validation image or fewer than 2 categories to fit,
  C = 1 is used and the result says so.
- **kNN:** cosine similarity to the training part, the k most similar images vote (one vote
  each); a tie between categories goes to the one whose tied voters have the larger summed
  similarity, then to the first category in sorted order. Neighbours of equal similarity are
  taken in input order. k is capped at the training part's size (the result says so).
- **Uncertainty:** accuracy over the pooled held-out predictions (every kept image is held out
  exactly once) with its Wilson interval, plus the per-fold accuracies.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mirada.errors import MiradaError
from mirada.metrics import names
from mirada.metrics.report import MatchReport
from mirada.metrics.stats import wilson_interval
from mirada.metrics.types import IntervalMethod, MetricValue

# scikit-learn (about 1.5 s to import) is imported where it is used, so readers of the keys
# and the artifact below (queries, bundles, pages) do not pay for it.

C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-6, 6, 13))
VALIDATION_FRACTION = 0.2
FALLBACK_C = 1.0
MAX_ITER = 1000
MIN_PER_CATEGORY = 2
BLAS_THREADS = 1


@dataclass(frozen=True)
class Folds:
    """The kept images, their categories and the seeded stratified folds over them."""

    indices: np.ndarray  # int64 [M]: positions in the caller's arrays of the kept images
    y: np.ndarray  # int64 [M]: category index into `categories`
    categories: tuple[str, ...]  # sorted
    splits: tuple[tuple[np.ndarray, np.ndarray], ...]  # (train, test) positions into indices
    messages: tuple[str, ...]  # skipped categories
    reason: str | None  # why there is no figure; None when there are folds


@dataclass(frozen=True, eq=False)
class ProbeResult:
    accuracy: float | None  # pooled held-out accuracy; None with `reason`
    ci: tuple[float, float] | None  # Wilson 95% interval of `accuracy`
    n: int  # images held out (= kept images)
    correct: int
    per_fold: tuple[float, ...]
    chosen_c: tuple[float, ...]  # per fold
    categories: tuple[str, ...]  # sorted; the confusion matrix's order
    confusion: np.ndarray  # int64 [K, K]: rows true, columns predicted
    recall: dict[str, float]  # per category
    indices: np.ndarray  # int64 [M]: the kept images, positions in the input
    predictions: tuple[str, ...]  # held-out prediction of each kept image, aligned with indices
    fold_of: np.ndarray  # int64 [M]: the outer fold that held each kept image out
    messages: tuple[str, ...]  # skipped categories, C fallbacks, non-convergence
    reason: str | None  # why there is no figure


@dataclass(frozen=True, eq=False)
class KnnResult:
    k: int
    accuracy: float | None
    ci: tuple[float, float] | None
    n: int
    correct: int
    per_fold: tuple[float, ...]
    indices: np.ndarray
    predictions: tuple[str, ...]
    messages: tuple[str, ...]
    reason: str | None


def normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float64; a zero row stays zero."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _check(features: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2:
        raise MiradaError(f"features must be a 2-D array [N, D], got shape {x.shape}")
    if x.shape[0] != len(labels):
        raise MiradaError(f"{x.shape[0]} feature rows but {len(labels)} labels")
    if not np.all(np.isfinite(x)):
        raise MiradaError("features contain NaN or infinite values")
    return normalise(x)


def make_folds(labels: Sequence[str], *, seed: int = 0, max_folds: int = 5) -> Folds:
    """Drop categories under 2 images and split the rest into seeded stratified folds."""
    if max_folds < 2:
        raise MiradaError(f"max_folds must be at least 2, got {max_folds}")
    names = [str(lab) for lab in labels]
    counts = Counter(names)
    messages = tuple(
        f"fewer than {MIN_PER_CATEGORY} images in {name!r}: probe skipped"
        for name in sorted(counts)
        if counts[name] < MIN_PER_CATEGORY
    )
    kept = tuple(name for name in sorted(counts) if counts[name] >= MIN_PER_CATEGORY)
    empty = np.zeros(0, dtype=np.int64)
    if len(kept) < 2:
        reason = (
            f"{len(kept)} categor{'y' if len(kept) == 1 else 'ies'} with at least "
            f"{MIN_PER_CATEGORY} images; a probe needs 2 or more"
        )
        return Folds(empty, empty, kept, (), messages, reason)
    code = {name: i for i, name in enumerate(kept)}
    indices = np.array([i for i, name in enumerate(names) if name in code], dtype=np.int64)
    y = np.array([code[names[i]] for i in indices], dtype=np.int64)
    from sklearn.model_selection import StratifiedKFold

    k = int(min(max_folds, np.bincount(y).min()))
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = tuple(
        (tr.astype(np.int64), te.astype(np.int64)) for tr, te in skf.split(np.zeros(len(y)), y)
    )
    return Folds(indices, y, kept, splits, messages, None)


def validation_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) positions into y: the rule in the module docstring."""
    rng = np.random.default_rng(seed)
    fit: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_val = 0
        if len(members) >= 2:
            n_val = min(max(1, round(VALIDATION_FRACTION * len(members))), len(members) - 1)
        val.append(members[:n_val])
        fit.append(members[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def fit_predict(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, c: float
) -> tuple[np.ndarray, bool]:
    """LogisticRegression(C=c) fitted on the training part: (predictions, converged)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # with sklearn

    model = LogisticRegression(C=c, solver="lbfgs", max_iter=MAX_ITER)
    # One BLAS thread: these matrices are small (images x embedding size), and threads that
    # wait on each other made a 120-image probe 20x slower on a busy 2-core worker.
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(BLAS_THREADS):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(train_x, train_y)
        predictions = model.predict(test_x)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return predictions, converged


def _choose_c(
    x: np.ndarray, y: np.ndarray, grid: Sequence[float], seed: int
) -> tuple[float | None, list[float]]:
    """The grid's C with the best validation accuracy (ties: smaller C), or None when the
    training part allows no validation split; and the C values whose fit did not converge."""
    fit, val = validation_split(y, seed)
    if len(val) == 0 or len(np.unique(y[fit])) < 2:
        return None, []
    best_c, best_acc = float(min(grid)), -1.0
    not_converged = []
    for c in sorted(grid):
        pred, ok = fit_predict(x[fit], y[fit], x[val], c)
        if not ok:
            not_converged.append(c)
        acc = float(np.mean(pred == y[val]))
        if acc > best_acc:
            best_c, best_acc = c, acc
    return best_c, not_converged


def _no_figure_probe(folds: Folds) -> ProbeResult:
    k = len(folds.categories)
    return ProbeResult(
        None, None, 0, 0, (), (), folds.categories, np.zeros((k, k), dtype=np.int64), {},
        folds.indices, (), np.zeros(0, dtype=np.int64), folds.messages, folds.reason,
    )  # fmt: skip


def probe_accuracy(
    features: np.ndarray,
    labels: Sequence[str],
    *,
    seed: int = 0,
    c_grid: Sequence[float] = C_GRID,
    max_folds: int = 5,
) -> ProbeResult:
    """Cross-validated linear-probe accuracy of `features` [N, D] for `labels` (N names).

    See the module docstring for the folds, the C sweep and the validation split."""
    if len(c_grid) == 0 or any(not c > 0 for c in c_grid):
        raise MiradaError(f"c_grid must hold positive values, got {list(c_grid)}")
    x_all = _check(features, labels)
    folds = make_folds(labels, seed=seed, max_folds=max_folds)
    if folds.reason is not None:
        return _no_figure_probe(folds)
    x, y = x_all[folds.indices], folds.y
    pred = np.full(len(y), -1, dtype=np.int64)
    fold_of = np.full(len(y), -1, dtype=np.int64)
    per_fold: list[float] = []
    chosen: list[float] = []
    messages = list(folds.messages)
    for f, (tr, te) in enumerate(folds.splits):
        best, not_converged = _choose_c(x[tr], y[tr], c_grid, seed)
        if best is None:
            messages.append(
                f"fold {f + 1}: too few training images for a validation split; C = {FALLBACK_C:g}"
            )
        c = FALLBACK_C if best is None else best
        p, ok = fit_predict(x[tr], y[tr], x[te], c)
        if not ok:
            not_converged.append(c)
        if not_converged:
            values = ", ".join(f"{v:g}" for v in sorted(set(not_converged)))
            messages.append(
                f"fold {f + 1}: lbfgs did not converge in {MAX_ITER} steps at C = {values}"
            )
        pred[te], fold_of[te] = p, f
        per_fold.append(float(np.mean(p == y[te])))
        chosen.append(float(c))
    return _summarise(folds, x, pred, fold_of, per_fold, chosen, messages)


def _summarise(
    folds: Folds,
    x: np.ndarray,
    pred: np.ndarray,
    fold_of: np.ndarray,
    per_fold: list[float],
    chosen: list[float],
    messages: list[str],
) -> ProbeResult:
    y, k = folds.y, len(folds.categories)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    correct = int(np.trace(confusion))
    recall = {
        name: float(confusion[i, i] / confusion[i].sum()) for i, name in enumerate(folds.categories)
    }
    return ProbeResult(
        accuracy=correct / len(y),
        ci=wilson_interval(correct, len(y)),
        n=len(y),
        correct=correct,
        per_fold=tuple(per_fold),
        chosen_c=tuple(chosen),
        categories=folds.categories,
        confusion=confusion,
        recall=recall,
        indices=folds.indices,
        predictions=tuple(folds.categories[i] for i in pred),
        fold_of=fold_of,
        messages=tuple(messages),
        reason=None,
    )


def knn_vote(sims: np.ndarray, train_y: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """Predicted class per row of `sims` [T, M] (similarity to M training images): the rule in
    the module docstring."""
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(sims))[:, None]
    votes = np.zeros((len(sims), n_classes), dtype=np.int64)
    weight = np.zeros((len(sims), n_classes), dtype=np.float64)
    np.add.at(votes, (np.broadcast_to(rows, order.shape), train_y[order]), 1)
    np.add.at(weight, (np.broadcast_to(rows, order.shape), train_y[order]), sims[rows, order])
    top = votes == votes.max(axis=1, keepdims=True)
    # among the categories with the most votes, the largest similarity sum; argmax takes the
    # first (sorted order) of any that remain tied
    return np.argmax(np.where(top, weight, -np.inf), axis=1)


def knn_accuracy(
    features: np.ndarray,
    labels: Sequence[str],
    *,
    ks: Sequence[int] = (1, 5),
    seed: int = 0,
    max_folds: int = 5,
) -> dict[int, KnnResult]:
    """Cross-validated cosine kNN accuracy for each k in `ks`, on the probe's folds."""
    if any(k < 1 for k in ks):
        raise MiradaError(f"every k must be at least 1, got {list(ks)}")
    x_all = _check(features, labels)
    folds = make_folds(labels, seed=seed, max_folds=max_folds)
    out: dict[int, KnnResult] = {}
    for k in dict.fromkeys(int(k) for k in ks):
        if folds.reason is not None:
            out[k] = KnnResult(
                k, None, None, 0, 0, (), folds.indices, (), folds.messages, folds.reason
            )
            continue
        x, y = x_all[folds.indices], folds.y
        pred = np.full(len(y), -1, dtype=np.int64)
        per_fold: list[float] = []
        messages = list(folds.messages)
        for f, (tr, te) in enumerate(folds.splits):
            k_used = min(k, len(tr))
            if k_used < k:
                messages.append(f"fold {f + 1}: k = {k} exceeds the {len(tr)} training images")
            p = knn_vote(x[te] @ x[tr].T, y[tr], k_used, len(folds.categories))
            pred[te] = p
            per_fold.append(float(np.mean(p == y[te])))
        correct = int(np.sum(pred == y))
        out[k] = KnnResult(
            k=k,
            accuracy=correct / len(y),
            ci=wilson_interval(correct, len(y)),
            n=len(y),
            correct=correct,
            per_fold=tuple(per_fold),
            indices=folds.indices,
            predictions=tuple(folds.categories[i] for i in pred),
            messages=tuple(messages),
            reason=None,
        )
    return out


# ---------------------------------------------------------------------------------------------
# What a match run stores (mirada.results lists it): metric rows, per-item keys, one artifact.

PROBE_ARTIFACT = "probe"
PROBE_PRED = "probe_pred"  # ItemResult.details: the out-of-fold prediction of a kept image
PROBE_CORRECT = "probe_correct"


def knn_pred(k: int) -> str:
    """ItemResult.details key of the out-of-fold kNN prediction (k neighbours)."""
    return f"knn{k}_pred"


def knn_correct(k: int) -> str:
    return f"knn{k}_correct"


# metric key -> its (prediction, correctness) keys in ItemResult.details
ITEM_KEYS: dict[str, tuple[str, str]] = {
    names.PROBE_ACCURACY: (PROBE_PRED, PROBE_CORRECT),
    **{names.knn_accuracy(k): (knn_pred(k), knn_correct(k)) for k in names.KNN_KS},
}


@dataclass(frozen=True)
class _Method:
    """One classifier's out-of-fold outcome, as the report stores it."""

    key: str  # metric key
    pred_key: str
    correct_key: str
    accuracy: float | None
    ci: tuple[float, float] | None
    n: int
    correct: int
    per_fold: tuple[float, ...]
    predictions: tuple[str, ...]
    messages: tuple[str, ...]  # beyond the skipped categories


@dataclass(frozen=True)
class ProbeReport:
    """Metric rows, per-item detail keys (by position in the caller's arrays) and the
    PROBE_ARTIFACT document of one run's probe and kNN."""

    metrics: list[MetricValue]
    item_details: dict[int, dict[str, Any]]
    artifact: dict[str, Any]


def build_probe_report(
    features: np.ndarray,
    categories: Sequence[str | None],
    *,
    seed: int = 0,
    ks: Sequence[int] = names.KNN_KS,
    c_grid: Sequence[float] = C_GRID,
    max_folds: int = 5,
) -> ProbeReport | None:
    """Linear probe and kNN of `features` [N, D] for `categories` [N] (None: uncategorised,
    left out), or None when no image has a category (nothing to classify).

    With fewer than 2 categories of at least 2 images the metrics are stored without a value,
    details {"unavailable": why}. Chance ("chance" in the details) is the majority share: what
    a classifier that learnt only the category frequencies scores; "uniform_chance" is 1/K.
    Per-category rows hold each category's recall (its images predicted right)."""
    kept = [i for i, c in enumerate(categories) if c is not None]
    if not kept:
        return None
    x = np.asarray(features)[kept]
    labels = [str(categories[i]) for i in kept]
    lin = probe_accuracy(x, labels, seed=seed, c_grid=c_grid, max_folds=max_folds)
    knn = knn_accuracy(x, labels, ks=ks, seed=seed, max_folds=max_folds)
    folds = make_folds(labels, seed=seed, max_folds=max_folds)
    skipped = set(folds.messages)
    methods = [
        _Method(
            names.PROBE_ACCURACY, PROBE_PRED, PROBE_CORRECT, lin.accuracy, lin.ci, lin.n,
            lin.correct, lin.per_fold, lin.predictions,
            tuple(m for m in lin.messages if m not in skipped),
        ),
        *(
            _Method(
                names.knn_accuracy(k), knn_pred(k), knn_correct(k), r.accuracy, r.ci, r.n,
                r.correct, r.per_fold, r.predictions,
                tuple(m for m in r.messages if m not in skipped),
            )
            for k, r in knn.items()
        ),
    ]  # fmt: skip
    where = np.asarray(kept, dtype=np.int64)[folds.indices]  # kept image -> caller's position
    truth = [folds.categories[i] for i in folds.y]
    counts = Counter(labels)
    sizes = {name: counts[name] for name in folds.categories}
    n_cat = len(folds.categories)
    majority = max(sizes.values()) / len(truth) if folds.reason is None else None
    base: dict[str, Any] = {
        "folds": len(folds.splits) or None,
        "seed": seed,
        "categories": n_cat,
        "skipped": list(folds.messages),
    }
    if majority is not None:
        base |= {
            "chance": majority,
            "chance_basis": f"by always predicting the largest of {n_cat} categories",
            "uniform_chance": 1.0 / n_cat,
        }

    metrics: list[MetricValue] = []
    items: dict[int, dict[str, Any]] = {}
    doc_methods: dict[str, Any] = {}
    for m in methods:
        if m.accuracy is None or m.ci is None:
            reason = lin.reason or "no figure"
            metrics.append(
                MetricValue(m.key, None, details={"unavailable": reason, "n": 0, **base})
            )
            continue
        info = {
            "n": m.n,
            "interval_method": IntervalMethod.wilson.value,
            **base,
            "per_fold": list(m.per_fold),
            **({"chosen_c": list(lin.chosen_c)} if m.key == names.PROBE_ACCURACY else {}),
            **({"notes": list(m.messages)} if m.messages else {}),
        }
        metrics.append(MetricValue(m.key, m.accuracy, None, m.ci[0], m.ci[1], info))
        confusion = np.zeros((n_cat, n_cat), dtype=np.int64)
        code = {name: i for i, name in enumerate(folds.categories)}
        predicted = np.array([code[p] for p in m.predictions], dtype=np.int64)
        np.add.at(confusion, (folds.y, predicted), 1)
        recall: dict[str, float] = {}
        for i, name in enumerate(folds.categories):
            hits, total = int(confusion[i, i]), int(confusion[i].sum())
            recall[name] = hits / total
            lo, hi = wilson_interval(hits, total)
            per_cat = {
                "n": total,
                "interval_method": IntervalMethod.wilson.value,
                "chance": 1.0 / n_cat,
                "chance_basis": f"for {n_cat} categories",
            }
            metrics.append(MetricValue(m.key, hits / total, name, lo, hi, per_cat))
        for pos, true, pred in zip(where, truth, m.predictions, strict=True):
            slot = items.setdefault(int(pos), {})
            slot[m.pred_key] = pred
            slot[m.correct_key] = pred == true
        doc_methods[m.key] = {
            "n": m.n,
            "correct": m.correct,
            "per_fold": list(m.per_fold),
            "matrix": confusion.tolist(),
            "recall": recall,
            "messages": list(m.messages),
        }
    artifact = {
        "seed": seed,
        "max_folds": max_folds,
        "folds": len(folds.splits) or None,
        "c_grid": [float(c) for c in c_grid],
        "validation_fraction": VALIDATION_FRACTION,
        "chosen_c": list(lin.chosen_c),
        "labels": list(folds.categories),
        "sizes": sizes,
        "methods": doc_methods,
        "skipped": list(folds.messages),
        "reason": lin.reason,
    }
    return ProbeReport(metrics, items, artifact)


def with_probe(
    report: MatchReport,
    features: np.ndarray,
    categories: Sequence[str | None],
    *,
    seed: int = 0,
) -> MatchReport:
    """`report` (of the same images, in the same order) with the probe's metric rows, its
    per-item keys merged into each ItemOutcome's details and the PROBE_ARTIFACT added."""
    found = build_probe_report(features, categories, seed=seed)
    if found is None:
        return report
    items = [
        replace(it, details={**(it.details or {}), **found.item_details[i]})
        if i in found.item_details
        else it
        for i, it in enumerate(report.items)
    ]
    artifact = ("application/json", json.dumps(found.artifact).encode())
    return MatchReport(
        metrics=[*report.metrics, *found.metrics],
        items=items,
        artifacts={**report.artifacts, PROBE_ARTIFACT: artifact},
    )
