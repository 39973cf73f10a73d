"""Storage: engine, sessions, models, migrations."""

from mirada.db.engine import dispose_engines, get_engine, read_session, write_session

__all__ = ["dispose_engines", "get_engine", "read_session", "write_session"]
