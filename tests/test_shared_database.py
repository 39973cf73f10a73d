"""Several machines, one PostgreSQL: a machine that did not import a dataset still runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_helpers import work
from sqlalchemy import func, select

from mirada import queue
from mirada.datasets import delete_dataset, import_dataset, load_items
from mirada.db import dispose_engines, read_session
from mirada.db.models import ImageBlob
from mirada.queries.runs import run_detail

pytestmark = pytest.mark.postgres


def _switch_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("MIRADA_HOME", str(home))
    dispose_engines()


def _import(tmp_path: Path, name: str) -> int:
    from mirada.demo.synthetic import write_demo_dataset

    src = write_demo_dataset(tmp_path / name, split="demo", n=6)
    return import_dataset(src, name=name).id


def test_worker_on_another_machine_fetches_images_from_postgres(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tiny_models

    monkeypatch.setenv("MIRADA_DATABASE_URL", postgres_url)
    _switch_home(monkeypatch, tmp_path / "importer-home")
    ds = _import(tmp_path, "shared-shapes")
    with read_session() as s:
        assert s.scalar(select(func.count()).select_from(ImageBlob)) == 12  # 6 images + thumbs

    other = tmp_path / "worker-home"  # a second machine: same database, empty MIRADA_HOME
    _switch_home(monkeypatch, other)
    assert not any(it.path.exists() for it in load_items(ds))
    model = f"hf-clip:{tiny_models.make_hf_clip(tmp_path / 'clip')}"
    run_id = queue.enqueue(ds, model, "match")
    work()
    detail = run_detail(run_id)
    assert detail["status"] == "succeeded", detail["error"]
    assert all(it.path.exists() and it.path.is_relative_to(other) for it in load_items(ds))

    delete_dataset(ds)
    with read_session() as s:
        assert s.scalar(select(func.count()).select_from(ImageBlob)) == 0


def test_without_a_database_copy_the_run_fails_with_what_to_do(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tiny_models

    monkeypatch.setenv("MIRADA_DATABASE_URL", postgres_url)
    monkeypatch.setenv("MIRADA_IMAGES_IN_DATABASE", "false")
    _switch_home(monkeypatch, tmp_path / "importer-home")
    ds = _import(tmp_path, "local-only")
    _switch_home(monkeypatch, tmp_path / "worker-home")
    model = f"hf-clip:{tiny_models.make_hf_clip(tmp_path / 'clip')}"
    run_id = queue.enqueue(ds, model, "match")
    work()
    detail = run_detail(run_id)
    assert detail["status"] == "failed"
    assert "not in this machine's MIRADA_HOME" in detail["error"]
    assert "Share MIRADA_HOME" in detail["error"]
