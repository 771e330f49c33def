"""Indexes for the ticket's life: find a ticket by its thread (comments), and by age (reports).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_platform_channel_id_thread_ref", "tickets", ["platform", "channel_id", "thread_ref"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    op.drop_index("ix_tickets_platform_channel_id_thread_ref", table_name="tickets")
