"""Import a result bundle into this home (`mirada import-results FILE`).

Everything is read and checked before anything is written, so a refused bundle leaves the
database as it was: the archive (mirada.bundles.archive verifies each member's checksum), then
every member through its model in mirada.bundles.schema (values, and consistency across
members: indices, embeddings, artifacts), the same models export writes through. Then:
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
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mirada.bundles import schema, schema_checks
from mirada.bundles.archive import DATASET, IMAGES_PREFIX, RESULTS, RUN, BundleError, BundleReader
from mirada.bundles.build import CAPTION_REF_KEYS
from mirada.bundles.images import fill_dataset_images
from mirada.bundles.schema import dataset_fingerprint
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
    Run,
    db_now,
)
from mirada.domain import RunStatus, Task
from mirada.results import (
    CaptionOutcome,
    EmbeddingSet,
    ItemOutcome,
    MetricValue,
    RunResults,
    TimingValue,
    write_results,
)
from mirada.tasks import parse_options

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
    images_added: int = 0  # image files this bundle filled in (mirada.bundles.images)


def _col(model: type[Base], name: str) -> Any:
    return model.__table__.c[name]


@dataclass(frozen=True)
class _LocalDataset:
    id: int
    name: str
    item_ids: list[int]  # by bundle item index
    caption_ids: list[int]  # by bundle caption index (items in order, captions in order)


def _match_local(
    items: Sequence[store.NewItem], fingerprint: str
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
    reader: BundleReader, name: str, host: str, dataset: schema_checks.DatasetRecords
) -> tuple[_LocalDataset, bool]:
    images, items = list(dataset.images.values()), dataset.items
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
            items=items,
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


def _details(raw: dict[str, Any] | None, caption_ids: Sequence[int]) -> dict[str, Any] | None:
    """A match result's details with its caption references (bundle indices, checked in range)
    turned into this home's caption ids."""
    if raw is None:
        return None
    out = dict(raw)
    for key in CAPTION_REF_KEYS:
        if isinstance(out.get(key), list):
            out[key] = [[caption_ids[index], score] for index, score in out[key]]
    return out


T = TypeVar("T")


class _Rows(Sequence[T]):
    """Checked per-item rows kept as JSON and built only as write_results reads them, a chunk
    at a time: 200,000 results with their details never exist as objects at once."""

    def __init__(self, rows: list[bytes], build: Callable[[list[Any]], T]) -> None:
        self._rows, self._build = rows, build

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._build(json.loads(row)) for row in self._rows[index]]
        return self._build(json.loads(self._rows[index]))


def _results(checked: schema_checks.Checked, local: _LocalDataset) -> RunResults:
    """The checked results with the bundle's item and caption indices as local ids."""
    r = checked.results
    items, captions = np.asarray(local.item_ids, np.int64), np.asarray(local.caption_ids, np.int64)

    def outcome(row: list[Any]) -> ItemOutcome:
        item, correct, rank, score, details = row
        return ItemOutcome(
            local.item_ids[item], correct, rank, score, _details(details, local.caption_ids)
        )

    def caption(row: list[Any]) -> CaptionOutcome:
        item, text, scores, flags = row
        return CaptionOutcome(local.item_ids[item], text, scores, flags)

    return RunResults(
        metrics=[
            MetricValue(m.name, m.value, m.category, m.ci_low, m.ci_high, m.details)
            for m in r.metrics
        ],
        timings=[TimingValue(t.name, t.value, t.unit, t.batch_size) for t in r.timings],
        items=_Rows(checked.items, outcome),
        captions=_Rows(checked.captions, caption),
        embeddings=[
            EmbeddingSet(e.kind, (items if e.kind == "image" else captions)[e.rows], e.vectors)
            for e in checked.embeddings
        ],
        artifacts=dict(checked.artifacts),
    )


def _hardware(s: Session, hw: schema.Hardware | None) -> int | None:
    if hw is None:
        return None
    found = s.scalar(
        select(HardwareProfile.id).where(HardwareProfile.fingerprint == hw.fingerprint)
    )
    if found is not None:
        return found
    hp = HardwareProfile(**hw.model_dump())
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
        run = schema.parse(schema.RunDoc, reader.read_json(RUN), RUN)
        host, origin_run_id = run.origin.host, run.origin.run_id
        if (done := _already(cid)) is not None:
            with read_session() as s:
                ds_name = s.scalar(select(Dataset.name).where(Dataset.id == done.dataset_id))
            return ImportedBundle(
                done.id, True, host, origin_run_id, run.model_id, run.task, done.dataset_id,
                ds_name or "?", False, True,
                images_added=fill_dataset_images(reader, done.dataset_id),
            )  # fmt: skip
        # Every member is checked before anything is written: a refused bundle leaves the
        # database as it was. The per-item arrays are checked as they stream (schema_checks).
        head, entries = reader.read_json_entries(DATASET, frozenset({"items"}))
        dataset = schema_checks.read_dataset(head, entries("items"))
        if run.dataset_fingerprint != dataset.head.fingerprint:
            raise BundleError(f"bundle {RUN} and {DATASET} name different datasets")
        head, entries = reader.read_json_entries(RESULTS, frozenset({"items", "captions"}))
        checked = schema_checks.check_bundle(
            len(dataset.items),
            dataset.n_captions,
            schema.parse(schema.ResultsHead, head, RESULTS),
            entries("items"),
            entries("captions"),
            reader.read,
            reader.read_npy,
        )
        del head
        items = dataset.items
        notes: list[str] = []
        added = 0  # image files filled in for a dataset already here
        local, why = _match_local(items, dataset.head.fingerprint)
        created = local is None
        if local is None:
            local, present = _create_dataset(reader, dataset.head.name, host, dataset)
            note = (
                f"dataset {dataset.head.name!r} (fingerprint {dataset.head.fingerprint[:12]}) "
                "matches no dataset here"
            )
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
            added = fill_dataset_images(reader, local.id)
            present = all(image_path(im.sha256, im.ext).exists() for im in dataset.images.values())
            if not present:
                notes.append(f"dataset {local.name!r} is here, but not all of its image files are")
        results = _results(checked, local)
        del checked, dataset, items  # only the compact rows and the vectors go on (memory)
        try:
            run_id = _insert_run(run, results, local, cid)
        except BaseException as exc:
            # Nothing half-written: a dataset created for this run goes when the run cannot land.
            if created:
                _discard_unused_dataset(local.id)
            if isinstance(exc, IntegrityError) and (done := _already(cid)) is not None:
                return ImportedBundle(  # imported concurrently by another process
                    done.id, True, host, origin_run_id, run.model_id, run.task, done.dataset_id,
                    local.name, False, present,
                )  # fmt: skip
            raise
    return ImportedBundle(
        run_id, False, host, origin_run_id, run.model_id, run.task, local.id, local.name,
        created, present, notes, images_added=added,
    )  # fmt: skip


def _discard_unused_dataset(dataset_id: int) -> None:
    """Delete a dataset this import created, unless a concurrent import already ran on it
    (deleting cascades to runs, so a dataset with any run is kept)."""
    with read_session() as s:
        used = s.scalar(select(Run.id).where(Run.dataset_id == dataset_id).limit(1))
    if used is None:
        store.delete_dataset(dataset_id)


def _insert_run(run: schema.RunDoc, results: RunResults, local: _LocalDataset, cid: str) -> int:
    """Write the imported run and its results in one transaction; return its local id."""
    with write_session() as s:
        row = Run(
            dataset_id=local.id,
            model_id=run.model_id,
            task=run.task,
            status=RunStatus.succeeded,
            worker_id=None,
            hardware_profile_id=_hardware(s, run.hardware),
            origin_host=run.origin.host,
            origin_run_id=run.origin.run_id,
            origin_bundle_sha256=cid,
            imported_at=db_now(),
            device=run.device,
            resolved_device=run.resolved_device,
            dtype=run.dtype,
            batch_size=run.batch_size,
            requires=run.requires,
            # as `mirada queue` stores them: parsed, then the non-default keys
            options=parse_options(run.task, run.options).to_dict(),
            attempts=run.attempts,
            max_attempts=run.max_attempts,
            progress_done=run.progress_done,
            progress_total=run.progress_total,
            model_fingerprint=run.model_fingerprint,
            created=run.created,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        s.add(row)
        s.flush()
        write_results(s, row.id, results)
        # The rows hold their own copies of the vectors now: the bundle's go before the commit,
        # where SQLite copies each blob again (issue 22 §3).
        results.embeddings.clear()
        return row.id
