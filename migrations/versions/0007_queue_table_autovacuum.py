"""Queue tables are vacuumed and analysed often (PostgreSQL): outbox and inbound_events churn all day.

The defaults (analyse after 10 % of the table changed, vacuum after 20 %) suit tables that mostly
grow. The outbox is a queue: every row is inserted, updated two or three times and then left
behind, and its claim walks an index whose front is made of rows just delivered. Fresh statistics
keep the planner on that index, and frequent vacuums keep the dead entries at its front few.
These are per-table storage parameters; SQLite has no such thing and nothing changes there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 16:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("outbox", "inbound_events")
_SETTINGS = ("autovacuum_vacuum_scale_factor", "autovacuum_vacuum_threshold", "autovacuum_analyze_scale_factor",
             "autovacuum_analyze_threshold")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, "
                   "autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(_SETTINGS)})")
