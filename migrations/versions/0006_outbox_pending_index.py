"""A partial index on pending outbox rows by due time: claims stop at their batch instead of sorting the backlog.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 14:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_pending_due", "outbox", ["next_attempt_at", "id"], postgresql_where=sa.text("status = 'pending'"),
                    sqlite_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_due", table_name="outbox")
