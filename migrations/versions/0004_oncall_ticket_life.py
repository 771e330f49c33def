"""On-call and the ticket's life: incidents, ticket history, on-call overrides, ticket lifecycle columns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 13:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("incident_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("remote_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("msp_status", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("first_response_at", _TS, nullable=True))
        batch.add_column(sa.Column("resolved_at", _TS, nullable=True))
        batch.add_column(sa.Column("closed_at", _TS, nullable=True))
        batch.add_column(sa.Column("sla_due_at", _TS, nullable=True))
        batch.add_column(sa.Column("sla_breached_at", _TS, nullable=True))
    op.create_index("ix_tickets_incident_id", "tickets", ["incident_id"])

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=255), nullable=False),
        sa.Column("group_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pager", sa.String(length=16), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("first_ticket_id", sa.Integer(), nullable=True),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_report_at", _TS, nullable=False),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=255), nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("resolved_by", sa.String(length=255), nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("assignee", sa.String(length=255), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.CheckConstraint("status IN ('triggered', 'acknowledged', 'resolved')", name=op.f("ck_incidents_status")),
        sa.CheckConstraint("pager IN ('pagerduty', 'opsgenie', 'chat', 'held', 'none')",
                           name=op.f("ck_incidents_pager")),
        sa.ForeignKeyConstraint(["first_ticket_id"], ["tickets.id"], name=op.f("fk_incidents_first_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_incidents_dedup_key")),
    )
    op.create_index("ix_incidents_rule_id_group_key_status", "incidents", ["rule_id", "group_key", "status"])
    op.create_index("ix_incidents_status_created_at", "incidents", ["status", "created_at"])

    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_events_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
    )
    op.create_index("ix_ticket_events_ticket_id_id", "ticket_events", ["ticket_id", "id"])

    op.create_table(
        "oncall_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=255), nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cancelled_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_overrides")),
    )
    op.create_index("ix_oncall_overrides_ends_at", "oncall_overrides", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_oncall_overrides_ends_at", table_name="oncall_overrides")
    op.drop_table("oncall_overrides")
    op.drop_index("ix_ticket_events_ticket_id_id", table_name="ticket_events")
    op.drop_table("ticket_events")
    op.drop_index("ix_incidents_status_created_at", table_name="incidents")
    op.drop_index("ix_incidents_rule_id_group_key_status", table_name="incidents")
    op.drop_table("incidents")
    op.drop_index("ix_tickets_incident_id", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for column in ("sla_breached_at", "sla_due_at", "closed_at", "resolved_at", "first_response_at",
                       "msp_status", "remote_id", "incident_id"):
            batch.drop_column(column)
