"""Alembic environment: uses the engine handed over by mirada.db.migrate."""

from __future__ import annotations

from alembic import context

from mirada.db.migrate import lock_for_migration
from mirada.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from mirada.db.engine import get_engine

        engine = get_engine(config.get_main_option("sqlalchemy.url"), migrate=False)
    with engine.execution_options(sqlite_immediate=True).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            lock_for_migration(connection)
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Mirada applies migrations online only (mirada.db.migrate.upgrade_to_head).")
run_migrations_online()
