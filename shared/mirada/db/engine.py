"""Engine creation (SQLite pragmas, PostgreSQL via psycopg 3), sessions and auto-migration.

The dependency runs one way: this module calls mirada.db.migrate (lazily: Alembic loads only
when a database is first opened), and both take the read-only error from mirada.db.read_only.

Read-only databases: a SQLite file that this process cannot write (the file, or its folder:
a read-only mount, another user's files) is opened read-only, without the pragma that would
write (journal_mode=WAL), and start-up migration does nothing when the schema is already at
head, so reading commands work. A write on it, or on a read-only PostgreSQL (a standby, a
read-only role), is a DatabaseReadOnly error saying so and what to do, not a traceback.

Errors: every database error leaving a session (or the start-up migration) is mapped once, by
mirada.db.errors, into a MiradaError of one line: the connection was lost, which constraint
which row broke, which value was refused; whether anything was stored.

A SQLite file deleted or replaced under a running process: each engine remembers which file
(device, inode) it opened. Sessions check that the path still names that file, before they
start and after a commit, and a new connection never opens (or creates) another file at that
path: a worker's results are never reported stored into an unlinked file, and no empty
database appears in its place (DatabaseFileReplaced).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from mirada.config import get_settings
from mirada.db.errors import DatabaseFailure, DatabaseFileReplaced, map_database_error
from mirada.db.read_only import DatabaseReadOnly, is_read_only_error, read_only_message

_ENGINES: dict[str, Engine] = {}
_MIGRATED: set[str] = set()
_READ_ONLY: dict[Engine, str] = {}  # engine -> why it is read-only, for messages
_FILES: dict[Engine, _SqliteFile] = {}  # engine -> the SQLite file it opened
_LOCK = threading.Lock()


def _normalise_url(url: str) -> str:
    # Users paste libpq-style URLs; psycopg 3 is the driver we ship.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _install_sqlite_pragmas(engine: Engine, *, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit BEGIN is
        # deferred and would upgrade to a write lock mid-transaction: "database is locked").
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if not read_only:  # a setting stored in the file: changing it writes
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def get_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    """Return the process-wide engine for `url` (default: settings), migrated to head."""
    url = _normalise_url(url or get_settings().database_url)
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _create(url)
            _ENGINES[url] = engine
    if migrate and url not in _MIGRATED:
        from mirada.db.migrate import upgrade_to_head

        try:
            upgrade_to_head(engine, read_only=_READ_ONLY.get(engine))
        except DBAPIError as exc:  # the first connection: a server down, a damaged file
            _raise_mapped(exc, engine, writing=False)
        _MIGRATED.add(url)
    return engine


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    connect_args = {"check_same_thread": False}
    if database in ("", ":memory:") or "mode=memory" in url:
        engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
        _install_sqlite_pragmas(engine, read_only=False)
        return engine
    reason = None
    guard = None
    if parsed.query.get("uri") == "true":  # file:...?mode=ro&uri=true, as the user wrote it
        if parsed.query.get("mode") == "ro" or parsed.query.get("immutable") == "1":
            reason = "opened with mode=ro"
        target: str | URL = url
    else:
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        reason = _sqlite_read_only_reason(path)
        target = _read_only_url(path) if reason else url
        # The path SQLite opens (the dialect takes the URL's path as given, made absolute).
        guard = _SqliteFile(os.path.abspath(database), plain=not reason)
    engine = create_engine(target, connect_args={**connect_args, "timeout": 30})
    _install_sqlite_pragmas(engine, read_only=reason is not None)
    if guard:
        guard.install(engine)
        _FILES[engine] = guard
    if reason:
        _READ_ONLY[engine] = reason
    return engine


@dataclass
class _SqliteFile:
    """The SQLite file an engine opened: its path, and its identity (device, inode) once the
    first connection opened it. SQLite creates a missing file on connect; once the engine has
    a file, a new connection (the pool grows, a connection is replaced) opens that file only
    if the path still names it, and with mode=rw, so it never creates one."""

    path: str
    plain: bool  # a plain path in the URL (not a file: URI with its own mode)
    identity: tuple[int, int] | None = None

    def current(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        if self.identity is not None and self.current() != self.identity:
            raise DatabaseFileReplaced(self.path)

    def install(self, engine: Engine) -> None:
        @event.listens_for(engine, "do_connect")
        def _before(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
            if self.identity is None:
                return
            self.check()
            if self.plain:
                cargs[0] = f"file:{quote(self.path)}?mode=rw"
                cparams["uri"] = True

        @event.listens_for(engine, "connect")
        def _after(_dbapi_conn: Any, _record: Any) -> None:
            if self.identity is None:
                self.identity = self.current()


def _sqlite_read_only_reason(path: Path) -> str | None:
    """Why this process cannot write an existing SQLite file, or None (also for a new one)."""
    if not path.exists():
        return None
    if not os.access(path.parent, os.W_OK):  # also EROFS: a read-only mount, even for root
        return "its folder is not writable"
    if not os.access(path, os.W_OK):
        return "the file is not writable"
    return None


def _read_only_url(path: Path) -> URL:
    """Open read-only. A WAL database also needs its -shm file: where the folder is read-only
    and no -shm exists (no connection is open anywhere), only immutable=1 opens it; it then
    reads the file as it is, without locks, which suits a read-only copy or mount."""
    shm = Path(f"{path}-shm")
    mode = {"mode": "ro"} if os.access(path.parent, os.W_OK) or shm.exists() else {"immutable": "1"}
    return URL.create(
        "sqlite", database=f"file:{quote(str(path.resolve()))}", query={**mode, "uri": "true"}
    )


def dispose_engines() -> None:
    """Forget cached engines (tests switch databases; forked workers need fresh pools)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _MIGRATED.clear()
        _READ_ONLY.clear()
        _FILES.clear()


def check_database_file(engine: Engine | None = None) -> None:
    """Raise DatabaseFileReplaced if the engine's SQLite file was deleted or replaced since it
    opened it (a no-op for PostgreSQL and in-memory databases). Sessions call it; a process
    that holds a database for long (the worker) also calls it between transactions."""
    guard = _FILES.get(engine or get_engine())
    if guard is not None:
        guard.check()


@contextmanager
def read_session(engine: Engine | None = None) -> Iterator[Session]:
    """A session for reads; objects stay usable after it closes."""
    engine = engine or get_engine()
    check_database_file(engine)
    try:
        with sessionmaker(engine, expire_on_commit=False)() as session:
            yield session
    except DBAPIError as exc:
        _raise_mapped(exc, engine, writing=False)


@contextmanager
def write_session(engine: Engine | None = None) -> Iterator[Session]:
    """One write transaction: commits on success, rolls back on any exception.

    On SQLite it starts with BEGIN IMMEDIATE so read-then-write never deadlocks.
    """
    engine = engine or get_engine()
    reason = _READ_ONLY.get(engine)
    if reason:
        raise DatabaseReadOnly(read_only_message(engine, reason))
    check_database_file(engine)
    bound = engine.execution_options(sqlite_immediate=True)
    committing = False
    try:
        with sessionmaker(bound, expire_on_commit=False)() as session, session.begin():
            yield session
            committing = True  # the body is done: what fails now fails the COMMIT
    except DBAPIError as exc:
        if is_read_only_error(exc):
            raise DatabaseReadOnly(read_only_message(engine, _reason_from(exc))) from None
        _raise_mapped(exc, engine, writing=True, committing=committing)
    # Committed, but into the file this engine opened: if that is no longer the database's
    # file, nothing of it is in the database now.
    check_database_file(engine)


def _raise_mapped(exc: DBAPIError, engine: Engine, **how: bool) -> NoReturn:
    if isinstance(exc, DatabaseFailure):  # mapped already, by a session inside this one
        raise exc
    mapped = map_database_error(exc, engine, **how)
    if mapped is None:  # a bug: a ProgrammingError, SQLite's "no such table"
        raise exc
    raise mapped from exc


def _reason_from(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else "the server said so"
