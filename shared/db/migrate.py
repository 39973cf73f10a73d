"""Apply Alembic migrations to head, serialised across processes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser treats "%" as interpolation; URLs carry %-escapes (search_path options).
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_to_head(engine: Engine) -> None:
    """Run pending migrations. Several workers may start at once, so env.py takes a lock."""
    command.upgrade(alembic_config(engine), "head")


def lock_for_migration(connection: object) -> None:
    """PostgreSQL: a transaction-scoped advisory lock. SQLite: BEGIN IMMEDIATE already holds it."""
    dialect = connection.dialect.name  # type: ignore[attr-defined]
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7251603)"))  # type: ignore[attr-defined]
