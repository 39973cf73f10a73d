"""Export one succeeded run as a result bundle (`mirada export RUN --format bundle`).

Database ids mean nothing in another home, so the bundle refers to items by their index in
dataset.json's item list (dataset order) and to captions by their index in the flat list of
all captions (item by item, in caption order). That applies to per-item results, generated
captions, the caption ids inside match details ("top", "reranked") and embedding rows.

The three JSON members go through the models of mirada.bundles.schema, the same that import
reads them with: a stored run that an import would refuse (a value stored before the checks
existed) is refused here, naming the member and the field, instead of written.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from mirada.bundles.archive import (
    IMAGES_PREFIX,
    BundleError,
    npy_bytes,
    write_bundle,
)
from mirada.bundles.schema import dataset_fingerprint, embedding_member
from mirada.bundles.schema_checks import export_members
from mirada.datasets.blobs import ensure_local
from mirada.datasets.paths import image_path
from mirada.db import read_session
from mirada.db.models import (
    Caption,
    Dataset,
    GeneratedCaption,
    HardwareProfile,
    Image,
    Item,
    ItemResult,
    Metric,
    Run,
    RunArtifact,
    RunEmbedding,
    Timing,
)
from mirada.domain import RunStatus
from mirada.errors import MiradaError, NotFoundError

# Keys in a match run's ItemResult.details that hold [[caption_id, score], ...].
CAPTION_REF_KEYS = ("top", "reranked")
# Every column a machine reports (all but the row's own id and creation time): derived from the
# model, so a column added to HardwareProfile travels in bundles without a second list.
HARDWARE_FIELDS = tuple(
    c.name for c in HardwareProfile.__table__.columns if c.name not in ("id", "created")
)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class ExportedBundle:
    path: Path
    content_sha256: str
    n_metrics: int
    n_timings: int
    n_items: int
    n_images: int  # image files included (0 without --with-images)


def _remap_refs(details: dict[str, Any] | None, captions: dict[int, int]) -> dict[str, Any] | None:
    if details is None:
        return None
    out = dict(details)
    for key in CAPTION_REF_KEYS:
        if isinstance(out.get(key), list):
            out[key] = [[captions[int(cid)], score] for cid, score in out[key]]
    return out


def export_bundle(
    run_id: int, path: str | os.PathLike[str], *, with_images: bool = False
) -> ExportedBundle:
    """Write run `run_id` (succeeded) with everything needed to show it elsewhere to `path`."""
    with read_session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist; see `mirada runs`")
        if run.status != RunStatus.succeeded:
            raise MiradaError(
                f"run {run_id} is {run.status}; only succeeded runs can be exported as a "
                f"bundle (see `mirada show {run_id}`)"
            )
        dataset = s.get(Dataset, run.dataset_id)
        assert dataset is not None  # foreign key
        hp = s.get(HardwareProfile, run.hardware_profile_id) if run.hardware_profile_id else None
        items = s.execute(
            select(Item, Image)
            .join(Image, Image.sha256 == Item.image_sha256)
            .where(Item.dataset_id == dataset.id)
            .order_by(Item.position, Item.id)
        ).all()
        caption_rows = s.execute(
            select(Caption.id, Caption.item_id, Caption.text)
            .join(Item, Item.id == Caption.item_id)
            .where(Item.dataset_id == dataset.id)
            .order_by(Item.position, Item.id, Caption.position, Caption.id)
        ).all()
        metrics = s.scalars(select(Metric).where(Metric.run_id == run_id).order_by(Metric.id)).all()
        timings = s.scalars(select(Timing).where(Timing.run_id == run_id).order_by(Timing.id)).all()
        outcomes = s.scalars(
            select(ItemResult).where(ItemResult.run_id == run_id).order_by(ItemResult.id)
        ).all()
        generated = s.scalars(
            select(GeneratedCaption)
            .where(GeneratedCaption.run_id == run_id)
            .order_by(GeneratedCaption.id)
        ).all()
        embeddings = s.scalars(
            select(RunEmbedding).where(RunEmbedding.run_id == run_id).order_by(RunEmbedding.kind)
        ).all()
        artifacts = s.scalars(
            select(RunArtifact).where(RunArtifact.run_id == run_id).order_by(RunArtifact.name)
        ).all()

    item_index = {item.id: i for i, (item, _) in enumerate(items)}
    caption_index = {cid: i for i, (cid, _, _) in enumerate(caption_rows)}
    texts: dict[int, list[str]] = {}
    for _, item_id, text in caption_rows:
        texts.setdefault(item_id, []).append(text)

    fingerprint = dataset_fingerprint((it.filename, it.image_sha256) for it, _ in items)
    members: dict[str, bytes] = {}
    run_doc = {
        "dataset_fingerprint": fingerprint,
        # An imported run keeps the origin it came with: re-exporting it elsewhere still
        # names the machine and run id where it was executed.
        "origin": {
            "host": run.origin_host or socket.gethostname(),
            "run_id": run.origin_run_id if run.origin_host else run.id,
        },
        "model_id": run.model_id,
        "task": str(run.task),
        "device": run.device,
        "resolved_device": run.resolved_device,
        "dtype": run.dtype,
        "batch_size": run.batch_size,
        "requires": run.requires,
        "options": run.options,
        "attempts": run.attempts,
        "max_attempts": run.max_attempts,
        "progress_done": run.progress_done,
        "progress_total": run.progress_total,
        "model_fingerprint": run.model_fingerprint,
        "created": iso(run.created),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "hardware": {f: getattr(hp, f) for f in HARDWARE_FIELDS} if hp else None,
    }
    dataset_doc = {
        "name": dataset.name,
        "source_format": dataset.source_format,
        "fingerprint": fingerprint,
        "items": [
            {
                "filename": item.filename,
                "category": item.category,
                "captions": texts.get(item.id, []),
                "image": {
                    "sha256": image.sha256,
                    "ext": image.ext,
                    "width": image.width,
                    "height": image.height,
                    "original_format": image.original_format,
                    "size_bytes": image.size_bytes,
                },
            }
            for item, image in items
        ],
    }
    embedding_docs = []
    for e in embeddings:
        rows = np.frombuffer(e.row_ids, dtype=np.int64)
        index = item_index if e.kind == "image" else caption_index
        vectors = np.frombuffer(e.data, dtype=np.float32).reshape(e.count, e.dim)
        members[embedding_member(e.kind)] = npy_bytes(vectors)
        members[embedding_member(e.kind, rows=True)] = npy_bytes(
            np.array([index[int(r)] for r in rows], np.int64)
        )
        embedding_docs.append({"kind": e.kind, "member": embedding_member(e.kind)})
    artifact_docs = []
    for n, a in enumerate(artifacts):
        members[f"artifacts/{n}.bin"] = a.data
        artifact_docs.append(
            {"name": a.name, "content_type": a.content_type, "member": f"artifacts/{n}.bin"}
        )
    results_doc = {
        "metrics": [
            {
                "name": m.name,
                "value": m.value,
                "category": m.category,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "details": m.details,
            }
            for m in metrics
        ],
        "timings": [
            {"name": t.name, "value": t.value, "unit": t.unit, "batch_size": t.batch_size}
            for t in timings
        ],
        "items": [
            {
                "item": item_index[o.item_id],
                "correct": o.correct,
                "rank": o.rank,
                "score": o.score,
                "details": _remap_refs(o.details, caption_index),
            }
            for o in outcomes
        ],
        "captions": [
            {
                "item": item_index[g.item_id],
                "text": g.text,
                "scores": g.scores,
                "flags": g.flags,
            }
            for g in generated
        ],
        "embeddings": embedding_docs,
        "artifacts": artifact_docs,
    }
    export_members(run_doc, dataset_doc, results_doc, members, run_id)
    n_images = 0
    if with_images:
        n_images = _add_images(members, [(img.sha256, img.ext) for _, img in items], dataset.name)
    target, cid = write_bundle(path, members)
    return ExportedBundle(target, cid, len(metrics), len(timings), len(items), n_images)


def _add_images(members: dict[str, bytes], images: Sequence[tuple[str, str]], name: str) -> int:
    unique = list(dict.fromkeys(images))
    try:
        ensure_local(unique)  # a shared PostgreSQL may hold the bytes this machine lacks
    except MiradaError as exc:
        raise BundleError(
            f"--with-images: the images of dataset {name!r} are not all present here ({exc}); "
            "export without --with-images (the bundle then carries their SHA-256s only)"
        ) from None
    for sha, ext in unique:
        members[f"{IMAGES_PREFIX}{sha}.{ext}"] = image_path(sha, ext).read_bytes()
    return len(unique)
