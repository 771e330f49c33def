"""The figures behind ``/handoff report``: counts as SQL aggregates, durations as (start, end) pairs.

Counts are ``COUNT`` / ``SUM(CASE …)`` grouped in the database. Medians and percentiles need the
individual durations: the queries return only the two timestamps of each finished interval (already
filtered in SQL) and :mod:`handlers.report` computes the statistics, the same on SQLite (which has
no ``percentile_cont``) and PostgreSQL. Tickets and incidents are counted by when they were created.
Session keyword-only, no commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Incident, Ticket

#: Pagers that actually reached a person (``held`` and ``none`` did not).
PAGED = ("pagerduty", "opsgenie", "chat")


@dataclass(frozen=True, slots=True)
class ReportFigures:
    """Raw figures of one window ``[since, until)``; durations in seconds, unsorted."""

    since: datetime
    until: datetime
    by_route: dict[str, int] = field(default_factory=dict)
    incidents: int = 0
    paged: int = 0
    held: int = 0
    false_pages: int = 0
    ack_seconds: tuple[float, ...] = ()
    resolve_seconds: tuple[float, ...] = ()
    msp_tickets: int = 0
    msp_first_response_seconds: tuple[float, ...] = ()
    msp_resolution_seconds: tuple[float, ...] = ()
    sla_tracked: int = 0
    sla_breached: int = 0
    sla_waiting: int = 0


def _int(value: object) -> int:
    return int(value or 0)  # type: ignore[call-overload]


def _seconds(pairs: object) -> tuple[float, ...]:
    return tuple(max(0.0, (end - start).total_seconds()) for start, end in pairs)  # type: ignore[attr-defined]


async def report_figures(*, session: AsyncSession, since: datetime, until: datetime) -> ReportFigures:
    """Everything ``/handoff report`` shows for tickets and incidents created in ``[since, until)``."""
    t_window = (Ticket.created_at >= since, Ticket.created_at < until)
    i_window = (Incident.created_at >= since, Incident.created_at < until)

    routes = await session.execute(select(Ticket.route, func.count()).where(*t_window).group_by(Ticket.route))
    by_route = {str(route): int(count) for route, count in routes.all()}

    paged = Incident.pager.in_(PAGED)
    incidents, n_paged, held, false_pages = (await session.execute(
        select(
            func.count(),
            func.sum(case((paged, 1), else_=0)),
            func.sum(case((Incident.pager == "held", 1), else_=0)),
            func.sum(case((Incident.resolution == "not_critical", 1), else_=0)),
        ).where(*i_window)
    )).one()
    acks = await session.execute(
        select(Incident.created_at, Incident.acknowledged_at).where(*i_window, paged, Incident.acknowledged_at.is_not(None))
    )
    # Time to resolve real problems: false pages (resolved as not critical) would flatter it.
    resolves = await session.execute(
        select(Incident.created_at, Incident.resolved_at).where(
            *i_window, paged, Incident.resolved_at.is_not(None),
            (Incident.resolution.is_(None)) | (Incident.resolution != "not_critical"),
        )
    )

    msp = (*t_window, Ticket.route == "msp")
    msp_tickets, sla_tracked, sla_breached, sla_waiting = (await session.execute(
        select(
            func.count(),
            func.count(Ticket.sla_due_at),
            func.count(Ticket.sla_breached_at),
            func.sum(case(
                ((Ticket.sla_due_at.is_not(None)) & Ticket.first_response_at.is_(None)
                 & Ticket.sla_breached_at.is_(None) & Ticket.status.not_in(("resolved", "closed")), 1),
                else_=0,
            )),
        ).where(*msp)
    )).one()
    first = await session.execute(
        select(Ticket.created_at, Ticket.first_response_at).where(*msp, Ticket.first_response_at.is_not(None))
    )
    resolved = await session.execute(
        select(Ticket.created_at, Ticket.resolved_at).where(*msp, Ticket.resolved_at.is_not(None))
    )
    return ReportFigures(
        since=since, until=until, by_route=by_route,
        incidents=_int(incidents), paged=_int(n_paged), held=_int(held), false_pages=_int(false_pages),
        ack_seconds=_seconds(acks.all()), resolve_seconds=_seconds(resolves.all()),
        msp_tickets=_int(msp_tickets), msp_first_response_seconds=_seconds(first.all()),
        msp_resolution_seconds=_seconds(resolved.all()),
        sla_tracked=_int(sla_tracked), sla_breached=_int(sla_breached), sla_waiting=_int(sla_waiting),
    )
