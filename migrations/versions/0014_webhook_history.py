"""webhook history: an index for removing old finished deliveries

The scheduler's housekeeping deletes delivered and failed deliveries older than
GANFORGE_WEBHOOK_HISTORY_S (shared/webhooks/cleanup.py) by state and event time; without
this index each batch would scan the whole table.

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-07 04:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_webhook_deliveries_finished", "webhook_deliveries", ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_finished", table_name="webhook_deliveries")
