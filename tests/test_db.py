"""The schema migrates and round-trips on SQLite and PostgreSQL."""

from __future__ import annotations

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


def test_upgrade_from_the_first_schema_keeps_data(db_url: str) -> None:
    """An existing database created by revision 0001 upgrades in place at start-up."""
    from alembic import command
    from sqlalchemy import inspect

    from mirada.db.engine import dispose_engines, get_engine
    from mirada.db.migrate import alembic_config

    old = get_engine(db_url, migrate=False)
    command.upgrade(alembic_config(old), "0001")
    assert "image_blobs" not in inspect(old).get_table_names()
    with old.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (name, source_format, created) "
                "VALUES ('kept', 'csv', CURRENT_TIMESTAMP)"
            )
        )
    dispose_engines()
    new = get_engine(db_url)  # start-up migrates to head
    assert "image_blobs" in inspect(new).get_table_names()
    with read_session(new) as s:
        assert s.scalars(select(Dataset.name)).all() == ["kept"]


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
