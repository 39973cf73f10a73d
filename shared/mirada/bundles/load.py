"""Import a result bundle into this home (`mirada import-results FILE`).

Everything is read and checked before anything is written: the archive (mirada.bundles.archive
verifies each member's checksum), then every field against the column it goes to. Then:
1. the dataset: a local dataset with the same fingerprint (filenames and image SHA-256s in
   order) and the same categories and captions is reused; otherwise the bundle's items and
   captions become a new dataset (source_format "bundle"), with the image files when the
   bundle carries them (through the normal image store), else rows only: the pages then find
   no image files and say the images are not present here;
2. the run: inserted already succeeded, with no worker, its origin (host, run id there) and
   the bundle's content id, and its results stored by `mirada.results.write_results` in the
   same transaction. A succeeded run is never claimed, retried or cancelled (mirada.domain's
   transitions), so an imported run is never executed here.
The content id is unique among runs: importing the same bundle twice finds the first import.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mirada.bundles.archive import DATASET, IMAGES_PREFIX, RESULTS, RUN, BundleError, BundleReader
from mirada.bundles.build import CAPTION_REF_KEYS, HARDWARE_FIELDS, dataset_fingerprint
from mirada.config import get_settings
from mirada.datasets import store
from mirada.datasets.images import ImageRejected, normalise
from mirada.datasets.paths import image_path
from mirada.db import read_session, write_session
from mirada.db.models import (
    Base,
    Caption,
    Dataset,
    HardwareProfile,
    Item,
    Metric,
    Run,
    RunArtifact,
    Timing,
    db_now,
)
from mirada.domain import Device, Dtype, E, RunStatus, Task, parse_choice
from mirada.errors import MiradaError
from mirada.results import (
    CaptionOutcome,
    EmbeddingSet,
    ItemOutcome,
    MetricValue,
    RunResults,
    TimingValue,
    write_results,
)

BUNDLE_SOURCE_FORMAT = "bundle"  # Dataset.source_format of datasets created by an import


@dataclass(frozen=True)
class ImportedBundle:
    run_id: int
    already: bool  # this bundle was imported before; nothing was written
    origin_host: str
    origin_run_id: int
    model_id: str
    task: Task
    dataset_id: int
    dataset_name: str
    dataset_created: bool  # False: an existing local dataset was reused
    images_present: bool  # the dataset's image files are on this machine (or in its database)
    notes: list[str] = field(default_factory=list)


class _Fields:
    """Typed reads of one JSON object, failing with where and what (a hand-edited bundle
    whose checksums were redone still gets a message, never a traceback)."""

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, dict):
            raise BundleError(f"bundle {where} is not an object")
        self.doc, self.where = doc, where

    def _bad(self, key: str, want: str) -> BundleError:
        return BundleError(f"bundle {self.where}: {key!r} must be {want}")

    def text(self, key: str, column: Any = None, *, optional: bool = False) -> Any:
        value = self.doc.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        length = getattr(getattr(column, "type", None), "length", None)
        if length is not None and len(value) > length:
            raise self._bad(key, f"at most {length} characters")
        return value

    def choice(self, key: str, enum: type[E]) -> E:
        """A vocabulary value (task, device, dtype) parsed into its enum: the bundle is an edge
        where text becomes a type."""
        try:
            return parse_choice(enum, self.text(key), key)
        except MiradaError as exc:
            raise BundleError(f"bundle {self.where}: {exc} (a newer Mirada's?)") from None

    def integer(self, key: str, *, optional: bool = False) -> Any:
        value = self.doc.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**63:
            raise self._bad(key, "an integer")
        return value

    def number(self, key: str, *, optional: bool = False) -> Any:
        value = self.doc.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self._bad(key, "a number")
        return float(value)

    def boolean(self, key: str) -> bool | None:
        value = self.doc.get(key)
        if value is not None and not isinstance(value, bool):
            raise self._bad(key, "true, false or null")
        return value

    def mapping(self, key: str, *, optional: bool = True) -> Any:
        value = self.doc.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.doc.get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value

    def when(self, key: str, *, optional: bool = True) -> datetime | None:
        raw = self.text(key, optional=optional)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise self._bad(key, "an ISO 8601 time") from None
        if value.tzinfo is None:
            raise self._bad(key, "a time with its UTC offset")
        return value


def _col(model: type[Base], name: str) -> Any:
    return model.__table__.c[name]


@dataclass(frozen=True)
class _BundleItem:
    filename: str
    category: str | None
    captions: list[str]
    image: store.NewImage


def _parse_items(doc: Any) -> tuple[str, str, list[_BundleItem]]:
    d = _Fields(doc, DATASET)
    name = d.text("name", _col(Dataset, "name"))
    fingerprint = d.text("fingerprint")
    items: list[_BundleItem] = []
    for n, raw in enumerate(d.items("items")):
        f = _Fields(raw, f"{DATASET} item {n}")
        img = _Fields(f.mapping("image", optional=False), f"{DATASET} item {n} image")
        sha = img.text("sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise BundleError(f"bundle {DATASET} item {n}: image sha256 is not a SHA-256")
        ext = img.text("ext")
        if not ext.isalnum() or not ext.isascii() or len(ext) > 8:
            raise BundleError(f"bundle {DATASET} item {n}: image ext {ext!r} is not an extension")
        captions = f.items("captions")
        if not all(isinstance(c, str) for c in captions):
            raise BundleError(f"bundle {DATASET} item {n}: captions must be strings")
        items.append(
            _BundleItem(
                filename=f.text("filename"),
                category=f.text("category", _col(Item, "category"), optional=True),
                captions=captions,
                image=store.NewImage(
                    sha256=sha,
                    ext=ext.lower(),
                    width=img.integer("width"),
                    height=img.integer("height"),
                    original_format=img.text("original_format", optional=True),
                    size_bytes=img.integer("size_bytes"),
                ),
            )
        )
    if dataset_fingerprint((it.filename, it.image.sha256) for it in items) != fingerprint:
        raise BundleError(f"bundle {DATASET}: its fingerprint does not match its items")
    return name, fingerprint, items


@dataclass(frozen=True)
class _LocalDataset:
    id: int
    name: str
    item_ids: list[int]  # by bundle item index
    caption_ids: list[int]  # by bundle caption index (items in order, captions in order)


def _match_local(
    items: Sequence[_BundleItem], fingerprint: str
) -> tuple[_LocalDataset | None, str]:
    """A local dataset holding exactly these items, or None and why not ("" for no candidate)."""
    why = ""
    with read_session() as s:
        candidates = s.execute(
            select(Dataset.id, Dataset.name)
            .join(Item, Item.dataset_id == Dataset.id)
            .group_by(Dataset.id, Dataset.name)
            .having(func.count(Item.id) == len(items))
            .order_by(Dataset.id)
        ).all()
        for dataset_id, name in candidates:
            local = s.execute(
                select(Item.id, Item.filename, Item.image_sha256, Item.category)
                .where(Item.dataset_id == dataset_id)
                .order_by(Item.position, Item.id)
            ).all()
            if dataset_fingerprint((r.filename, r.image_sha256) for r in local) != fingerprint:
                continue
            captions: dict[int, list[tuple[int, str]]] = {}
            for cid, item_id, text in s.execute(
                select(Caption.id, Caption.item_id, Caption.text)
                .join(Item, Item.id == Caption.item_id)
                .where(Item.dataset_id == dataset_id)
                .order_by(Caption.item_id, Caption.position, Caption.id)
            ):
                captions.setdefault(item_id, []).append((cid, text))
            same = all(
                r.category == it.category and [t for _, t in captions.get(r.id, [])] == it.captions
                for r, it in zip(local, items, strict=True)
            )
            if not same:
                why = (
                    f"dataset {name!r} here has the same images under the same names but other "
                    "categories or captions"
                )
                continue
            caption_ids = [cid for r in local for cid, _ in captions.get(r.id, [])]
            return _LocalDataset(dataset_id, name, [r.id for r in local], caption_ids), ""
    return None, why


def _free_name(name: str, host: str) -> str:
    limit = _col(Dataset, "name").type.length
    with read_session() as s:
        taken = set(s.scalars(select(Dataset.name)))
    for n in range(1, 1000):
        suffix = "" if n == 1 else f" from {host}" if n == 2 else f" from {host} #{n - 1}"
        candidate = name[: limit - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise BundleError(f"no free dataset name for {name!r}; rename or delete some datasets")


def _stage_images(reader: BundleReader, images: Sequence[store.NewImage], staging: Path) -> None:
    max_pixels = get_settings().max_image_pixels
    for im in images:
        data = reader.read(f"{IMAGES_PREFIX}{im.sha256}.{im.ext}")
        if hashlib.sha256(data).hexdigest() != im.sha256:
            raise BundleError(f"bundle image {im.sha256}.{im.ext} does not match its SHA-256")
        try:
            stored = normalise(data, max_pixels=max_pixels)  # decode checks, and the thumbnail
        except ImageRejected as exc:
            raise BundleError(f"bundle image {im.sha256}.{im.ext}: {exc}") from None
        for path, content in (
            (store.staged_image(staging, im.sha256, im.ext), data),
            (store.staged_thumbnail(staging, im.sha256), stored.thumbnail),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def _create_dataset(
    reader: BundleReader, name: str, host: str, items: Sequence[_BundleItem]
) -> tuple[_LocalDataset, bool]:
    images = list({it.image.sha256: it.image for it in items}.values())
    members = set(reader.names())
    with_files = bool(images) and all(
        f"{IMAGES_PREFIX}{im.sha256}.{im.ext}" in members for im in images
    )
    settings = get_settings()
    staging = settings.staging_dir / f"bundle-{uuid.uuid4().hex}"
    try:
        if with_files:
            _stage_images(reader, images, staging)
        dataset_id = store.save_dataset(
            name=_free_name(name, host),
            source_format=BUNDLE_SOURCE_FORMAT,
            source_path=f"{reader.path.name} (from {host})",
            images=images,
            items=[
                store.NewItem(it.filename, it.image.sha256, it.category, list(it.captions))
                for it in items
            ],
            staging=staging,
            with_files=with_files,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with read_session() as s:
        stored_name = s.scalar(select(Dataset.name).where(Dataset.id == dataset_id)) or name
        item_ids = list(
            s.scalars(select(Item.id).where(Item.dataset_id == dataset_id).order_by(Item.position))
        )
        caption_ids = list(
            s.scalars(
                select(Caption.id)
                .join(Item, Item.id == Caption.item_id)
                .where(Item.dataset_id == dataset_id)
                .order_by(Item.position, Caption.position)
            )
        )
    if len(item_ids) != len(items):
        raise BundleError(f"dataset {stored_name!r} was stored with a different number of items")
    return _LocalDataset(dataset_id, stored_name, item_ids, caption_ids), with_files


def _index(value: Any, ids: Sequence[int], what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(ids):
        raise BundleError(f"bundle {RESULTS}: {what} index {value!r} is out of range")
    return ids[value]


def _details(raw: Any, caption_ids: Sequence[int]) -> dict[str, Any] | None:
    if raw is None:
        return None
    out = dict(raw)
    for key in CAPTION_REF_KEYS:
        refs = out.get(key)
        if isinstance(refs, list):
            pairs = []
            for pair in refs:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise BundleError(f"bundle {RESULTS}: item details {key!r} are malformed")
                pairs.append([_index(pair[0], caption_ids, "caption"), pair[1]])
            out[key] = pairs
    return out


def _results(reader: BundleReader, doc: Any, local: _LocalDataset) -> RunResults:
    r = _Fields(doc, RESULTS)
    out = RunResults()
    for raw in r.items("metrics"):
        f = _Fields(raw, f"{RESULTS} metric")
        out.metrics.append(
            MetricValue(
                name=f.text("name", _col(Metric, "name")),
                value=f.number("value", optional=True),
                category=f.text("category", _col(Item, "category"), optional=True),
                ci_low=f.number("ci_low", optional=True),
                ci_high=f.number("ci_high", optional=True),
                details=f.mapping("details"),
            )
        )
    for raw in r.items("timings"):
        f = _Fields(raw, f"{RESULTS} timing")
        out.timings.append(
            TimingValue(
                name=f.text("name", _col(Timing, "name")),
                value=f.number("value"),
                unit=f.text("unit", _col(Timing, "unit")),
                batch_size=f.integer("batch_size", optional=True),
            )
        )
    for raw in r.items("items"):
        f = _Fields(raw, f"{RESULTS} item")
        out.items.append(
            ItemOutcome(
                item_id=_index(f.doc.get("item"), local.item_ids, "item"),
                correct=f.boolean("correct"),
                rank=f.integer("rank", optional=True),
                score=f.number("score", optional=True),
                details=_details(f.mapping("details"), local.caption_ids),
            )
        )
    for raw in r.items("captions"):
        f = _Fields(raw, f"{RESULTS} caption")
        out.captions.append(
            CaptionOutcome(
                item_id=_index(f.doc.get("item"), local.item_ids, "item"),
                text=f.text("text"),
                scores=f.mapping("scores"),
                flags=f.mapping("flags"),
            )
        )
    for raw in r.items("embeddings"):
        f = _Fields(raw, f"{RESULTS} embedding")
        kind = f.text("kind")
        if kind not in ("image", "text"):
            raise BundleError(f"bundle {RESULTS}: unknown embedding kind {kind!r}")
        vectors = reader.read_npy(f"embeddings/{kind}.npy", "float32", 2)
        rows = reader.read_npy(f"embeddings/{kind}.rows.npy", "int64", 1)
        if len(rows) != len(vectors):
            raise BundleError(f"bundle embeddings/{kind}: rows and vectors differ in number")
        ids = local.item_ids if kind == "image" else local.caption_ids
        if len(rows) and (rows.min() < 0 or rows.max() >= len(ids)):
            raise BundleError(f"bundle embeddings/{kind}: a row index is out of range")
        out.embeddings.append(EmbeddingSet(kind, np.asarray(ids, np.int64)[rows], vectors))
    for raw in r.items("artifacts"):
        f = _Fields(raw, f"{RESULTS} artifact")
        member = f.text("member")
        if not member.startswith("artifacts/"):
            raise BundleError(f"bundle {RESULTS}: artifact member {member!r} is not an artifact")
        name = f.text("name", _col(RunArtifact, "name"))
        ctype = f.text("content_type", _col(RunArtifact, "content_type"))
        out.artifacts[name] = (ctype, reader.read(member))
    return out


def _hardware(s: Session, doc: Any) -> int | None:
    if doc is None:
        return None
    f = _Fields(doc, f"{RUN} hardware")
    fingerprint = f.text("fingerprint", _col(HardwareProfile, "fingerprint"))
    found = s.scalar(select(HardwareProfile.id).where(HardwareProfile.fingerprint == fingerprint))
    if found is not None:
        return found
    values: dict[str, Any] = {}
    for name in HARDWARE_FIELDS:
        column = _col(HardwareProfile, name)
        kind = column.type.python_type  # read each field as its column stores it
        if kind is int:
            values[name] = f.integer(name, optional=column.nullable)
        elif kind is str:
            values[name] = f.text(name, column, optional=column.nullable)
        else:  # the JSON details
            values[name] = f.mapping(name) or {}
    hp = HardwareProfile(**values)
    s.add(hp)
    s.flush()
    return hp.id


def _already(content_sha256: str) -> Run | None:
    with read_session() as s:
        return s.scalar(select(Run).where(Run.origin_bundle_sha256 == content_sha256))


def import_bundle(path: str | os.PathLike[str]) -> ImportedBundle:
    """Add the run in bundle `path` to this home (see the module docstring)."""
    with BundleReader(path) as reader:
        cid = reader.manifest.content_sha256
        run_doc = _Fields(reader.read_json(RUN), RUN)
        origin = _Fields(run_doc.mapping("origin", optional=False), f"{RUN} origin")
        host = origin.text("host", _col(Run, "origin_host"))
        origin_run_id = origin.integer("run_id")
        model_id = run_doc.text("model_id", _col(Run, "model_id"))
        task = run_doc.choice("task", Task)
        if (done := _already(cid)) is not None:
            with read_session() as s:
                ds_name = s.scalar(select(Dataset.name).where(Dataset.id == done.dataset_id))
            return ImportedBundle(
                done.id, True, host, origin_run_id, model_id, task, done.dataset_id,
                ds_name or "?", False, True,
            )  # fmt: skip
        name, fingerprint, items = _parse_items(reader.read_json(DATASET))
        if run_doc.text("dataset_fingerprint") != fingerprint:
            raise BundleError(f"bundle {RUN} and {DATASET} name different datasets")
        results_doc = reader.read_json(RESULTS)
        notes: list[str] = []
        local, why = _match_local(items, fingerprint)
        created = local is None
        if local is None:
            local, present = _create_dataset(reader, name, host, items)
            note = f"dataset {name!r} (fingerprint {fingerprint[:12]}) matches no dataset here"
            if why:
                note += f" ({why})"
            note += f"; created dataset {local.name!r} with its {len(items)} items and captions"
            if not present:
                note += (
                    " but without image files: the images are not present here (export with "
                    "--with-images to bring them, or import the same images as a dataset)"
                )
            notes.append(note)
        else:
            present = all(image_path(it.image.sha256, it.image.ext).exists() for it in items)
            if not present:
                notes.append(f"dataset {local.name!r} is here, but not all of its image files are")
        try:
            run_id = _insert_run(reader, run_doc, results_doc, local, host, origin_run_id, cid)
        except BaseException as exc:
            # Nothing half-written: a dataset created for this run goes when the run cannot land.
            if created:
                _discard_unused_dataset(local.id)
            if isinstance(exc, IntegrityError) and (done := _already(cid)) is not None:
                return ImportedBundle(  # imported concurrently by another process
                    done.id, True, host, origin_run_id, model_id, task, done.dataset_id,
                    local.name, False, present,
                )  # fmt: skip
            raise
    return ImportedBundle(
        run_id, False, host, origin_run_id, model_id, task, local.id, local.name, created,
        present, notes,
    )  # fmt: skip


def _discard_unused_dataset(dataset_id: int) -> None:
    """Delete a dataset this import created, unless a concurrent import already ran on it
    (deleting cascades to runs, so a dataset with any run is kept)."""
    with read_session() as s:
        used = s.scalar(select(Run.id).where(Run.dataset_id == dataset_id).limit(1))
    if used is None:
        store.delete_dataset(dataset_id)


def _insert_run(
    reader: BundleReader,
    run_doc: _Fields,
    results_doc: Any,
    local: _LocalDataset,
    host: str,
    origin_run_id: int,
    cid: str,
) -> int:
    """Write the imported run and its results in one transaction; return its local id."""
    results = _results(reader, results_doc, local)
    fields = {
        "device": run_doc.choice("device", Device),
        "resolved_device": (
            None
            if run_doc.doc.get("resolved_device") is None
            else run_doc.choice("resolved_device", Device)
        ),
        "dtype": run_doc.choice("dtype", Dtype),
        "batch_size": run_doc.integer("batch_size"),
        "requires": run_doc.text("requires", _col(Run, "requires"), optional=True),
        "options": run_doc.mapping("options") or {},
        "attempts": run_doc.integer("attempts"),
        "max_attempts": run_doc.integer("max_attempts"),
        "progress_done": run_doc.integer("progress_done"),
        "progress_total": run_doc.integer("progress_total"),
        "model_fingerprint": run_doc.mapping("model_fingerprint"),
        "created": run_doc.when("created", optional=False),
        "started_at": run_doc.when("started_at"),
        "finished_at": run_doc.when("finished_at"),
    }
    with write_session() as s:
        run = Run(
            dataset_id=local.id,
            model_id=run_doc.text("model_id", _col(Run, "model_id")),
            task=run_doc.choice("task", Task),
            status=RunStatus.succeeded,
            worker_id=None,
            hardware_profile_id=_hardware(s, run_doc.doc.get("hardware")),
            origin_host=host,
            origin_run_id=origin_run_id,
            origin_bundle_sha256=cid,
            imported_at=db_now(),
            **fields,
        )
        s.add(run)
        s.flush()
        write_results(s, run.id, results)
        return run.id
