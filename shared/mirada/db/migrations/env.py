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
        sqlite = connection.dialect.name == "sqlite"
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        if sqlite:
            # Batch mode rebuilds a table by dropping it, and with foreign keys on, that DROP
            # deletes (cascades into) the rows referencing it. SQLite ignores this pragma
            # inside a transaction, so it is set on the raw connection before BEGIN, the keys
            # are checked before COMMIT, and the connection is discarded afterwards (the next
            # one gets foreign_keys=ON from the engine's connect hook).
            raw = connection.connection.driver_connection
            assert raw is not None  # an open connection has its DBAPI connection
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with context.begin_transaction():
                lock_for_migration(connection)
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if broken is not None:
                        raise RuntimeError(f"migration broke a foreign key: {tuple(broken)}")
        finally:
            if sqlite:
                connection.invalidate()


if context.is_offline_mode():
    raise SystemExit("Mirada applies migrations online only (mirada.db.migrate.upgrade_to_head).")
run_migrations_online()
