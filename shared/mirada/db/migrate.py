"""Apply Alembic migrations to head, serialised across processes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from mirada.db.read_only import DatabaseReadOnly, is_read_only_error, read_only_message
from mirada.errors import MiradaError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser treats "%" as interpolation; URLs carry %-escapes (search_path options).
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_to_head(engine: Engine, *, read_only: str | None = None) -> None:
    """Run pending migrations. Several workers may start at once, so env.py takes a lock.

    At head (every start but the first after an upgrade) this only reads, so commands that
    read work on a read-only database; `read_only` (why it is) refuses an upgrade clearly.
    """
    cfg = alembic_config(engine)
    scripts = ScriptDirectory.from_config(cfg)
    head = scripts.get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
        raise MiradaError(
            f"the database's schema is at revision {current}, which this Mirada does not know "
            f"(its newest is {head}): it was written by a newer Mirada; upgrade this one"
        )
    upgrade = f"its schema (revision {current or 'none'}) must first be upgraded to {head}"
    if read_only:
        raise DatabaseReadOnly(read_only_message(engine, f"{read_only}; {upgrade}"))
    try:
        command.upgrade(cfg, "head")
    except DBAPIError as exc:
        if is_read_only_error(exc):
            raise DatabaseReadOnly(read_only_message(engine, upgrade)) from None
        raise


def lock_for_migration(connection: object) -> None:
    """PostgreSQL: a transaction-scoped advisory lock. SQLite: BEGIN IMMEDIATE already holds it."""
    dialect = connection.dialect.name  # type: ignore[attr-defined]
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7251603)"))  # type: ignore[attr-defined]
