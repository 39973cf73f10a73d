"""Storage: engine, sessions, models, migrations."""

from mirada.db.engine import dispose_engines, get_engine, read_session, write_session
from mirada.db.read_only import DatabaseReadOnly

__all__ = ["DatabaseReadOnly", "dispose_engines", "get_engine", "read_session", "write_session"]
