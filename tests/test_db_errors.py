"""Database errors reach the user as one line (issue 22 §4): a violated constraint names the
constraint and the row, a refused value names the column and value, a dropped connection says
nothing was stored and to run the command again; never a traceback or SQLAlchemy's
"Background on this error" link. Mapped once, in the sessions (mirada.db.errors)."""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import CliResult, run_cli
from run_helpers import POSTGRES_URL
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mirada.db import dispose_engines, get_engine, read_session, write_session
from mirada.db.errors import ConstraintViolated, DatabaseUnavailable, ValueRefused
from mirada.db.models import Caption, Dataset, Item
from mirada.errors import MiradaError


def _one_line_error(result: CliResult, command: str) -> str:
    """The CLI's stderr is exactly one `mirada COMMAND: error: ...` line; returns it."""
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mirada {command}: error: ")
    assert "sqlalche.me" not in result.stderr and "Traceback" not in result.stderr
    return lines[0]


def _datasets() -> int:
    with read_session() as s:
        return int(s.scalar(select(func.count()).select_from(Dataset)) or 0)


@pytest.fixture
def pg(postgres_url: str, mirada_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """PostgreSQL only (the errors here do not exist on SQLite)."""
    monkeypatch.setenv("MIRADA_DATABASE_URL", postgres_url)
    dispose_engines()
    return postgres_url


@pytest.fixture
def admin() -> Iterator[Engine]:
    """A second PostgreSQL connection, to terminate the session's own."""
    engine = create_engine(POSTGRES_URL)
    yield engine
    engine.dispose()


def _terminate(admin: Engine, backend_pid: int) -> None:
    with admin.begin() as conn:  # waits (up to 5 s) until the backend is gone
        assert conn.scalar(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": backend_pid})


def test_unique_violation_names_the_constraint_and_the_row(db_url: str) -> None:
    with write_session() as s:
        s.add(Dataset(name="twice", source_format="csv"))
    with pytest.raises(ConstraintViolated) as info, write_session() as s:
        s.add(Dataset(name="twice", source_format="csv"))
    message = str(info.value)
    assert "datasets" in message and "twice" in message, message
    assert "unique" in message.lower() and "nothing of it was stored" in message
    assert "\n" not in message and "sqlalche.me" not in message
    assert isinstance(info.value, MiradaError)
    # Still an IntegrityError with its driver error: code that recognises a lost race by
    # catching IntegrityError around a session (datasets.store, bundles.load) still does.
    assert isinstance(info.value, IntegrityError) and info.value.orig is not None
    assert str(pickle.loads(pickle.dumps(info.value))) == message
    assert _datasets() == 1


def test_a_bug_in_a_query_keeps_its_traceback(db_url: str) -> None:
    """A query Mirada got wrong is not dressed up as the user's problem."""
    with pytest.raises(Exception) as info, read_session() as s:
        s.execute(text("SELECT nothing FROM no_such_table"))
    assert not isinstance(info.value, MiradaError)


@pytest.mark.postgres
def test_nul_in_text_on_postgresql_names_the_column_and_value(pg: str) -> None:
    with pytest.raises(ValueRefused) as info, write_session() as s:
        s.add(Dataset(name="cat\x00dog", source_format="csv"))
    message = str(info.value)
    assert "NUL" in message and "name" in message and "'cat\\x00dog'" in message, message
    assert "nothing of it was stored" in message and "\x00" not in message
    assert isinstance(info.value, DataError)
    assert _datasets() == 0


@pytest.mark.postgres
def test_connection_terminated_mid_import_is_one_line_and_leaves_nothing(
    pg: str, admin: Engine, tmp_path: Path
) -> None:
    """`mirada import` whose server connection is terminated (pg_terminate_backend from a
    second connection) after the images and items went in, before the captions."""
    from mirada.demo.synthetic import write_demo_dataset

    src = write_demo_dataset(tmp_path / "demo", split="demo", n=40)
    killed: list[int] = []

    def kill_before_captions(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not killed and statement.lstrip().upper().startswith("INSERT INTO CAPTIONS"):
            killed.append(conn.connection.dbapi_connection.info.backend_pid)
            _terminate(admin, killed[0])

    event.listen(Engine, "before_cursor_execute", kill_before_captions)
    try:
        result = run_cli("import", str(src), "--name", "cut-off")
    finally:
        event.remove(Engine, "before_cursor_execute", kill_before_captions)
    assert killed, "the import never reached its captions"
    line = _one_line_error(result, "import")
    assert "connection to the database" in line and "was lost" in line, line
    assert "nothing of its transaction was stored; run the command again" in line
    assert _datasets() == 0
    with read_session() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 0
    # As the message says: run it again.
    assert run_cli("import", str(src), "--name", "cut-off").returncode == 0
    with read_session() as s:
        assert s.scalar(select(func.count()).select_from(Caption)) > 0


@pytest.mark.postgres
def test_connection_lost_at_commit_says_the_outcome_is_unknown(pg: str, admin: Engine) -> None:
    def kill(session: Session) -> None:
        _terminate(admin, session.execute(text("SELECT pg_backend_pid()")).scalar_one())

    get_engine()  # migrated before the listener goes in
    event.listen(Session, "before_commit", kill)
    try:
        with pytest.raises(DatabaseUnavailable) as info, write_session() as s:
            s.add(Dataset(name="maybe", source_format="csv"))
    finally:
        event.remove(Session, "before_commit", kill)
    message = str(info.value)
    assert "lost while committing" in message and "may or may not have been stored" in message
    assert isinstance(info.value, OperationalError)
    assert _datasets() == 0  # here it was not; the message cannot know that


def test_sqlite_locked_past_the_wait_is_one_line(mirada_home: Path) -> None:
    """Another process holds the write lock longer than this one waits (30 s; 0 here)."""
    path = mirada_home / "mirada.db"
    engine = get_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", lambda conn, _rec: conn.execute("PRAGMA busy_timeout=0"))
    engine.dispose()  # new connections get the listener
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseUnavailable) as info, write_session(engine) as s:
            s.add(Dataset(name="blocked", source_format="csv"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = str(info.value)
    assert f"the database file {path} stayed locked by another process" in message, message
    assert "nothing was stored" in message


def test_unreachable_server_is_one_line(mirada_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRADA_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test")
    line = _one_line_error(run_cli("runs"), "runs")
    assert "could not connect to the database postgresql+psycopg://postgres@127.0.0.1:1" in line
    assert "MIRADA_DATABASE_URL" in line


def test_a_file_that_is_not_a_database_is_one_line(mirada_home: Path) -> None:
    (mirada_home / "mirada.db").write_bytes(b"these are not the pages you are looking for\n" * 99)
    line = _one_line_error(run_cli("runs"), "runs")
    assert "cannot be read (file is not a database)" in line, line
    assert "Restore it from a backup" in line
