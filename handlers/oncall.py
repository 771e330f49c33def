"""On-call commands: ``oncall`` (who, overrides), ``ack`` / ``resolve`` / ``escalate IT-1042``, ``incidents``.

* ``/handoff oncall``: anyone; who is on call now and until when, next, secondary, overrides. With
  PagerDuty or Opsgenie as the pager it says that the pager decides, and shows no rotation.
* ``/handoff oncall override <person> --until <when> [--from <when>]`` and ``oncall clear <id>``:
  admins only (the same :class:`~handlers.rules_access.AdminAccess` as ``rules``), audited, refusals too.
* ``/handoff ack|resolve|escalate IT-1042`` (``resolve IT-1042 not-critical`` for a false page) and
  ``/handoff incidents``: on-call people (rotation, secondary, overrides, whoever was paged) and admins.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.commands import Actor, Command, CommandReply
from handlers.incidents import ONCALL_ONLY, IncidentActions, may_act_on_pages, when
from handlers.oncall_time import EXAMPLES, parse_when
from handlers.paging import (
    PAGER_NAMES,
    PagingOptions,
    Roster,
    describe_person,
    ref_of,
    unstaffed,
)
from handlers.paging_group import describe_key
from handlers.rules_access import AdminAccess, admin_or_audited_refusal, audit_text
from routing.oncall import find_person
from storage import incidents as store
from storage import service
from storage.models import MAX_ROW_ID

OVERRIDE_USAGE = "oncall override <person> --until <when> [--from <when>]"


class OncallCommands:
    """The on-call commands. Share one instance per process."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], roster: Roster, options: PagingOptions,
                 actions: IncidentActions, access: AdminAccess, clock: Callable[[], datetime]) -> None:
        self._sessionmaker = sessionmaker
        self._roster = roster
        self._options = options
        self._actions = actions
        self._access = access
        self._clock = clock

    def commands(self) -> list[Command]:
        async def ack(actor: Actor, args: str) -> CommandReply:
            return await self._act(actor, "acknowledge", args, command="ack")

        async def resolve(actor: Actor, args: str) -> CommandReply:
            return await self._act(actor, "resolve", args, command="resolve")

        async def escalate(actor: Actor, args: str) -> CommandReply:
            return await self._act(actor, "escalate", args, command="escalate")

        return [
            Command("oncall", "who is on call; admins: overrides", "oncall [override <person> --until <when> "
                    "[--from <when>] | clear <id>]", self.oncall,
                    ("oncall", "oncall override @dana --until tomorrow 09:00", "oncall clear 3")),
            Command("ack", "acknowledge the page of a ticket (on-call)", "ack IT-1042", ack, ("ack IT-1042",)),
            Command("resolve", "resolve the page of a ticket; `not-critical` for a false page (on-call)",
                    "resolve IT-1042 [not-critical]", resolve, ("resolve IT-1042", "resolve IT-1042 not-critical")),
            Command("escalate", "escalate the page of a ticket to the next step now (on-call)", "escalate IT-1042",
                    escalate, ("escalate IT-1042",)),
            Command("incidents", "open and held incidents with their report counts (on-call)", "incidents",
                    self.incidents, ("incidents",)),
        ]

    # -- who is on call ---------------------------------------------------------------------------

    async def oncall(self, actor: Actor, args: str) -> CommandReply:
        sub, _, rest = args.strip().partition(" ")
        if sub.lower() == "override":
            return await self._override(actor, rest)
        if sub.lower() == "clear":
            return await self._clear(actor, rest.strip())
        if sub:
            return CommandReply(f"Unknown `oncall {sub}`. Use `/handoff oncall`, `/handoff {OVERRIDE_USAGE}` "
                                "or `/handoff oncall clear <id>`.")
        now, tz = self._clock(), self._roster.timezone
        if self._options.pager in ("pagerduty", "opsgenie"):
            name = PAGER_NAMES[self._options.pager]
            return CommandReply(f"Pages go to {name}: {name} decides who is on call and escalates (oncall.pager: "
                                f"{self._options.pager}). See the schedule in {name}; `/handoff incidents` lists "
                                "open incidents.")
        async with self._sessionmaker() as session:
            oc = await self._roster.now(session=session, at=now)
            rows = await store.list_overrides(session=session, now=now)
        until = f" until {when(oc.until, tz)}" if oc.until else ""
        source = {"override": "override", "rotation": "rotation", "none": "nobody scheduled"}[oc.source]
        lines = [f"*On call now:* {describe_person(oc.primary)}{until} ({source})",
                 f"*Next:* {describe_person(oc.next)} · *Secondary:* {describe_person(oc.secondary)}"]
        planned = [o for o in self._roster.planned if o.ends_at > now]
        if rows or planned:
            lines.append("*Overrides:*")
            lines += [f"• {o.person.name}: {when(o.starts_at, tz)} → {when(o.ends_at, tz)} (app.yaml)" for o in planned]
            lines += [f"• #{r.id} {self._roster.person(r.person).name}: {when(r.starts_at, tz)} → {when(r.ends_at, tz)}"
                      f" (by {r.created_by})" for r in rows]
        minutes = f"{self._options.ack_timeout.total_seconds() / 60:g}"
        channel = "the on-call channel" if self._options.channels else "no on-call channel (set oncall.slack_channel)"
        lines.append(f"Pages are DMed to whoever is on call, with {channel}; unacknowledged after {minutes} min they "
                     "go to the next person, then the secondary, then the channel with @here.")
        if oc.primary is None:
            lines.append(":warning: Nobody is on call: a page goes straight to the next step that reaches someone "
                         "(or, failing all, to the in-house IT channel and the admins).")
        return CommandReply("\n".join(lines))

    async def _override(self, actor: Actor, args: str) -> CommandReply:
        allowed = await self._admin(actor, "oncall.override", args)
        if allowed is not None:
            return allowed
        try:
            person_text, until, starts = _split_override(args)
            ref = self._person_ref(person_text)
            now, tz = self._clock(), self._roster.timezone
            starts_at = parse_when(starts, now=now, timezone=tz) if starts else now
            ends_at = parse_when(until, now=now, timezone=tz)
            if ends_at <= max(starts_at, now):
                raise ValueError(f"--until ({when(ends_at, tz)}) must be after the start and in the future")
        except ValueError as exc:
            await self._audit(actor, "oncall.override", "", True, {"command": audit_text(args, 500),
                                                                    "outcome": "error", "error": audit_text(str(exc), 500)})
            return CommandReply(f":warning: {exc}\nUsage: `/handoff {OVERRIDE_USAGE}`; <when> is e.g. {EXAMPLES}.")
        async with self._sessionmaker.begin() as session:
            row = await store.add_override(session=session, person=ref, starts_at=starts_at, ends_at=ends_at,
                                           created_by=actor.ref, now=now)
            await service.audit(session=session, actor=actor.ref, action="oncall.override", target=ref, allowed=True,
                                detail={"command": audit_text(args, 500), "outcome": "ok", "override": row.id,
                                        "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()}, now=now)
        name = self._roster.person(ref).name
        note = ""
        if self._options.pager in ("pagerduty", "opsgenie"):
            pager = PAGER_NAMES[self._options.pager]
            note = (f"\n:warning: Pages go to {pager}, which decides who is woken: make the override in {pager} too. "
                    "This one applies to the chat pager only.")
        return CommandReply(f"Override #{row.id}: {name} is on call from {when(starts_at, tz)} until "
                            f"{when(ends_at, tz)}. `/handoff oncall clear {row.id}` cancels it." + note)

    async def _clear(self, actor: Actor, args: str) -> CommandReply:
        allowed = await self._admin(actor, "oncall.clear", args)
        if allowed is not None:
            return allowed
        ident = args.lstrip("#")
        if not (ident.isascii() and ident.isdigit() and int(ident) <= MAX_ROW_ID):
            await self._audit(actor, "oncall.clear", audit_text(args, 200), True, {"outcome": "error", "error": "not an id"})
            return CommandReply("Usage: `/handoff oncall clear <id>` (the override number `/handoff oncall` shows).")
        now = self._clock()
        async with self._sessionmaker.begin() as session:
            row = await store.cancel_override(session=session, override_id=int(ident), now=now)
            await service.audit(session=session, actor=actor.ref, action="oncall.clear", target=f"override {ident}",
                                allowed=True, detail={"outcome": "ok" if row else "not found"}, now=now)
        if row is None:
            return CommandReply(f"There is no active override #{ident}.")
        return CommandReply(f"Override #{ident} ({self._roster.person(row.person).name}) is cancelled.")

    def _person_ref(self, text: str) -> str:
        person = find_person(self._roster.people, text)
        if person is not None:
            return ref_of(person)
        text = text.strip()
        mention = text.removeprefix("<@").split("|", 1)[0].rstrip(">") if text.startswith("<@") else None
        if mention:
            return f"slack:{mention}"
        platform, sep, user = text.partition(":")
        if sep and platform.lower() in ("slack", "teams") and user.strip():
            return f"{platform.lower()}:{user.strip()}"
        known = ", ".join(p.name for p in self._roster.people) or "nobody is configured"
        raise ValueError(f"I don't know {text!r}: use a rotation name ({known}), a Slack @mention, or "
                         "slack:<user id> / teams:<user id>")

    # -- page actions by ticket -------------------------------------------------------------------

    async def _act(self, actor: Actor, action: str, args: str, *, command: str) -> CommandReply:
        words = args.split()
        if not words:
            return CommandReply(f"Usage: `/handoff {'ack' if action == 'acknowledge' else action} IT-1042`.")
        if action == "resolve" and len(words) > 1 and words[1].lower().replace("_", "-") in ("not-critical", "false"):
            action = "not_critical"
        async with self._sessionmaker() as session:
            ticket = await service.get_ticket(session=session, key_or_id=words[0])
            incident = None if ticket is None or ticket.incident_id is None else await store.get_incident(
                session=session, incident_id=ticket.incident_id)
            refusal = await self._oncall_only(session, actor, incident.detail if incident else {})
        if refusal is not None:
            await self._refused(actor, command, args)
            return refusal
        if ticket is None:
            return CommandReply(f"There is no ticket {words[0]!r} (ticket ids look like IT-1042).")
        if incident is None:
            return CommandReply(f"{ticket.key} did not page anyone: there is no page to {action}.")
        outcome = await self._actions.act(actor=actor, action=action, incident_id=incident.id,
                                          event_id=f"command:{action}:{ticket.key}")
        return CommandReply(("" if outcome.ok else ":warning: ") + outcome.text, ticket=ticket.key)

    async def incidents(self, actor: Actor, args: str) -> CommandReply:
        tz = self._roster.timezone
        async with self._sessionmaker() as session:
            refusal = await self._oncall_only(session, actor, {})
            rows = [] if refusal is not None else await store.list_open_incidents(session=session)
        if refusal is not None:
            await self._refused(actor, "incidents", args)
            return refusal
        if not rows:
            return CommandReply("No open incidents.")
        lines = ["*Open incidents*"]
        for i in rows:
            first = i.detail.get("ticket", "")
            if i.pager == "held":
                state = f"HELD by the page cap: nobody was paged; `/handoff escalate {first}` pages it now"
            elif unstaffed(i):
                state = f"{i.status}, NOBODY on call: the in-house IT channel and the admins were alerted"
            else:
                state = f"{i.status}, paged via {PAGER_NAMES.get(i.pager, i.pager)}"
            if i.status == "acknowledged":
                state += f", acknowledged by {i.detail.get('acknowledged_by_name') or i.acknowledged_by}"
            lines.append(f"• #{i.id} {first} `{i.rule_id}` ({describe_key(i.group_key)}): {i.reports} report(s), "
                         f"since {when(i.created_at, tz)}, last {when(i.last_report_at, tz)}; {state}. "
                         f"_{i.summary[:120]}_")
        return CommandReply("\n".join(lines))

    # -- access -----------------------------------------------------------------------------------

    async def _oncall_only(self, session: AsyncSession, actor: Actor, detail: dict[str, Any]) -> CommandReply | None:
        """None when ``actor`` may act on pages (on-call people and admins), else the refusal."""
        if await may_act_on_pages(session=session, roster=self._roster, access=self._access, actor=actor,
                                  detail=detail, at=self._clock()):
            return None
        return CommandReply(f":no_entry: {ONCALL_ONLY}")

    async def _refused(self, actor: Actor, action: str, args: str) -> None:
        """Audit a page command refused by :meth:`_oncall_only`, as admin refusals are."""
        await self._audit(actor, action, "", False, {"command": audit_text(args, 500), "outcome": "refused",
                                                     "reason": "not on call (rotation, override, paged) and not an "
                                                               "admin"})

    async def _admin(self, actor: Actor, action: str, args: str) -> CommandReply | None:
        decision = await admin_or_audited_refusal(self._access, actor=actor, action=action, command=args,
                                                  sessionmaker=self._sessionmaker, clock=self._clock)
        if decision.allowed:
            return None
        return CommandReply(f":no_entry: Only admins may `{action.replace('.', ' ')}`. "
                            f"{self._access.how_to_become(actor.platform)}")

    async def _audit(self, actor: Actor, action: str, target: str, allowed: bool, detail: dict[str, Any]) -> None:
        async with self._sessionmaker.begin() as session:
            await service.audit(session=session, actor=actor.ref, action=action, target=target[:255], allowed=allowed,
                                detail=detail, now=self._clock())


def _split_override(args: str) -> tuple[str, str, str]:
    """``<person> --until <when> [--from <when>]`` -> (person, until, from)."""
    head, *options = args.replace("—", "--").split("--")
    values: dict[str, str] = {}
    for option in options:
        name, _, value = option.strip().partition(" ")
        if name.lower() not in ("until", "from"):
            raise ValueError(f"unknown option --{name}; use --until and --from")
        values[name.lower()] = value.strip()
    if not head.strip():
        raise ValueError("say who: a rotation name, a Slack @mention or slack:<user id>")
    if not values.get("until"):
        raise ValueError("say until when with --until")
    return head.strip(), values["until"], values.get("from", "")
