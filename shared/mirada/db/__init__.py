"""Storage: engine, sessions, models, migrations."""

from mirada.db.engine import (
    check_database_file,
    dispose_engines,
    get_engine,
    read_session,
    write_session,
)
from mirada.db.errors import DatabaseFailure, DatabaseFileReplaced
from mirada.db.read_only import DatabaseReadOnly

__all__ = [
    "DatabaseFailure",
    "DatabaseFileReplaced",
    "DatabaseReadOnly",
    "check_database_file",
    "dispose_engines",
    "get_engine",
    "read_session",
    "write_session",
]
