"""Read one succeeded run into the export dict (the JSON export is exactly this dict).

See `mirada.export` for the dict's keys. Reading is read-only and in one snapshot; everything
else in the package renders this dict.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import Caption, GeneratedCaption, Item, ItemResult, Metric, Run
from mirada.domain import RunStatus, Task
from mirada.errors import MiradaError
from mirada.metrics import clipscore
from mirada.metrics.names import CLIPSCORE_METRICS, chance_note, metric_name
from mirada.metrics.probe import ITEM_KEYS
from mirada.queries.runs import run_detail
from mirada.version import __version__

NOTES_RETRIEVAL = (
    "Recall@k with several captions per image: image-to-text counts a hit when any of the "
    "image's own captions is in the top k (rank = rank of its best-scoring own caption among "
    "all captions); text-to-image counts a hit when a caption's image is in the top k. "
    "Ties count against the model. MRR is the mean of 1/rank (image-to-text).",
)
NOTES_CAPTION = (
    "Caption metrics come from pycocoevalcap with the PTB tokenizer (Java): BLEU-1..4 "
    "corpus-level with the closest reference length, METEOR 1.5, ROUGE-L (LCS F-score, "
    "beta 1.2) and CIDEr-D with the IDF of this set's own references. Because of that IDF, "
    "CIDEr is comparable only between runs on the same reference set, not with published "
    "COCO numbers. Scores are on pycocoevalcap's scale (CIDEr 1.335 is the 133.5 papers "
    "report). SPICE is not computed.",
)
NOTES_BENCHMARK = (
    "Latencies are per item, measured after warm-up batches; throughput is items per second "
    "at the given batch size; memory is the peak resident memory of the worker process.",
)


def ci_note(n_resamples: int) -> str:
    return (
        "95% confidence intervals: proportions (recalls, accuracies, shares of images) use the "
        "Wilson score interval, which never shrinks to a point at 0% or 100%; MRR and other "
        f"means use percentile bootstrap intervals over images ({n_resamples:,} resamples)."
    )


# ------------------------------------------------------------------------------------------
# Reading


def _metric_entry(m: Metric) -> dict[str, Any]:
    details = m.details or {}
    has_ci = m.ci_low is not None or m.ci_high is not None
    entry: dict[str, Any] = {
        "value": m.value,
        "ci_low": m.ci_low,
        "ci_high": m.ci_high,
        # rows stored before the method was recorded were all bootstrap intervals
        "interval_method": details.get("interval_method", "bootstrap") if has_ci else None,
        "unavailable": details.get("unavailable"),
        "chance": details.get("chance"),
        "chance_basis": details.get("chance_basis"),
        "trivial": details.get("trivial"),
    }
    if details.get("per_image_mean") is not None:  # BLEU-n, METEOR: the corpus value has no CI
        entry["per_image_mean"] = details["per_image_mean"]
        entry["per_image_mean_ci"] = details.get("per_image_mean_ci")
    if m.name in CLIPSCORE_METRICS:
        entry.update(clipscore.definition(details))
    return entry


def _not_exportable(run_id: int, status: str, error: str | None) -> MiradaError:
    if status in (RunStatus.queued.value, RunStatus.running.value):
        return MiradaError(
            f"run {run_id} is {status}, not finished; export needs a succeeded run "
            f"(watch it with `mirada show {run_id}`)"
        )
    if status == RunStatus.failed.value:
        why = f": {error.splitlines()[0]}" if error else ""
        return MiradaError(
            f"run {run_id} failed{why}; nothing to export (re-queue it with "
            f"`mirada retry {run_id}`)"
        )
    return MiradaError(
        f"run {run_id} is {status}; only succeeded runs can be exported "
        f"(re-queue it with `mirada retry {run_id}`)"
    )


def fingerprint_sha256(fingerprint: Mapping[str, Any] | None) -> str | None:
    """A short stable id of a model fingerprint (same weights+revision+preprocessing+dtype)."""
    if not fingerprint:
        return None
    blob = json.dumps(fingerprint, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _details(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_pair(value: Any) -> tuple[int | None, float | None]:
    """[[caption_id, score], ...] -> the first pair, tolerant of missing or odd values."""
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, (list, tuple)) and len(first) >= 2:
            cid, score = first[0], first[1]
            return (int(cid) if cid is not None else None, score)
    return None, None


def build_export(run_id: int) -> dict[str, Any]:
    """Everything worth keeping about a succeeded run, as one JSON-ready dict."""
    detail = run_detail(run_id, with_captions=False)  # NotFoundError for unknown ids
    if detail["status"] != RunStatus.succeeded.value:
        raise _not_exportable(run_id, detail["status"], detail.get("error"))
    dataset_id = detail["dataset"]["id"]

    with read_session() as s:
        metric_rows = s.scalars(
            select(Metric).where(Metric.run_id == run_id).order_by(Metric.id)
        ).all()
        item_rows = s.execute(
            select(Item, ItemResult, GeneratedCaption)
            .outerjoin(ItemResult, (ItemResult.item_id == Item.id) & (ItemResult.run_id == run_id))
            .outerjoin(
                GeneratedCaption,
                (GeneratedCaption.item_id == Item.id) & (GeneratedCaption.run_id == run_id),
            )
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Item.id)
        ).all()
        caption_rows = s.execute(
            select(Caption.id, Caption.item_id, Caption.text)
            .join(Item, Item.id == Caption.item_id)
            .where(Item.dataset_id == dataset_id)
            .order_by(Caption.item_id, Caption.position, Caption.id)
        ).all()
        # Re-read the status in the same snapshot as the results (a retry could have
        # re-queued the run between run_detail and here).
        status = s.scalar(select(Run.status).where(Run.id == run_id))
    if status != RunStatus.succeeded.value:
        raise _not_exportable(run_id, str(status), None)

    caption_text: dict[int, str] = {}
    references: dict[int, list[str]] = defaultdict(list)
    for cid, item_id, text in caption_rows:
        caption_text[cid] = text
        references[item_id].append(text)

    metrics: dict[str, dict[str, Any]] = {}
    per_category: dict[str, dict[str, Any]] = {}
    category_sizes = Counter(item.category for item, _, _ in item_rows if item.category)
    for m in metric_rows:
        if m.category is None:
            metrics[m.name] = _metric_entry(m)
        else:
            entry = per_category.setdefault(
                m.category, {"n_images": category_sizes.get(m.category, 0), "metrics": {}}
            )
            entry["metrics"][m.name] = _metric_entry(m)

    items: list[dict[str, Any]] = []
    for item, result, generated in item_rows:
        if result is None and generated is None:
            continue  # benchmark runs (and images a run skipped) have no per-image result
        details = _details(result.details) if result is not None else {}
        top_id, top_score = _first_pair(details.get("top"))
        rr_id, rr_score = _first_pair(details.get("reranked"))
        refs = references.get(item.id, [])
        items.append(
            {
                "item_id": item.id,
                "position": item.position,
                "filename": item.filename,
                "category": item.category,
                "correct": result.correct if result is not None else None,
                "rank": result.rank if result is not None else None,
                "score": result.score if result is not None else None,
                "top_caption": caption_text.get(top_id) if top_id is not None else None,
                "top_caption_score": top_score,
                "reranked_top_caption": caption_text.get(rr_id) if rr_id is not None else None,
                "reranked_top_score": rr_score,
                "category_correct": details.get("category_correct"),
                "category_top1": details.get("category_top1"),
                "zeroshot_pred": details.get("zeroshot_pred"),
                "zeroshot_prob": details.get("zeroshot_prob"),
                **{key: details.get(key) for pair in ITEM_KEYS.values() for key in pair},
                "n_references": len(refs),
                "references": refs,
                "generated_caption": generated.text if generated is not None else None,
                "caption_scores": dict(generated.scores or {}) if generated is not None else {},
                "flags": dict(generated.flags or {}) if generated is not None else {},
            }
        )

    fingerprint = detail.get("model_fingerprint")
    export = {
        "mirada_version": __version__,
        "run": {
            key: detail.get(key)
            for key in (
                "id",
                "model",
                "task",
                "status",
                "device",
                "resolved_device",
                "dtype",
                "batch_size",
                "options",
                "worker",
                "attempts",
                "created",
                "started_at",
                "finished_at",
            )
        },
        "dataset": {
            "id": dataset_id,
            "name": detail["dataset"]["name"],
            "n_images": len(item_rows),
            "n_captions": len(caption_rows),
        },
        "model_fingerprint": fingerprint,
        "fingerprint_sha256": fingerprint_sha256(fingerprint),
        "hardware": detail.get("hardware"),
        "metrics": metrics,
        "per_category": per_category,
        "timings": detail.get("timings", []),
        "items": items,
    }
    export["notes"] = list(metric_notes(export))
    return export


def metric_notes(export: Mapping[str, Any]) -> Iterable[str]:
    """The sentences a reader needs to interpret this run's numbers."""
    task = export["run"].get("task")
    names = set(export.get("metrics", {}))
    tasks = {metric_name(n).task for n in names}
    has_ci = any(
        m.get("ci_low") is not None
        for m in [
            *export.get("metrics", {}).values(),
            *(
                mm
                for cat in export.get("per_category", {}).values()
                for mm in cat.get("metrics", {}).values()
            ),
        ]
    )
    if task == Task.match or Task.match in tasks:
        yield from NOTES_RETRIEVAL
    if has_ci:
        options = export["run"].get("options") or {}
        yield ci_note(int(options.get("n_resamples", 1000)))
    if task == Task.caption or Task.caption in tasks:
        yield from NOTES_CAPTION
        flagged = sum(1 for it in export.get("items", []) if it.get("flags", {}).get("degenerate"))
        with_captions = sum(1 for it in export.get("items", []) if it.get("generated_caption"))
        if with_captions:
            yield (
                f"{flagged} of {with_captions} generated captions are flagged degenerate "
                "(repeated n-grams or a verbatim repeat of another caption)."
            )
    clip = [export["metrics"][k] for k in CLIPSCORE_METRICS if k in export.get("metrics", {})]
    if clip:
        model = (export["run"].get("options") or {}).get("clipscore_model") or "its CLIP model"
        yield (
            f"CLIPScore and RefCLIPScore follow Hessel et al. 2021 under {model}: each caption "
            f"and reference is prefixed with {clip[0].get('prefix')!r}, CLIPScore is "
            f"w × max(cos, 0) with w = {clip[0].get('w')}, clipped per image before the mean, "
            "and RefCLIPScore the harmonic mean of it and the best reference cosine. "
            "torchmetrics' CLIPScore (100 × cos, no prefix, mean clipped) is not comparable."
        )
    if task == Task.benchmark:
        yield from NOTES_BENCHMARK
    for name, m in export.get("metrics", {}).items():
        if m.get("unavailable"):
            yield f"{metric_name(name).label} is unavailable: {str(m['unavailable']).rstrip('.')}."
        note = chance_note(m.get("ci_low"), m.get("ci_high"), m)
        if note:
            yield f"{metric_name(name).label} ({name}) is {note}."
