"""Import orchestration: open the source, parse, verify every image into staging, then commit.

All-or-nothing: everything is checked and written under $MIRADA_HOME/staging/ first; the
database rows are inserted in one transaction and the files moved into the store inside it
(see store.save_dataset). On any rejection the staging folder is removed and nothing remains.
"""

from __future__ import annotations

import errno
import posixpath
import shutil
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirada.config import Settings, get_settings
from mirada.datasets import store
from mirada.datasets.archive import FolderSource, Source, UnreadableFile, ZipSource
from mirada.datasets.catalog import resolve_dataset
from mirada.datasets.entries import Entry
from mirada.datasets.formats import Parsed, detect_and_parse
from mirada.datasets.images import ImageRejected, normalise
from mirada.datasets.problems import DatasetImportError, Problem, ProblemLog, fatal
from mirada.errors import NotFoundError

_ANNOTATION_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")
MAX_NAME_CHARS = 200
STALE_STAGING_SECONDS = 24 * 3600
_SWEPT_PREFIXES = ("import-", "upload-")


@dataclass
class ImportReport:
    id: int
    name: str
    format: str
    images: int
    captions: int
    categories: int
    skipped: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "images": self.images,
            "captions": self.captions,
            "categories": self.categories,
        }
        if self.skipped:
            out["skipped"] = [p.as_json() for p in self.skipped]
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def import_dataset(
    path: Path | str,
    *,
    name: str | None = None,
    fmt: str = "auto",
    split: str | None = None,
    lenient: bool = False,
    source_label: str | None = None,
) -> ImportReport:
    """Import a folder, a .zip, or one annotation file (its folder is the dataset).

    `source_label` is recorded as the dataset's source instead of `path` (uploads are saved
    to a temporary folder whose path means nothing later).

    Raises DatasetImportError listing every problem found (up to 50); with `lenient`, bad
    rows and images are skipped instead and listed in `ImportReport.skipped`.
    """
    settings = get_settings()
    src = Path(path).expanduser()
    source, default_name, only = _open_source(src, settings)
    try:
        name = _check_name(default_name if name is None else name)
        _check_name_free(name)
        log = ProblemLog()
        parsed = detect_and_parse(
            source,
            fmt,
            split,
            log,
            max_csv_rows=settings.max_csv_rows,
            max_line_chars=settings.max_line_chars,
            only=only,
        )
        _sweep_stale_staging(settings.staging_dir)
        staging = settings.staging_dir / f"import-{uuid.uuid4().hex}"
        try:
            images, items, duplicates = _stage_images(
                source, parsed, staging, settings, log, lenient
            )
            if log.problems and not lenient:
                raise DatasetImportError(log.problems, dataset=name, can_skip=True)
            if not items:
                why = (
                    "every image or row was skipped; fix the problems listed below"
                    if log.problems
                    else "lists no images; add rows (filename, caption) to the annotation file"
                )
                raise DatasetImportError([Problem(source.label, why), *log.problems], dataset=name)
            dataset_id = store.save_dataset(
                name=name,
                source_format=parsed.format,
                source_path=source_label or str(src.resolve()),
                images=images,
                items=items,
                staging=staging,
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(settings.staging_dir)
    finally:
        source.close()
    return ImportReport(
        id=dataset_id,
        name=name,
        format=parsed.format,
        images=len(items),
        captions=sum(len(it.captions) for it in items),
        categories=len({it.category for it in items if it.category}),
        skipped=list(log.problems),
        warnings=[*parsed.warnings, *duplicates],
    )


def _open_source(src: Path, settings: Settings) -> tuple[Source, str, str | None]:
    if src.is_dir():
        return FolderSource(src, settings), src.resolve().name, None
    if src.is_file() and (src.suffix.lower() == ".zip" or zipfile.is_zipfile(src)):
        return ZipSource(src, settings), src.stem, None
    if src.is_file() and src.suffix.lower() in _ANNOTATION_SUFFIXES:
        folder = src.resolve().parent
        return FolderSource(folder, settings), folder.name, src.name
    if not src.exists():
        raise fatal(str(src), "does not exist; give a folder, a .zip or an annotation file")
    raise fatal(str(src), "is not a folder, a .zip or a .csv/.json/.jsonl annotation file")


def _check_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME_CHARS or any(ord(c) < 32 for c in clean):
        raise fatal(
            f"dataset name {name!r}",
            f"must be 1-{MAX_NAME_CHARS} printable characters; pass --name NAME",
        )
    return clean


def _check_name_free(name: str) -> None:
    # Checked early so a typo does not cost a full image pass; save_dataset checks again.
    try:
        found = resolve_dataset(name)
    except NotFoundError:
        return
    if found.name == name:
        raise store.duplicate_name_error(name)


def _stage_images(
    source: Source,
    parsed: Parsed,
    staging: Path,
    settings: Settings,
    log: ProblemLog,
    lenient: bool,
) -> tuple[list[store.NewImage], list[store.NewItem], list[str]]:
    """Normalise every entry's image into staging; return images, items and warnings."""
    images: dict[str, store.NewImage] = {}
    items: list[store.NewItem] = []
    twins = _Twins(log)
    for entry in parsed.entries:
        if log.full and not lenient:
            break  # the report is already as long as we show; spare the user the wait
        try:
            data = source.read(entry.path)
            stored = normalise(data, max_pixels=settings.max_image_pixels)
        except ImageRejected as exc:
            log.add(entry.path, str(exc))
            continue
        except UnreadableFile as exc:
            log.add(entry.path, exc.reason)
            continue
        except OSError as exc:
            log.add(entry.path, f"cannot be read: {exc}")
            continue
        if stored.sha256 not in images:
            try:
                _write(store.staged_image(staging, stored.sha256, stored.ext), stored.data)
                _write(store.staged_thumbnail(staging, stored.sha256), stored.thumbnail)
            except OSError as exc:
                raise _write_error(exc, entry.path, settings) from exc
            images[stored.sha256] = store.NewImage(
                sha256=stored.sha256,
                ext=stored.ext,
                width=stored.width,
                height=stored.height,
                original_format=stored.original_format,
                size_bytes=len(stored.data),
            )
        if not twins.admit(stored.sha256, entry):
            continue
        items.append(
            store.NewItem(
                filename=_relative(entry.path, parsed.base),
                sha256=stored.sha256,
                category=entry.category,
                captions=entry.captions,
            )
        )
    return list(images.values()), items, twins.warnings()


class _Twins:
    """Byte-identical images under two names (issue 12 item 14).

    They tie in retrieval, and a tie counts against the model, so with different categories
    the benchmark is wrong: refused like a conflicting category (the later file is the problem,
    so --lenient keeps the first). With the same category the scores stay right but ties
    remain: imported, with a warning naming both.
    """

    MAX_WARNINGS = 20

    def __init__(self, log: ProblemLog) -> None:
        self.log = log
        self.first: dict[str, Entry] = {}
        self.pairs: list[tuple[str, str]] = []

    def admit(self, sha256: str, entry: Entry) -> bool:
        first = self.first.setdefault(sha256, entry)
        if first is entry:
            return True
        if entry.category and first.category and entry.category != first.category:
            self.log.add(
                entry.path,
                f"is byte-identical to {first.path} but its category {entry.category!r} "
                f"conflicts with {first.category!r}; the same image cannot be in two "
                "categories (it would tie with itself in retrieval). Remove one of the files",
            )
            return False
        self.pairs.append((first.path, entry.path))
        return True

    def warnings(self) -> list[str]:
        shown = [
            f"{b} is byte-identical to {a}: both were imported and will tie in retrieval; "
            "remove one if that is not intended"
            for a, b in self.pairs[: self.MAX_WARNINGS]
        ]
        if len(self.pairs) > self.MAX_WARNINGS:
            shown.append(f"... and {len(self.pairs) - self.MAX_WARNINGS} more byte-identical files")
        return shown


def _relative(path: str, base: str) -> str:
    # Item.filename is relative to the annotation file, so a zip with a top-level folder and
    # the same folder unzipped give the same file names. A file beside or above it keeps its
    # '../': distinct files must keep distinct names (sub/x.png vs x.png).
    return posixpath.relpath(path, base) if base else path


def _write_error(exc: OSError, rel: str, settings: Settings) -> DatasetImportError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full"
    else:
        why = f"cannot write there ({exc.strerror or exc})"
    return fatal(
        rel,
        f"could not be stored in MIRADA_HOME ({settings.home}): {why}; nothing was imported. "
        "Free some space (or point MIRADA_HOME elsewhere) and import again",
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _sweep_stale_staging(folder: Path) -> None:
    # A killed import leaves its staging folder behind, a crashed dashboard its upload folder
    # (dashboard/app_pages/datasets.py saves uploads to staging/upload-*); a day-old one is
    # surely abandoned.
    if not folder.is_dir():
        return
    cutoff = time.time() - STALE_STAGING_SECONDS
    for child in folder.iterdir():
        try:
            if child.name.startswith(_SWEPT_PREFIXES) and child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            pass


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (a concurrent import) or already gone


__all__ = ["ImportReport", "import_dataset"]
