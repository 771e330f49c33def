"""The time an outbox row first became due, kept when a failed attempt moves its next attempt later.

A retry overwrites ``next_attempt_at``, so without this the delivery lag restarted at every retry
and a row retried throughout an MSP outage looked as fresh as a new one. ``first_due_at`` is set by
the first retry (NULL until then: ``next_attempt_at`` still holds it). Rows already retrying when the
migration runs are left NULL: their first due time is lost, and their creation time is no stand-in (an
SLA check written three days ago and retried once would read as a 72-hour-old backlog and fire the
alert the docs recommend). Their age counts from their next retry instead.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("first_due_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("first_due_at")
