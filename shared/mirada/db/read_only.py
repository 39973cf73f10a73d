"""What a write to a read-only database becomes: a DatabaseReadOnly error that says why and
what to do. Both the engine (sessions) and the migrations (a schema upgrade) raise it, so it
lives below both and neither imports the other for it."""

from __future__ import annotations

from urllib.parse import unquote

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from mirada.errors import MiradaError


class DatabaseReadOnly(MiradaError):
    """A write to a database this process may only read."""


def read_only_message(engine: Engine, reason: str) -> str:
    return (
        f"{database_where(engine)} is read-only ({reason}); this command needs to write to it. "
        "Run it where the database (its file and folder, for SQLite) is writable, or point "
        "MIRADA_HOME or MIRADA_DATABASE_URL at a writable copy. Commands that only read "
        "(runs, show, datasets, export, the dashboard) work as it is."
    )


def database_where(engine: Engine) -> str:
    """The database as messages name it: its file, or its URL without the password."""
    if engine.url.get_backend_name() == "sqlite":
        return f"the database file {unquote((engine.url.database or '').removeprefix('file:'))}"
    return f"the database {engine.url.render_as_string(hide_password=True)}"


def is_read_only_error(exc: DBAPIError) -> bool:
    """SQLite SQLITE_READONLY* ("attempt to write a readonly database"), or PostgreSQL
    read_only_sql_transaction (SQLSTATE 25006: a standby, default_transaction_read_only)."""
    orig = exc.orig
    if getattr(orig, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
        return True
    return getattr(orig, "sqlstate", None) == "25006"
