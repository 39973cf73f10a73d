"""The schema migrates and round-trips on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text

from mirada.db import read_session, write_session
from mirada.db.models import Base, Dataset


def test_migrations_create_every_model_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_write_session_commits_and_rolls_back(engine: Engine) -> None:
    with write_session(engine) as s:
        s.add(Dataset(name="kept", source_format="csv"))
    try:
        with write_session(engine) as s:
            s.add(Dataset(name="dropped", source_format="csv"))
            s.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with read_session(engine) as s:
        names = s.scalars(select(Dataset.name)).all()
    assert names == ["kept"]
    assert engine.url.get_backend_name() in ("sqlite", "postgresql")
    created = s.get(Dataset, 1) if engine.url.get_backend_name() == "sqlite" else None
    if created is not None:
        assert created.created.tzinfo is not None


def test_sqlite_pragmas(mirada_home) -> None:  # type: ignore[no-untyped-def]
    from mirada.db import get_engine

    eng = get_engine()
    assert str(eng.url).endswith(str(mirada_home / "mirada.db"))
    with eng.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


@pytest.mark.empty_home
@pytest.mark.parametrize("start", ["0001", "0002"])
def test_upgrade_from_an_older_schema_keeps_data(db_url: str, start: str) -> None:
    """A database created by an older revision upgrades in place at start-up: every row (and
    every row that references another: 0003 rebuilds SQLite tables, which must cascade
    nothing) is kept, and ids are not reused afterwards."""
    from alembic import command
    from sqlalchemy import inspect

    from mirada.db.engine import dispose_engines, get_engine
    from mirada.db.migrate import alembic_config
    from mirada.db.models import Caption, Item, Run

    old = get_engine(db_url, migrate=False)
    command.upgrade(alembic_config(old), start)
    assert ("image_blobs" in inspect(old).get_table_names()) == (start >= "0002")
    with old.begin() as conn:
        for sql in (
            # no explicit ids: PostgreSQL sequences advance only when they hand one out
            "INSERT INTO datasets (name, source_format, created) "
            "VALUES ('kept', 'csv', CURRENT_TIMESTAMP), ('other', 'csv', CURRENT_TIMESTAMP)",
            "INSERT INTO images (sha256, ext, width, height, size_bytes, created) "
            "VALUES ('ab', 'png', 1, 1, 1, CURRENT_TIMESTAMP)",
            "INSERT INTO items (dataset_id, image_sha256, filename, position) "
            "SELECT id, 'ab', name || '.png', 0 FROM datasets ORDER BY id",
            "INSERT INTO captions (item_id, text, position) "
            "SELECT id, 'a cat', 0 FROM items WHERE filename = 'kept.png'",
            "INSERT INTO runs (dataset_id, model_id, task, device, dtype, batch_size, options, "
            "status, attempts, max_attempts, progress_done, progress_total, created) "
            "SELECT id, 'hf-clip:x/y', 'match', 'auto', 'fp32', 32, '{}', 'queued', 0, 3, 0, "
            "0, CURRENT_TIMESTAMP FROM datasets WHERE name = 'kept'",
            "DELETE FROM datasets WHERE name = 'other'",
        ):
            conn.execute(text(sql))
    dispose_engines()
    new = get_engine(db_url)  # start-up migrates to head
    assert "image_blobs" in inspect(new).get_table_names()
    with read_session(new) as s:
        assert s.scalars(select(Dataset.name)).all() == ["kept"]
        kept = s.scalars(select(Dataset.id)).one()
        assert s.scalars(select(Item.filename)).all() == ["kept.png"]
        assert s.scalars(select(Caption.text)).all() == ["a cat"]
        assert s.scalars(select(Run.dataset_id)).all() == [kept]
    if new.url.get_backend_name() == "sqlite":
        with new.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            seq = dict(conn.execute(text("SELECT name, seq FROM sqlite_sequence")).all())
        assert seq["datasets"] == kept and seq["runs"] == 1 and seq["captions"] == 1
    with write_session(new) as s:
        s.add(Dataset(name="after", source_format="csv"))
    with write_session(new) as s:  # delete the newest, then create again: a larger id
        after = s.scalars(select(Dataset).where(Dataset.name == "after")).one()
        first_id = after.id
        s.delete(after)
    with write_session(new) as s:
        again = Dataset(name="again", source_format="csv")
        s.add(again)
        s.flush()
        assert again.id > first_id > kept


def test_models_match_the_migrations(engine: Engine) -> None:
    """The typed models (enum statuses included) describe exactly the migrated schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_statuses_are_enums_stored_as_plain_strings(engine: Engine) -> None:
    from sqlalchemy.exc import StatementError

    from mirada.db.models import Run, Worker
    from mirada.domain import RunStatus, WorkerStatus

    with write_session(engine) as s:
        ds = Dataset(name="d", source_format="csv")
        s.add(ds)
        s.flush()
        s.add(Run(dataset_id=ds.id, model_id="hf-clip:x/y", task="match", options={}))
        s.add(Worker(name="w", hostname="h", pid=1))
    with read_session(engine) as s:
        run, worker = s.scalars(select(Run)).one(), s.scalars(select(Worker)).one()
        assert run.status is RunStatus.queued and worker.status is WorkerStatus.active
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM runs")).scalar() == "queued"
    with pytest.raises(StatementError), write_session(engine) as s:
        s.add(Worker(name="v", hostname="h", pid=2, status="sleeping"))


def test_run_vocabularies_are_enums_stored_as_the_same_strings(engine: Engine) -> None:
    """task, device, resolved_device, dtype and a worker's devices read back as enum members
    and are stored as the plain strings older rows hold (no data migration)."""
    from sqlalchemy.exc import StatementError

    from mirada.db.models import Run, Worker
    from mirada.domain import Device, Dtype, Task

    with write_session(engine) as s:
        ds = Dataset(name="d", source_format="csv")
        s.add(ds)
        s.flush()
        s.add(
            Run(
                dataset_id=ds.id,
                model_id="hf-clip:x/y",
                task=Task.match,
                device=Device.cpu,
                resolved_device=Device.cpu,
                dtype=Dtype.fp32,
                options={},
            )
        )
        s.add(Worker(name="w", hostname="h", pid=1, devices=[Device.cpu, Device.cuda]))
    with engine.connect() as conn:
        row = conn.execute(text("SELECT task, device, resolved_device, dtype FROM runs")).one()
        assert tuple(row) == ("match", "cpu", "cpu", "fp32")
        devices = conn.execute(text("SELECT devices FROM workers")).scalar()
        # PostgreSQL decodes JSON itself; SQLite returns the text
        assert (json.loads(devices) if isinstance(devices, str) else devices) == ["cpu", "cuda"]
    with read_session(engine) as s:
        run, worker = s.scalars(select(Run)).one(), s.scalars(select(Worker)).one()
        assert run.task is Task.match and run.dtype is Dtype.fp32
        assert run.device is Device.cpu and run.resolved_device is Device.cpu
        assert worker.devices == [Device.cpu, Device.cuda]
        assert all(type(d) is Device for d in worker.devices)
    with pytest.raises(StatementError), write_session(engine) as s:
        s.add(Run(dataset_id=ds.id, model_id="m", task="match", dtype="fp64", options={}))


def test_ids_are_never_reused_after_deleting_the_newest(engine: Engine) -> None:
    """Every table with an integer id that links and exports name: delete the newest row,
    create another, and it gets a larger id (SQLite AUTOINCREMENT; PostgreSQL sequences)."""
    from mirada.db.models import (
        Caption,
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
        Worker,
    )

    with write_session(engine) as s:
        s.add(Image(sha256="ab", ext="png", width=1, height=1, size_bytes=1))
        ds = Dataset(name="parent", source_format="csv")
        s.add(ds)
        s.flush()
        item = Item(dataset_id=ds.id, image_sha256="ab", filename="p.png", position=0)
        run = Run(dataset_id=ds.id, model_id="hf-clip:x/y", task="match", options={})
        s.add_all([item, run])
        s.flush()
        parent = {"dataset_id": ds.id, "item_id": item.id, "run_id": run.id}
    n = 0

    def make(model: type[Any]) -> Any:
        nonlocal n
        n += 1
        run_id, item_id = parent["run_id"], parent["item_id"]
        if model in (ItemResult, GeneratedCaption):  # unique per (run, item): a fresh item
            item_id = _new_item(engine, n)
        fields: dict[type[Any], dict[str, Any]] = {
            Dataset: {"name": f"d{n}", "source_format": "csv"},
            Item: {
                "dataset_id": parent["dataset_id"],
                "image_sha256": "ab",
                "filename": f"{n}.png",
                "position": n,
            },
            Caption: {"item_id": item_id, "text": "t", "position": n},
            HardwareProfile: {
                "fingerprint": f"f{n}",
                "hostname": "h",
                "os": "o",
                "cpu_model": "c",
                "cpu_cores": 1,
                "ram_bytes": 1,
                "python_version": "3",
            },
            Worker: {"name": "w", "hostname": "h", "pid": n},
            Run: {
                "dataset_id": parent["dataset_id"],
                "model_id": "hf-clip:x/y",
                "task": "match",
                "options": {},
            },
            Metric: {"run_id": run_id, "name": f"m{n}", "value": 1.0},
            Timing: {"run_id": run_id, "name": "t", "value": 1.0, "unit": "s"},
            RunEmbedding: {
                "run_id": run_id,
                "kind": f"k{n}",
                "count": 0,
                "dim": 0,
                "data": b"",
                "row_ids": b"",
            },
            ItemResult: {"run_id": run_id, "item_id": item_id},
            GeneratedCaption: {"run_id": run_id, "item_id": item_id, "text": "t"},
            RunArtifact: {"run_id": run_id, "name": f"a{n}", "content_type": "x", "data": b""},
        }
        return model(**fields[model])

    models = [
        Dataset,
        Item,
        Caption,
        HardwareProfile,
        Worker,
        Run,
        Metric,
        Timing,
        RunEmbedding,
        ItemResult,
        GeneratedCaption,
        RunArtifact,
    ]
    with_ids = {t.name for t in Base.metadata.tables.values() if "id" in t.c}
    assert {m.__tablename__ for m in models} == with_ids, "a table with ids is not covered"
    for model in models:
        with write_session(engine) as s:
            newest = make(model)
            s.add(newest)
            s.flush()
            deleted = newest.id
            s.delete(newest)
        with write_session(engine) as s:
            again = make(model)
            s.add(again)
            s.flush()
            assert again.id > deleted, f"{model.__tablename__} reused id {deleted}"


def _new_item(engine: Engine, n: int) -> int:
    from mirada.db.models import Item

    with write_session(engine) as s:
        ds = s.scalars(select(Dataset).where(Dataset.name == "parent")).one()
        item = Item(dataset_id=ds.id, image_sha256="ab", filename=f"x{n}.png", position=-n)
        s.add(item)
        s.flush()
        return item.id
