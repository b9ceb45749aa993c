"""jobs: indexes for a million jobs (state listings, the quota count, recent usage)

bench/db_scale.py at 1,000,000 jobs and 10,000,000 events found three reads that grow with
the history:
- a listing filtered by state (`GET /api/v1/jobs?state=failed`, the caller's or with
  `?all=true` every user's) intersected the owner and state indexes, then sorted every match
  (42 ms), or walked every user's newest jobs past the live queue (16 ms): the state now
  leads an index in listing order, alone and after the owner, so a page is one index range;
- a submission's queued-jobs quota count (owner and state) is one range of the same index;
- every scheduler pass's recent usage (`finished_at IS NULL OR finished_at > horizon`,
  scheduler/pool_state.py) read the whole table: `finished_at` is indexed.
The state's own index is replaced by the (state, created_at, id) one, which serves every
query it did.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at", "id"])
    op.create_index(
        "ix_jobs_owner_state_created", "jobs", ["owner_id", "state", "created_at", "id"]
    )
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"])
    op.drop_index("ix_jobs_state", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.drop_index("ix_jobs_finished", table_name="jobs")
    op.drop_index("ix_jobs_owner_state_created", table_name="jobs")
    op.drop_index("ix_jobs_state_created", table_name="jobs")
