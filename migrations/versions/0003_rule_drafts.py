"""Rule drafts: one pending rule set per admin, edited by chat commands before publishing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rule_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("origin IN ('chat', 'import')", name=op.f("ck_rule_drafts_origin")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_drafts")),
        sa.UniqueConstraint("owner", name=op.f("uq_rule_drafts_owner")),
    )


def downgrade() -> None:
    op.drop_table("rule_drafts")
