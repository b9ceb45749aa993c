"""jobs: tags and a note, to file the runs of one question together and compare them

Tags live in a JSON column of the job (shared/jobs/tags.py says why, and how they are
filtered on SQLite and PostgreSQL alike); existing jobs get none and an empty note.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("tags", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("note")
        batch.drop_column("tags")
