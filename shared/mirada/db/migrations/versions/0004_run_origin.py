"""run origin: where an imported run was executed

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00

Runs imported from a result bundle (`mirada import-results`) keep the host and run id they
had where they ran, the bundle's content id (unique: importing the same run twice finds it)
and when they were imported. All nullable: local runs leave them empty. Plain ADD COLUMN and
CREATE INDEX, so SQLite keeps its AUTOINCREMENT tables without a rebuild.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("origin_host", sa.String(length=255), nullable=True))
    op.add_column("runs", sa.Column("origin_run_id", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("origin_bundle_sha256", sa.String(length=64), nullable=True))
    op.add_column("runs", sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        op.f("ix_runs_origin_bundle_sha256"), "runs", ["origin_bundle_sha256"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_origin_bundle_sha256"), table_name="runs")
    with op.batch_alter_table("runs", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("imported_at")
        batch.drop_column("origin_bundle_sha256")
        batch.drop_column("origin_run_id")
        batch.drop_column("origin_host")
