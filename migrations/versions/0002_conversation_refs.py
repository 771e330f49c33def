"""Conversation references: where requesters and channels can be reached for proactive messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 12:00:00

One row per (platform, key), upserted whenever the platform shows us a conversation (a Teams 1:1
message, a channel @mention, the bot being added to a team).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversation_refs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=255), nullable=True),
        sa.Column("service_url", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.Text(), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('user', 'channel', 'chat')", name=op.f("ck_conversation_refs_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_refs")),
        sa.UniqueConstraint("platform", "key", name=op.f("uq_conversation_refs_platform_key")),
    )
    op.create_index("ix_conversation_refs_platform_kind", "conversation_refs", ["platform", "kind"])


def downgrade() -> None:
    op.drop_index("ix_conversation_refs_platform_kind", table_name="conversation_refs")
    op.drop_table("conversation_refs")
