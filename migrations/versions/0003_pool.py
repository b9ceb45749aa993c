"""pool: nodes, device reservations, scheduler lease, priorities and quotas

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 02:16:04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.String(length=300), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("boot_id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "reservations",
        sa.Column("node_name", sa.String(length=200), nullable=False),
        sa.Column("device_index", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("node_rank", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["node_name"], ["nodes.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("node_name", "device_index"),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reservations_job_id"), ["job_id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("queue_position", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("waiting_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("preempt_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("rendezvous", sa.String(length=300), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_devices", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_queued_jobs", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("max_queued_jobs")
        batch_op.drop_column("max_devices")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("rendezvous")
        batch_op.drop_column("preempt_reason")
        batch_op.drop_column("waiting_reason")
        batch_op.drop_column("queue_position")
        batch_op.drop_column("priority")

    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reservations_job_id"))

    op.drop_table("reservations")
    op.drop_table("scheduler_lease")
    op.drop_table("nodes")
