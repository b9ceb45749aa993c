"""jobs: an index on (created_at, id) for every user's jobs newest first

An admin's `GET /api/v1/jobs?all=true` (and the dashboard's jobs page, every 3 s) sorted the
whole jobs table at each call: bench/db_scale.py showed a Seq Scan at 100,000 jobs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 11:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_created", table_name="jobs")
