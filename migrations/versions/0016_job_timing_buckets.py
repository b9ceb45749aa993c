"""job_timing_buckets: the /metrics timing histograms, counted as jobs move; events by (job, id)

bench/db_scale.py at 1,000,000 jobs and 10,000,000 events: a /metrics scrape took 112 s, as
it read every queued and running event and every finished job to build the queue-wait and
run-time histograms. The state machine now counts each measurement into one row of this table
(metric, kind, state, bucket) in the transaction of the state change (shared/job_timings.py);
the scrape reads these rows. The history so far is counted here, once, as the scrape did.

A job's events are read a page at a time (`?cursor=<event id>`, shared/jobs/event_pages.py):
`(job_id, id)` makes a page one index range. On `job_id` alone PostgreSQL could walk the
primary key from the cursor and filter on the job, past every later event of every job.
It replaces the `job_id` index, whose every use it serves.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.job_timings import backfill

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_timing_buckets",
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "kind", "state", "bucket"),
    )
    backfill(op.get_bind())
    op.create_index("ix_job_events_job_id_id", "job_events", ["job_id", "id"])
    op.drop_index("ix_job_events_job_id", table_name="job_events")


def downgrade() -> None:
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.drop_index("ix_job_events_job_id_id", table_name="job_events")
    op.drop_table("job_timing_buckets")
