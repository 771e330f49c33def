"""``/handoff report [--days N]``: how requests were routed, how pages went, how the MSP performs.

Admins only (a refusal is audited, as every admin command's is). The figures come from
:func:`storage.ticket_report.report_figures` (tickets and incidents created in the window); medians
and 90th percentiles are computed here by linear interpolation between closest ranks (what
PostgreSQL's ``percentile_cont`` does). Plain text that reads the same in Slack and Teams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.commands import Command, CommandReply
from handlers.ports import Actor
from handlers.rules_access import AdminAccess, admin_or_audited_refusal
from storage.ticket_report import ReportFigures, report_figures

DEFAULT_DAYS = 30
MAX_DAYS = 365
USAGE = "report [--days N]"


class ReportError(ValueError):
    """Arguments that are not ``[--days N]``; the message says what to type."""


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-quantile (0..1) of ``values`` by linear interpolation; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = p * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h 05m``, ``2d 4h``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def parse_days(args: str) -> int:
    """``""`` -> 30; ``--days 7``, ``--days=7`` or ``7`` -> 7.

    Raises:
        ReportError: anything else, or a number outside 1..365.
    """
    words = args.replace("=", " ").split()
    if not words:
        return DEFAULT_DAYS
    if words[0].lower() in ("--days", "-d", "days"):
        words = words[1:]
    if len(words) != 1 or not words[0].isdigit() or not 1 <= int(words[0]) <= MAX_DAYS:
        raise ReportError(f"Type `/handoff {USAGE}` with N from 1 to {MAX_DAYS} days, e.g. `/handoff report --days 7` "
                          f"(default {DEFAULT_DAYS}).")
    return int(words[0])


def _share(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "n/a"


def _stats(values: Sequence[float], what: str) -> str:
    if not values:
        return f"no {what} yet"
    median, p90 = percentile(values, 0.5), percentile(values, 0.9)
    assert median is not None and p90 is not None
    return f"median {duration(median)}, p90 {duration(p90)} ({len(values)} {what})"


def render(f: ReportFigures, *, days: int, sla_hours: float | None) -> str:
    """The report as markdown text."""
    total = sum(f.by_route.values())
    msp, internal, page = (f.by_route.get(r, 0) for r in ("msp", "internal", "page"))
    other = total - msp - internal - page
    lines = [(f"*handoff report*: last {days} day{'s' if days != 1 else ''} "
              f"({f.since:%Y-%m-%d %H:%M} to {f.until:%Y-%m-%d %H:%M} UTC)")]
    routes = f"MSP {msp}, in-house {internal}, paged {page}" + (f", other {other}" if other else "")
    lines.append(f"*Requests*: {total} ({routes}); deflected to the MSP: {_share(msp, total)}")
    unpaged = f.incidents - f.paged - f.held
    lines.append(
        f"*Pages*: {f.incidents} incident{'s' if f.incidents != 1 else ''}: {f.paged} paged, {f.held} held back by the "
        f"page cap" + (f", {unpaged} without a pager" if unpaged else "")
        + f"; false pages (resolved as not critical): {f.false_pages} ({_share(f.false_pages, f.incidents)})"
    )
    lines.append(f"• time to acknowledge: {_stats(f.ack_seconds, 'acknowledged')}")
    lines.append(f"• time to resolve: {_stats(f.resolve_seconds, 'resolved')}, false pages excluded")
    lines.append(f"*MSP*: {f.msp_tickets} ticket{'s' if f.msp_tickets != 1 else ''}")
    lines.append(f"• first response: {_stats(f.msp_first_response_seconds, 'answered')}")
    lines.append(f"• resolution: {_stats(f.msp_resolution_seconds, 'resolved')}")
    if sla_hours is None and not f.sla_tracked:
        lines.append("*SLA*: not configured (`sla.msp_first_response_hours` in app.yaml)")
    else:
        hours = f" within {sla_hours:g} business hours" if sla_hours is not None else ""
        lines.append(f"*SLA* (first response{hours}): {f.sla_breached} breach{'es' if f.sla_breached != 1 else ''} of "
                     f"{f.sla_tracked} tracked ({_share(f.sla_breached, f.sla_tracked)}); {f.sla_waiting} still waiting "
                     "for a first response")
    lines.append("Durations are wall-clock time from the request (or the page) to the event.")
    return "\n".join(lines)


class Report:
    """The ``report`` command."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        access: AdminAccess | None,
        sla_hours: float | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._access = access
        self._sla_hours = sla_hours

    def command(self) -> Command:
        return Command("report", "figures for admins: routes, pages, MTTA/MTTR, MSP times, SLA breaches", USAGE,
                       self.handle, ("report", "report --days 7"))

    async def handle(self, actor: Actor, args: str) -> CommandReply:
        decision = await admin_or_audited_refusal(self._access, actor=actor, action="report", command=args,
                                                  sessionmaker=self._sessionmaker, clock=self._clock)
        if not decision.allowed:
            how = self._access.how_to_become(actor.platform) if self._access is not None else ""
            return CommandReply(f":no_entry: Only admins may see the report. {how}".strip())
        try:
            days = parse_days(args)
        except ReportError as exc:
            return CommandReply(str(exc))
        until = self._clock()
        async with self._sessionmaker() as session:
            figures = await report_figures(session=session, since=until - timedelta(days=days), until=until)
        return CommandReply(render(figures, days=days, sla_hours=self._sla_hours))
