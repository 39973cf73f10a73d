"""Delete racing an import that shares images (issue 12 item 1), on SQLite and PostgreSQL.

Each round deletes one dataset while a second import of the same images runs in another
thread; whatever the interleaving, the surviving dataset must have every image file (and, in
a shared database, every image blob), and neither side may end in a raw database error.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from data_import.builders import csv_bytes, solid, write_files
from sqlalchemy import func, select

from mirada.config import get_settings
from mirada.datasets import (
    delete_dataset,
    import_dataset,
    list_datasets,
    load_items,
    resolve_dataset,
    thumbnail_path,
)
from mirada.db import read_session
from mirada.db.models import Image, ImageBlob
from mirada.errors import MiradaError

SHARED_IMAGES = 20
ROUNDS = 25

_real_unlink = Path.unlink


def _slow_unlink(self: Path, missing_ok: bool = False) -> None:
    # A slow disk: widens every window between a database commit and a file removal, so the
    # race shows in a handful of rounds instead of hundreds. Harmless to correct code.
    if self.parent.name in ("images", "thumbs"):
        time.sleep(0.001)
    _real_unlink(self, missing_ok=missing_ok)


def _source(tmp_path: Path) -> Path:
    rows = [(f"{i}.png", f"image {i}", "") for i in range(SHARED_IMAGES)]
    files = {f"{i}.png": solid((i * 9 % 256, 40, 200 - i)) for i in range(SHARED_IMAGES)}
    return write_files(tmp_path / "src", {**files, "captions.csv": csv_bytes(rows)})


def _in_thread(fn: Callable[[], object], start: threading.Barrier) -> tuple[threading.Thread, dict]:
    box: dict[str, object] = {}

    def target() -> None:
        start.wait()
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def _missing(dataset: str) -> list[str]:
    """Items of `dataset` whose image (file, row or shared-database blob) is gone."""
    blobs = get_settings().images_in_database
    lost = []
    for item in load_items(resolve_dataset(dataset).id):
        if not item.path.exists() or not thumbnail_path(item.sha256).exists():
            lost.append(f"{item.filename}: file")
    with read_session() as s:
        rows = s.scalar(select(func.count()).select_from(Image))
        if blobs:
            have = s.scalar(
                select(func.count()).select_from(ImageBlob).where(ImageBlob.kind == "image")
            )
            if have != rows:
                lost.append(f"{rows - (have or 0)} blobs")
    return lost


def test_delete_racing_an_import_of_the_same_images_loses_no_file(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "unlink", _slow_unlink)
    src = _source(tmp_path)
    delete_dataset(import_dataset(src, name="warm-up").id)  # migrations, imports, caches
    began = time.perf_counter()
    import_dataset(src, name="d0")
    took = time.perf_counter() - began
    rng = random.Random(12)
    failures: list[str] = []
    for round_ in range(ROUNDS):
        old, new = f"d{round_}", f"d{round_ + 1}"
        old_id = resolve_dataset(old).id
        start = threading.Barrier(2)
        # Aim the delete at the import's last moments, where it commits and places files.
        delay = rng.uniform(0.3, 1.2) * took

        def remove(old_id: int = old_id, delay: float = delay) -> None:
            time.sleep(delay)
            delete_dataset(old_id)

        deleter, deleted = _in_thread(remove, start)
        importer, imported = _in_thread(lambda new=new: import_dataset(src, name=new), start)
        deleter.join(60)
        importer.join(60)
        for box in (deleted, imported):
            err = box.get("error")
            if err is not None and not isinstance(err, MiradaError):
                failures.append(f"round {round_}: {type(err).__name__}: {str(err)[:160]}")
        if "error" in imported:
            # A clear MiradaError is allowed (the user re-runs); nothing may be half there.
            assert new not in [d.name for d in list_datasets()]
            import_dataset(src, name=new)
        if "error" in deleted:
            delete_dataset(old_id)
        lost = _missing(new)
        if lost:
            failures.append(f"round {round_}: {len(lost)} lost, e.g. {lost[0]}")
    assert [d.name for d in list_datasets()] == [f"d{ROUNDS}"]
    assert failures == [], f"{len(failures)} of {ROUNDS} rounds failed:\n" + "\n".join(failures)
