"""image blobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:30:59.101349
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "image_blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["images.sha256"],
            name=op.f("fk_image_blobs_sha256_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sha256", "kind", name=op.f("pk_image_blobs")),
    )


def downgrade() -> None:

    op.drop_table("image_blobs")
