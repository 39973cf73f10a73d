"""ids never reused: SQLite tables with integer ids become AUTOINCREMENT

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00

Without AUTOINCREMENT, SQLite gives a new row max(id)+1, so deleting the newest run (dataset,
item, ...) hands its id to the next one and an old link or export naming it shows another.
SQLite cannot add AUTOINCREMENT to an existing table, so each is rebuilt (batch mode, copying
every row with its id); the copy leaves sqlite_sequence at max(id). Ids deleted before this
upgrade are not recorded anywhere, so the first new id after the largest remaining one may
repeat one of those; none repeats afterwards. env.py turns foreign keys off around the
rebuild (dropping a referenced table would otherwise cascade) and checks them before commit.
PostgreSQL: sequences never hand a number out twice; nothing to do.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = (
    "datasets",
    "items",
    "captions",
    "hardware_profiles",
    "workers",
    "runs",
    "metrics",
    "timings",
    "run_embeddings",
    "item_results",
    "generated_captions",
    "run_artifacts",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    # Tables that never reuse ids suit revision 0002's code as well: nothing to undo.
    pass
