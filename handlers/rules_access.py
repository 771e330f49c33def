"""Who may edit the routing rules: admins named in ``app.yaml`` or ``HANDOFF_ADMINS``, or group members.

Group membership comes through the :class:`~handlers.ports.GroupDirectory` port; when the directory
cannot answer, membership is denied (fail closed) and the reason is kept for the audit log.
What a user typed reaches the audit log only through :func:`audit_text` (secrets redacted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.ports import Actor, GroupDirectory, GroupLookupError
from handlers.text_input import clip_point
from routing.redact import redact
from storage import service

log = logging.getLogger(__name__)


def audit_text(text: str, limit: int = 1000) -> str:
    """What a user typed, as the audit log may keep it: secrets redacted first, then clipped to ``limit``.

    A refused command is often a pasted message ("… my password is …"); the audit log is a table like
    any other, so nothing secret is written to it.
    """
    clean = redact(text).text
    if len(clean) <= limit:
        return clean
    return clean[:clip_point(clean, limit)] + f"… ({len(clean)} characters)"  # never half a placeholder


@dataclass(frozen=True, slots=True)
class AdminPolicy:
    """Admins per platform.

    Attributes:
        users: platform -> user ids (``admins.slack``, ``admins.teams``).
        groups: platform -> group names or ids (``admins.slack_groups``, ``admins.teams_groups``).
        anywhere: ids from ``HANDOFF_ADMINS``; ``platform:id`` limits one to a platform.
    """

    users: Mapping[str, frozenset[str]] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    anywhere: frozenset[str] = frozenset()

    @classmethod
    def build(cls, *, slack: Iterable[str] = (), teams: Iterable[str] = (), slack_groups: Iterable[str] = (),
              teams_groups: Iterable[str] = (), env_admins: Iterable[str] = ()) -> AdminPolicy:
        return cls(
            users={"slack": frozenset(slack), "teams": frozenset(teams)},
            groups={"slack": tuple(slack_groups), "teams": tuple(teams_groups)},
            anywhere=frozenset(a.strip() for a in env_admins if a.strip()),
        )


@dataclass(frozen=True, slots=True)
class AccessDecision:
    allowed: bool
    reason: str


class AdminAccess:
    """Decides whether an actor (platform, user id) is a rule admin."""

    def __init__(self, *, policy: AdminPolicy, directory: GroupDirectory | None = None) -> None:
        self._policy = policy
        self._directory = directory

    async def check(self, platform: str, user_id: str) -> AccessDecision:
        p = self._policy
        if not user_id:
            return AccessDecision(False, "no user id")
        if user_id in p.users.get(platform, frozenset()):
            return AccessDecision(True, f"listed in admins.{platform}")
        if user_id in p.anywhere or f"{platform}:{user_id}" in p.anywhere:
            return AccessDecision(True, "listed in HANDOFF_ADMINS")
        problems: list[str] = []
        for group in p.groups.get(platform, ()):
            if self._directory is None:
                problems.append(f"group {group}: no group directory for {platform}")
                continue
            try:
                members = await self._directory.members(platform=platform, group=group)
            except GroupLookupError as exc:
                log.warning("admin group %s on %s could not be read: %s", group, platform, exc)
                problems.append(f"group {group}: {exc}")
                continue
            if user_id in members:
                return AccessDecision(True, f"member of {platform} group {group}")
        why = "not a rule admin"
        if problems:
            why += " (could not check " + "; ".join(problems) + ")"
        return AccessDecision(False, why)

    def how_to_become(self, platform: str) -> str:
        if platform not in ("slack", "teams"):  # `handoff chat` (console): there is no app.yaml list for it
            return "Rule admins of this terminal are the user ids in HANDOFF_ADMINS (e.g. HANDOFF_ADMINS=console-user)."
        groups = self._policy.groups.get(platform, ())
        extra = f" or a member of {', '.join(groups)}" if groups else ""
        return (f"Rule admins are the {platform} users listed under `admins.{platform}` in app.yaml or in "
                f"HANDOFF_ADMINS{extra}.")


async def admin_or_audited_refusal(
    access: AdminAccess | None, *, actor: Actor, action: str, command: str,
    sessionmaker: async_sessionmaker[AsyncSession], clock: Callable[[], datetime],
    who: str | None = None, limit: int = 500,
) -> AccessDecision:
    """Whether ``actor`` may run an admin command; a refusal is audited before it is answered.

    Every admin command refuses the same way: an audit entry (``allowed=False``, what was typed,
    redacted and clipped to ``limit``, and why) in its own transaction. ``who`` is the actor as the
    caller's other audit entries name it (default ``platform:user id``). No access configured:
    refused.
    """
    decision = (await access.check(actor.platform, actor.user_id) if access is not None
                else AccessDecision(False, "no admin access configured"))
    if not decision.allowed:
        async with sessionmaker.begin() as session:
            await service.audit(session=session, actor=(who or actor.ref)[:255], action=action, target="",
                                allowed=False, now=clock(),
                                detail={"command": audit_text(command, limit), "outcome": "refused",
                                        "reason": decision.reason})
    return decision
