"""storage quota: a per-user override of GANFORGE_STORAGE_QUOTA_BYTES; deleted jobs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: every existing user follows the service's default quota.
    op.add_column("users", sa.Column("storage_quota_bytes", sa.BigInteger(), nullable=True))
    # Null for every existing job: none has been deleted.
    op.add_column("jobs", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("users") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("storage_quota_bytes")
