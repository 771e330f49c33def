"""What ``/handoff status`` shows: an employee's open tickets, and one ticket with its history.

Pure functions from stored rows to markdown text (Slack mrkdwn and Teams markdown both read it).
The history merges the ticket's events with the facts of its deliveries (sent to the MSP at …,
MSP id …, paged …, acknowledged …), oldest first. Times are shown in UTC and said so.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from handlers.paging import unstaffed
from storage.models import Incident, Ticket, TicketEvent
from storage.tickets import DeliveryFact

#: Where a ticket lives, as the employee reads it.
WHERE = {"msp": "the service desk (MSP)", "internal": "in-house IT", "page": "in-house IT (critical)"}
STATUS_LABEL = {"open": "open", "in_progress": "in progress", "waiting": "waiting", "resolved": "resolved",
                "closed": "closed"}
PAGER_LABEL = {"pagerduty": "PagerDuty", "opsgenie": "Opsgenie", "chat": "chat"}
_CLIP = 300


def where(route: str) -> str:
    """``the service desk (MSP)`` or ``in-house IT``: who works on tickets of ``route``."""
    return WHERE.get(route, route)


def when(at: datetime) -> str:
    """``2026-03-27 16:00 UTC``."""
    return at.strftime("%Y-%m-%d %H:%M UTC")


def age(at: datetime, now: datetime) -> str:
    """``just now``, ``12 min ago``, ``3 h ago``, ``2 days ago``."""
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def clip(text: str, limit: int = _CLIP) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str) -> str:
    return f"“{clip(text)}”" if text else ""


def render_list(tickets: Sequence[Ticket], total: int, *, now: datetime) -> str:
    """An employee's open tickets, newest first, with a hint when the list is capped."""
    if not tickets:
        return ("You have no open tickets. Write to me what is wrong to open one; `/handoff status IT-1042` "
                "shows a closed one.")
    lines = [f"*Your open tickets* ({total}):"]
    for t in tickets:
        lines.append(f"• *{t.key}* {STATUS_LABEL.get(t.status, t.status)} · {where(t.route)} · queue `{t.queue}` · "
                     f"opened {age(t.created_at, now)}: {_quote(clip(t.text, 80))}")
    if total > len(tickets):
        lines.append(f"…and {total - len(tickets)} older. `/handoff status IT-…` shows any one of them.")
    else:
        lines.append("`/handoff status IT-…` shows one with its history; `/handoff close IT-…` closes one.")
    return "\n".join(lines)


def _who(actor: str, detail: dict[str, object]) -> str:
    name = detail.get("name")
    if isinstance(name, str) and name:
        return name
    if actor == "msp":
        return "the service desk"
    return actor or "someone"


def render_event(event: TicketEvent) -> str:
    """One history line (without its time)."""
    detail = event.detail or {}
    who = _who(event.actor, detail)
    k = event.kind
    if k == "comment":
        return f"{who} commented: {_quote(event.text)}"
    if k == "msp_update":
        author = detail.get("author")
        by = f"the service desk ({author})" if isinstance(author, str) and author else "the service desk"
        if detail.get("type") == "status":
            status = str(detail.get("status", ""))
            return f"{by} set the status to *{STATUS_LABEL.get(status, status)}*"
        return f"{by} wrote: {_quote(event.text)}"
    if k == "closed":
        return f"closed by {who}" + (f": {_quote(event.text)}" if event.text else "")
    if k == "reopened":
        return f"reopened by {who}" + (f": {_quote(event.text)}" if event.text else "")
    if k == "sla_breach":
        return event.text or "no first response from the MSP in time: escalated to in-house IT"
    if k == "created":
        return event.text or "opened"
    return f"{k.replace('_', ' ')}" + (f": {clip(event.text)}" if event.text else "")


def render_fact(fact: DeliveryFact) -> str | None:
    """One history line for a delivery, or None for deliveries not worth a line (chat replies)."""
    pending = f"not delivered yet ({fact.attempts} attempt{'s' if fact.attempts != 1 else ''} so far)"
    if fact.kind == "msp" and fact.event in (None, "ticket.created"):
        if fact.status == "delivered":
            return f"sent to the MSP{f', MSP id `{fact.remote_id}`' if fact.remote_id else ''}"
        if fact.status == "dead":
            return "could not be sent to the MSP; the admins were alerted"
        return f"to be sent to the MSP: {pending}"
    if fact.kind in ("pagerduty", "opsgenie") and fact.action in ("trigger", "create"):
        label = PAGER_LABEL[fact.kind]
        if fact.status == "delivered":
            return f"on-call paged via {label}"
        if fact.status == "dead":
            return f"the {label} page failed; the admins were alerted"
        return f"{label} page {pending}"
    if fact.kind == "internal" and fact.event is None:
        return {"delivered": "posted to the in-house IT channel",
                "dead": "could not be posted to the in-house IT channel"}.get(fact.status, f"in-house IT post {pending}")
    return None


def _fact_time(fact: DeliveryFact) -> datetime:
    return fact.delivered_at or fact.dead_at or fact.created_at


def render_incident(incident: Incident) -> list[tuple[datetime, str]]:
    """History lines from the incident a page-route ticket belongs to."""
    lines: list[tuple[datetime, str]] = []
    if unstaffed(incident):
        alerted = f"nobody on call: the in-house IT channel and the admins were alerted (incident {incident.id})"
        lines.append((incident.created_at, alerted))
    elif incident.pager == "chat":
        lines.append((incident.created_at, f"on-call paged in chat (incident {incident.id})"))
    elif incident.pager in PAGER_LABEL:
        lines.append((incident.created_at, f"part of incident {incident.id} (pager: {PAGER_LABEL[incident.pager]})"))
    if incident.pager == "held":
        lines.append((incident.created_at, "page held back by the page cap (on-call can see it)"))
    if incident.acknowledged_at is not None:
        lines.append((incident.acknowledged_at, f"page acknowledged by {incident.acknowledged_by or 'on-call'}"))
    if incident.resolved_at is not None:
        how = " as not critical" if incident.resolution == "not_critical" else ""
        lines.append((incident.resolved_at, f"incident resolved{how} by {incident.resolved_by or 'on-call'}"))
    return lines


def render_ticket(
    ticket: Ticket,
    events: Sequence[TicketEvent],
    facts: Sequence[DeliveryFact],
    incident: Incident | None,
    *,
    now: datetime,
) -> str:
    """One ticket: where it stands, then its history (events, deliveries, page steps) by time."""
    status = STATUS_LABEL.get(ticket.status, ticket.status)
    head = [f"*{ticket.key}* · *{status}* · {where(ticket.route)} · queue `{ticket.queue}`",
            f"Opened {when(ticket.created_at)} ({age(ticket.created_at, now)}): {_quote(ticket.text)}"]
    facts_line = []
    if ticket.remote_id:
        facts_line.append(f"MSP id `{ticket.remote_id}`")
    if ticket.msp_status:
        facts_line.append(f"MSP status {STATUS_LABEL.get(ticket.msp_status, ticket.msp_status)}")
    if ticket.first_response_at:
        facts_line.append(f"first response {when(ticket.first_response_at)}")
    elif ticket.sla_due_at and ticket.route == "msp" and ticket.status not in ("resolved", "closed"):
        facts_line.append(f"first response due by {when(ticket.sla_due_at)}")
    if ticket.closed_at:
        facts_line.append(f"closed {when(ticket.closed_at)}")
    elif ticket.resolved_at:
        facts_line.append(f"resolved {when(ticket.resolved_at)}")
    if facts_line:
        head.append(" · ".join(facts_line))
    lines: list[tuple[datetime, int, str]] = [(e.at, 1, render_event(e)) for e in events]
    lines += [(_fact_time(f), 0, text) for f in facts if (text := render_fact(f)) is not None]
    if incident is not None:
        lines += [(at, 2, text) for at, text in render_incident(incident)]
    lines.sort(key=lambda line: (line[0], line[1]))
    history = [f"• {at.strftime('%d %b %H:%M')} {text}" for at, _, text in lines] or ["• nothing yet"]
    return "\n".join([*head, "*History* (UTC):", *history])
