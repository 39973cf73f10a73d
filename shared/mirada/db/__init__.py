"""Storage: engine, sessions, models, migrations."""

from mirada.db.engine import (
    DatabaseReadOnly,
    dispose_engines,
    get_engine,
    read_session,
    write_session,
)

__all__ = ["DatabaseReadOnly", "dispose_engines", "get_engine", "read_session", "write_session"]
