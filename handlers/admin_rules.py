"""The ``rules`` command: view, test and (for rule admins) edit, replay, publish and roll back rules.

Registered on :class:`~handlers.commands.CommandRouter` as ``/handoff rules …`` (the same text in
Teams). Edits build a draft per admin (``platform:user id``) based on a published version;
``publish`` saves it as a new immutable version (``source="chat"``, or ``"import"`` for an imported
draft) after the linter and a replay of stored requests; ``rollback`` publishes a copy of an old
version (``source="rollback"``). Every replica follows the newest version (:class:`ActiveRules`).

Every admin subcommand is audited, allowed or refused: who, what, the outcome and, for changes, the
diff. ``help``, ``list``, ``show``, ``test`` and ``history`` are open to everyone and not audited.
The read-only views live in :mod:`handlers.rules_views`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.commands import Actor, Command, CommandReply
from handlers.rules_access import AdminAccess, admin_or_audited_refusal, audit_text
from handlers.rules_diff import undone_by
from handlers.rules_edit import (
    add_rule,
    diff,
    edit_rule,
    move_rule,
    remove_rule,
    set_enabled,
)
from handlers.rules_grammar import CommandError, Parsed, parse, subcommand
from handlers.rules_help import EXAMPLES, ORDER, PUBLIC, USAGE
from handlers.rules_import import load_import, normalise
from handlers.rules_lint import LintReport, lint, render_findings
from handlers.rules_render import error_reply, escape, replay_sections, reply
from handlers.rules_replay import ReplayReport, decisive_changes, replay
from handlers.rules_state import ActiveRules
from handlers.rules_views import Result, RulesViews, live_ruleset, owner_of
from handlers.text_input import redact_to_fit
from routing.rules import content_hash
from storage import rules_admin, service
from storage.models import RulesetVersion


@dataclass(frozen=True, slots=True)
class RulesAdminOptions:
    """Tunables. ``replay_budget_seconds`` keeps a replay inside Slack's 3-second answer window."""

    replay_days: int = 7
    replay_budget_seconds: float | None = 2.5


class RulesAdmin(RulesViews):
    """The ``rules`` use case. Share one instance per process."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        rules: ActiveRules,
        clock: Callable[[], datetime],
        access: AdminAccess,
        options: RulesAdminOptions = RulesAdminOptions(),
    ) -> None:
        super().__init__(sessionmaker=sessionmaker, rules=rules, clock=clock)
        self._access = access
        self._options = options

    def command(self) -> Command:
        examples = tuple(e for name in ORDER for e in EXAMPLES[name][:1] if "\n" not in e)
        return Command("rules", "see, test and (rule admins) change the routing rules",
                       "rules list|show|test|add|edit|rm|move|enable|disable|diff|replay|publish|discard|"
                       "history|rollback|export|import …", self.handle, examples)

    # -- dispatch ---------------------------------------------------------------------------------

    async def handle(self, actor: Actor, text: str) -> CommandReply:
        """``text`` as typed: Slack's escaping is undone once, at the edge (bot.slack_shape.plain_text)."""
        words = text.split(maxsplit=1)
        try:
            sub = subcommand(words[0] if words else "")
        except CommandError as exc:
            return error_reply(exc)
        admin_only = sub not in PUBLIC
        if admin_only:
            decision = await admin_or_audited_refusal(
                self._access, actor=actor, action=f"rules.{sub}", command=text, sessionmaker=self._sessionmaker,
                clock=self._clock, who=_who(actor), limit=1000)
            if not decision.allowed:
                return reply(f":no_entry: Only rule admins may `rules {sub}`. "
                             f"{self._access.how_to_become(actor.platform)} Anyone may `rules list`, `rules show`, "
                             "`rules test` and `rules history`.")
        target = ""
        try:
            parsed = parse(text)
            target = parsed.rule_id or (f"v{parsed.version}" if parsed.version else "")
            result: Result = await getattr(self, "_" + sub)(actor, parsed)
        except CommandError as exc:
            if admin_only:
                await self._audit(actor, sub, target, allowed=True,
                                  detail={"command": audit_text(text), "outcome": "error",
                                          "error": audit_text(exc.message, 2000)})
            return error_reply(exc)
        if admin_only and not result.audited:
            await self._audit(actor, sub, result.target or target, allowed=True,
                              detail={"command": audit_text(text), "outcome": "ok", **result.detail})
        return result.reply

    async def _audit(self, actor: Actor, sub: str, target: str, *, allowed: bool, detail: dict[str, Any]) -> None:
        async with self._sessionmaker.begin() as session:
            await service.audit(session=session, actor=_who(actor), action=f"rules.{sub}", target=target[:255],
                                allowed=allowed, detail=detail, now=self._clock())

    # -- draft edits ------------------------------------------------------------------------------

    async def _add(self, actor: Actor, p: Parsed) -> Result:
        return await self._change(actor, p, lambda c: add_rule(c, p.rule_id or "", p.change, before=p.before,
                                                               after=p.after, usage=USAGE["add"]),
                                  f"added `{p.rule_id}`")

    async def _edit(self, actor: Actor, p: Parsed) -> Result:
        return await self._change(actor, p, lambda c: edit_rule(c, p.rule_id or "", p.change, usage=USAGE["edit"]),
                                  f"changed `{p.rule_id}`")

    async def _rm(self, actor: Actor, p: Parsed) -> Result:
        return await self._change(actor, p, lambda c: remove_rule(c, p.rule_id or "", usage=USAGE["rm"]),
                                  f"removed `{p.rule_id}`")

    async def _move(self, actor: Actor, p: Parsed) -> Result:
        return await self._change(actor, p, lambda c: move_rule(c, p.rule_id or "", before=p.before, after=p.after,
                                                                usage=USAGE["move"]), f"moved `{p.rule_id}`")

    async def _enable(self, actor: Actor, p: Parsed) -> Result:
        return await self._change(actor, p, lambda c: set_enabled(c, p.rule_id or "", True, usage=USAGE["enable"]),
                                  f"enabled `{p.rule_id}`")

    async def _disable(self, actor: Actor, p: Parsed) -> Result:
        return await self._change(actor, p, lambda c: set_enabled(c, p.rule_id or "", False, usage=USAGE["disable"]),
                                  f"disabled `{p.rule_id}`")

    async def _import(self, actor: Actor, p: Parsed) -> Result:
        content = load_import(p.yaml_text, usage=USAGE["import"])  # a failing import stops here: nothing written
        return await self._change(actor, p, lambda _: content, "imported a rule set", replace=True)

    async def _change(self, actor: Actor, p: Parsed, op: Callable[[dict[str, Any]], dict[str, Any]], verb: str,
                      *, replace: bool = False) -> Result:
        """Apply ``op`` to the actor's draft (started from live when there is none) and audit it, atomically."""
        owner = owner_of(actor)
        async with self._sessionmaker.begin() as session:
            # One draft edit at a time, and none while a publish saves: locking the draft row alone
            # lets two first edits (no row yet) both start from live, and the second overwrite the first.
            await service.lock_rulesets(session=session)
            live = await self._latest(session)
            draft = await rules_admin.get_draft(session=session, owner=owner, for_update=True)
            base = dict(live.content) if draft is None or replace else dict(draft.content)
            base_version = live.version if draft is None or replace else draft.base_version
            new = op(base)
            if new == base and not replace:
                raise CommandError(f"nothing changed: the draft already has that ({verb.split(' ', 1)[0]})")
            step = diff(base, new)
            if replace and draft is not None:
                await rules_admin.delete_draft(session=session, owner=owner)
            origin = "import" if replace else (draft.origin if draft is not None else "chat")
            await rules_admin.put_draft(session=session, owner=owner, base_version=base_version, content=new,
                                        origin=origin, now=self._clock())
            await service.audit(session=session, actor=_who(actor), action=f"rules.{p.sub}",
                                target=(p.rule_id or "draft")[:255], allowed=True, now=self._clock(),
                                detail={"command": audit_text(p.raw),
                                        "outcome": "ok", "draft_base": base_version, "diff": _audit_lines(step.lines())})
        versus_live = diff(live.content, new)
        report = lint(new, live_ruleset(live))
        lines = [f":pencil2: Draft: {verb}. Your draft (based on v{base_version}) differs from live v{live.version} "
                 f"in {len(versus_live.rule_ids)} rule(s)."]
        lines += [f"  {escape(line)}" for line in step.lines()[:30]]
        return Result(reply("\n".join(lines), *self._lint_section(report, editing=True),
                            "Next: `/handoff rules test \"…\"` · `rules diff` · `rules replay` · `rules publish`"),
                      audited=True)

    @staticmethod
    def _lint_section(report: LintReport, *, editing: bool) -> list[str]:
        if not report.findings:
            return []
        head = ("*The linter* (publish refuses until the :no_entry: items are fixed):" if editing and report.errors
                else "*The linter:*")
        return [head + "\n" + "\n".join(render_findings(report.findings[:20]))]

    async def _discard(self, actor: Actor, p: Parsed) -> Result:
        async with self._sessionmaker.begin() as session:
            gone = await rules_admin.delete_draft(session=session, owner=owner_of(actor))
        if not gone:
            raise CommandError("you have no draft to discard")
        return Result(reply(":wastebasket: Your draft is gone; the live rules are unchanged."), target="draft")

    # -- replay, publish, rollback ----------------------------------------------------------------

    async def _replay_against(self, live: RulesetVersion, content: dict[str, Any], days: int) -> ReplayReport:
        old, new = live_ruleset(live), live_ruleset(live, content)
        d = diff(live.content, content)
        changed = decisive_changes(d.added, d.removed, d.moved, (i for i, _ in d.changed), old, new)
        return await replay(
            sessionmaker=self._sessionmaker, live=old, draft=new, changed=changed,
            since=self._clock() - timedelta(days=days), days=days, budget_seconds=self._options.replay_budget_seconds,
        )

    async def _replay(self, actor: Actor, p: Parsed) -> Result:
        live, draft = await self._live_and_draft(actor)
        if draft is None:
            raise CommandError("you have no draft to replay; `rules add`, `rules edit` or `rules import` start one")
        days = p.days or self._options.replay_days
        report = await self._replay_against(live, dict(draft.content), days)
        sections, footer = replay_sections(report, p.page, label=f"your draft and live v{live.version}",
                                           command=f"rules replay --days {days}")
        return Result(reply(*sections, footer=footer),
                      detail={"replay": _replay_summary(report)})

    async def _publish(self, actor: Actor, p: Parsed) -> Result:
        live, draft = await self._live_and_draft(actor)
        if draft is None:
            raise CommandError("you have no draft to publish; `rules add`, `rules edit` or `rules import` start one")
        content = normalise(draft.content, usage=USAGE["publish"])
        if content_hash(content) == live.content_hash:
            raise CommandError(f"your draft is the same as the live rules (v{live.version}): nothing to publish; "
                               "`rules discard` drops it")
        report = lint(content, live_ruleset(live))
        if report.errors:
            raise CommandError("publish refused by the linter:\n" + "\n".join(render_findings(report.errors)))
        reasons: list[str] = []
        if draft.base_version != live.version:
            async with self._sessionmaker() as session:
                base = await service.get_ruleset(session=session, version=draft.base_version)
            undone = undone_by(base, live, content)
            if undone:
                reasons.append(f"the live rules moved from v{draft.base_version} to v{live.version} (by "
                               f"{escape(live.author)}) since you started this draft; publishing would undo: "
                               + "; ".join(escape(u) for u in undone[:10]))
        return await self._save(actor, p, live, content, reasons, source="import" if draft.origin == "import" else "chat",
                                note=p.note or "published from chat", drop_draft=True, lint_report=report)

    async def _rollback(self, actor: Actor, p: Parsed) -> Result:
        async with self._sessionmaker() as session:
            live = await self._latest(session)
            old = await service.get_ruleset(session=session, version=p.version or 0)
        if old is None:
            raise CommandError(f"there is no version {p.version}; `rules history` lists them", USAGE["rollback"])
        if old.content_hash == live.content_hash:
            raise CommandError(f"v{p.version} is what is live already (v{live.version})")
        report = lint(old.content, live_ruleset(live))
        blocking = [f for f in report.errors if f.code in ("critical-no-page", "invalid")]
        if blocking:
            raise CommandError(f"rollback to v{p.version} refused:\n" + "\n".join(render_findings(blocking)))
        return await self._save(actor, p, live, dict(old.content), [], source="rollback",
                                note=p.note or f"rollback to v{p.version}", drop_draft=False, lint_report=report)

    async def _save(self, actor: Actor, p: Parsed, live: RulesetVersion, content: dict[str, Any], reasons: list[str],
                    *, source: str, note: str, drop_draft: bool, lint_report: LintReport) -> Result:
        """Replay, require --confirm when paging changes (or for ``reasons``), then save a new version."""
        note = redact_to_fit(note, 500)  # `rules history` shows it to everyone, as it is stored
        days = p.days or self._options.replay_days
        report = await self._replay_against(live, content, days)
        if report.paging_changes:
            reasons.append(f"{report.paging_changes} stored request(s) of the last {days} day(s) would change paging "
                           f"({report.newly_paging_count} newly page, {report.stopped_paging_count} stop paging)")
        if not report.complete:
            reasons.append(f"the replay stopped after {report.replayed:,} of {report.total:,} requests, so the rest "
                           "is unchecked")
        changes = diff(live.content, content)
        if reasons and not p.confirm:
            sections, _ = replay_sections(report, 1, label=f"the new rules and live v{live.version}", per_page=10)
            raise CommandError(f"`rules {p.sub}` needs --confirm: " + "; and ".join(reasons) + ".\n" + "\n".join(sections)
                               + f"\nRun `/handoff rules {p.sub}{' ' + str(p.version) if p.version else ''} --confirm` "
                               "to go ahead.", markdown=True)
        digest = content_hash(content)
        try:
            async with self._sessionmaker.begin() as session:
                await service.lock_rulesets(session=session)  # a concurrent publish is seen below, not raced
                current = await self._latest(session)
                if current.version != live.version:
                    raise CommandError(f"the live rules changed while you were publishing (now v{current.version}); "
                                       "check `rules diff` and try again")
                if drop_draft:  # an edit committed while this publish replayed must not vanish with the draft
                    mine = await rules_admin.get_draft(session=session, owner=owner_of(actor), for_update=True)
                    if mine is None or content_hash(normalise(mine.content, usage=USAGE["publish"])) != digest:
                        raise CommandError("your draft changed while this publish was being checked (another edit "
                                           "of yours arrived): nothing was published. Check `rules diff` and publish "
                                           "again")
                saved = await service.save_ruleset(session=session, content=content, content_hash=digest, source=source,
                                                   author=_who(actor), note=note, now=self._clock())
                if drop_draft:
                    await rules_admin.delete_draft(session=session, owner=owner_of(actor))
                await service.audit(session=session, actor=_who(actor), action=f"rules.{p.sub}",
                                    target=f"v{saved.version}", allowed=True, now=self._clock(),
                                    detail={"outcome": "ok", "from": live.version, "to": saved.version, "source": source,
                                            "note": note, "confirm": p.confirm, "diff": _audit_lines(changes.lines()),
                                            "replay": _replay_summary(report)})
                version = saved.version
        except IntegrityError:
            raise CommandError("someone published at the same moment; check `rules history` and try again") from None
        await self._rules.refresh()
        lines = [f":white_check_mark: Published *v{version}* ({source}; was v{live.version}): every replica uses it "
                 f"within seconds. Undo with `/handoff rules rollback {live.version}`."]
        lines += [f"  {escape(line)}" for line in changes.lines()[:30]]
        lines.append(f"Replay, last {days} day(s): {report.route_changed} request(s) change route, "
                     f"{report.newly_paging_count} newly page, {report.stopped_paging_count} stop paging.")
        return Result(reply("\n".join(lines), *self._lint_section(lint_report, editing=False)), audited=True)


def _replay_summary(r: ReplayReport) -> dict[str, Any]:
    return {"days": r.days, "replayed": r.replayed, "total": r.total, "route_changed": r.route_changed,
            "newly_paging": [x.ticket for x in r.newly_paging[:50]], "stopped_paging": [x.ticket for x in r.stopped_paging[:50]],
            "complete": r.complete}


def _audit_lines(lines: list[str]) -> list[str]:
    """The first 200 lines of a diff for the audit log, secrets redacted (a rule's note is free text)."""
    return [audit_text(line, 2000) for line in lines[:200]]


def _who(actor: Actor) -> str:
    name = f" ({actor.user_name})" if actor.user_name else ""
    return f"{actor.platform}:{actor.user_id}{name}"[:255]




__all__ = ["RulesAdmin", "RulesAdminOptions"]
