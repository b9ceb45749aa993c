"""jobs: where the latest attempt was placed, kept after its devices are released

A job's reservations are deleted when its attempt ends, so a finished job no longer said
which nodes and devices it ran on; the scheduler now writes the placement on the job with the
reservations, in the same commit.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("placement", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("placement")
