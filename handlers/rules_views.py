"""The read-only side of ``rules``: list, show, test, history, export, diff and help.

``list``, ``show``, ``test``, ``history`` and ``help`` are open to everyone; ``diff`` and ``export``
are for rule admins (the caller, :class:`handlers.admin_rules.RulesAdmin`, checks).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.commands import Actor, CommandReply
from handlers.rules_edit import diff, evaluation_order
from handlers.rules_grammar import CommandError, Parsed
from handlers.rules_help import USAGE, help_text
from handlers.rules_lint import lint, render_findings
from handlers.rules_render import decision_line, escape, export_pages, history_line, paged, reply, routing_yaml, rule_line, rule_yaml
from handlers.rules_state import ActiveRules
from routing.engine import Classifier, classify_safely, compile_ruleset
from routing.model import Message, RuleSet
from routing.redact import redact
from routing.rules import content_hash, ruleset_from_dict
from storage import rules_admin, service
from storage.models import RuleDraft, RulesetVersion

HISTORY_PAGE = 10
LIST_PAGE = 30
DIFF_PAGE = 30


@dataclass(frozen=True, slots=True)
class Result:
    """A subcommand's answer, and what the audit entry should say (unless it ``audited`` itself)."""

    reply: CommandReply
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    audited: bool = False


def owner_of(actor: Actor) -> str:
    """The draft owner key of an actor: ``platform:user id``."""
    return f"{actor.platform}:{actor.user_id}"


def live_ruleset(row: RulesetVersion, content: Mapping[str, Any] | None = None) -> RuleSet:
    """The rule set of a stored version (or ``content`` labelled with its version + 1, for a draft)."""
    if content is None:
        return ruleset_from_dict(row.content, version=row.version)
    return ruleset_from_dict(content, version=row.version + 1)


class RulesViews:
    """Read-only subcommands and the helpers the editing side shares."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], rules: ActiveRules,
                 clock: Callable[[], datetime]) -> None:
        self._sessionmaker = sessionmaker
        self._rules = rules
        self._clock = clock
        self._compiled: OrderedDict[tuple[str, int], Classifier] = OrderedDict()

    async def _latest(self, session: AsyncSession) -> RulesetVersion:
        """The live version: the newest stored one this release can use (see :class:`ActiveRules`)."""
        live = await self._rules.live(session)
        if live is None:
            raise CommandError("no rule set is stored yet; start the service once so app.yaml is imported")
        return live

    async def _live_and_draft(self, actor: Actor) -> tuple[RulesetVersion, RuleDraft | None]:
        async with self._sessionmaker() as session:
            live = await self._latest(session)
            draft = await rules_admin.get_draft(session=session, owner=owner_of(actor))
        return live, draft

    def _classifier(self, content: Mapping[str, Any], version: int) -> Classifier:
        key = (content_hash(content), version)
        found = self._compiled.get(key)
        if found is None:
            found = compile_ruleset(ruleset_from_dict(content, version=version))
            self._compiled[key] = found
            while len(self._compiled) > 8:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(key)
        return found

    async def _content(self, actor: Actor, p: Parsed) -> tuple[str, dict[str, Any]]:
        """(label, content) of what ``--draft`` / ``--version N`` / nothing names."""
        live, draft = await self._live_and_draft(actor)
        if p.draft:
            if draft is None:
                raise CommandError("you have no draft; the live rules are v" + str(live.version))
            return f"your draft (based on v{draft.base_version})", dict(draft.content)
        if p.version is not None:
            async with self._sessionmaker() as session:
                row = await service.get_ruleset(session=session, version=p.version)
            if row is None:
                raise CommandError(f"there is no version {p.version}; `rules history` lists them")
            return f"v{row.version}" + (" (live)" if row.version == live.version else ""), dict(row.content)
        return f"live v{live.version}", dict(live.content)

    # -- open to everyone -------------------------------------------------------------------------

    async def _help(self, actor: Actor, p: Parsed) -> Result:
        return Result(reply(help_text(p.topic)))

    async def _list(self, actor: Actor, p: Parsed) -> Result:
        label, content = await self._content(actor, p)
        rs = ruleset_from_dict(content)
        by_id = {r.id: r for r in rs.rules}
        lines = [rule_line(n, by_id[i]) for n, i in enumerate(evaluation_order(rs), 1)]
        lines += [rule_line(None, r) for r in rs.rules if not r.enabled]
        shown, footer = paged(lines, p.page, LIST_PAGE, "rules list" + (" --draft" if p.draft else ""))
        head = (f"*Rules, {label}*, in evaluation order: page rules first, then the rest; the first match wins "
                "(`continue` goes on). `/handoff rules show ID` for one rule.")
        if any(r.active or r.mute for r in rs.rules):
            head += f" Time windows are in {rs.timezone}."
        return Result(reply(head, "\n".join(shown), footer=footer))

    async def _show(self, actor: Actor, p: Parsed) -> Result:
        live, draft = await self._live_and_draft(actor)
        sources = [("your draft", dict(draft.content))] if p.draft and draft else [(f"live v{live.version}", dict(live.content))]
        if p.draft and draft is None:
            raise CommandError("you have no draft")
        if not p.draft and draft is not None:
            sources.append((f"your draft (based on v{draft.base_version})", dict(draft.content)))
        sections: list[str] = []
        seen: dict[str, Any] | None = None
        for label, content in sources:
            rule = next((r for r in content["rules"] if r["id"] == p.rule_id), None)
            if rule is None:
                sections.append(f"*{label}*: no rule `{p.rule_id}`")
                continue
            if seen == rule:
                sections.append(f"*{label}*: the same")
                continue
            seen = rule
            rs = ruleset_from_dict(content)
            order = evaluation_order(rs)
            where = (f"evaluated #{order.index(rule['id']) + 1} of {len(order)}" if rule["id"] in order
                     else "disabled: never evaluated")
            last = " (the default: takes whatever no other rule takes)" if content["rules"][-1]["id"] == p.rule_id else ""
            if rule.get("active") or rule.get("mute"):
                last += f"; time windows in {rs.timezone}"
            sections.append(f"*`{p.rule_id}`, {label}*: {where}{last}\n{rule_yaml(rule)}")
        if all(s.endswith(f"no rule `{p.rule_id}`") for s in sections):
            raise CommandError(f"there is no rule `{p.rule_id}`; `rules list` shows them", USAGE["show"])
        return Result(reply(*sections))

    async def _test(self, actor: Actor, p: Parsed) -> Result:
        redaction = redact(p.text)
        at = p.at or self._clock()  # rules with time windows are tested at that moment
        msg = Message(text=redaction.text, platform=p.platform or actor.platform, user_id=p.as_user or actor.user_id,
                      channel_id=p.channel or actor.channel_id, user_groups=frozenset(p.groups) or actor.groups,
                      channel_type="command", at=at)
        if p.at is not None:
            async with self._sessionmaker() as session:
                row = await rules_admin.ruleset_at(session=session, at=p.at)
            if row is None:
                raise CommandError(f"no rules were live at {p.at.isoformat()}; the first version is newer")
            live = self._classifier(row.content, row.version)
            label = f"v{row.version}, live at {p.at.strftime('%Y-%m-%d %H:%M UTC')}"
        else:
            await self._rules.refresh()
            live = self._rules.classifier
            label = f"live v{live.version}"
        d_live = classify_safely(live, msg)
        sections = [decision_line(label, d_live)]
        async with self._sessionmaker() as session:
            draft = await rules_admin.get_draft(session=session, owner=owner_of(actor))
        if draft is not None:
            d_draft = classify_safely(self._classifier(draft.content, 0), msg)
            same = (d_draft.route, d_draft.rule_id) == (d_live.route, d_live.rule_id)
            tag = "the same" if same else "DIFFERENT :arrow_left:"
            sections.append(decision_line(f"your draft (based on v{draft.base_version}), {tag}", d_draft))
        context = f"As {msg.user_id or '?'} on {msg.platform}" + (f" in {msg.channel_id}" if msg.channel_id else "")
        context += f" at {at.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC"
        if redaction.kinds:
            context += f"; secrets removed first, as intake does ({', '.join(redaction.kinds)})"
        return Result(reply(*sections, footer=context))

    async def _history(self, actor: Actor, p: Parsed) -> Result:
        async with self._sessionmaker() as session:
            live = await self._latest(session)
            total = await rules_admin.count_versions(session=session)
            pages = max(1, -(-total // HISTORY_PAGE))
            page = min(max(p.page, 1), pages)
            rows = await rules_admin.version_page(session=session, offset=(page - 1) * HISTORY_PAGE, limit=HISTORY_PAGE)
        lines = [history_line(r, live.version) for r in rows]
        footer = None
        if pages > 1:
            nxt = f" · next: `/handoff rules history --page {page + 1}`" if page < pages else ""
            footer = f"Page {page} of {pages} ({total} versions){nxt}"
        head = (f"*Rule versions*, newest first ({total}). `rules export --version N` shows one; "
                "`rules rollback N` publishes a copy of it.")
        return Result(reply(head, "\n".join(lines), footer=footer))

    # -- rule admins ------------------------------------------------------------------------------

    async def _export(self, actor: Actor, p: Parsed) -> Result:
        label, content = await self._content(actor, p)
        command = "rules export" + (" --draft" if p.draft else f" --version {p.version}" if p.version else "")
        body, footer = export_pages(routing_yaml(content), p.page, command)
        head = f"*{label}* as YAML (the `routing:` section of app.yaml; `rules import` takes it back):"
        return Result(reply(head, body, footer=footer), detail={"exported": label})

    async def _diff(self, actor: Actor, p: Parsed) -> Result:
        live, draft = await self._live_and_draft(actor)
        if draft is None:
            return Result(reply(f"You have no draft; the live rules are v{live.version}. `rules add`, `rules edit` "
                                "or `rules import` start one."))
        changes = diff(live.content, draft.content)
        lines = [escape(line) for line in changes.lines()] or ["(no differences: your draft equals the live rules)"]
        shown, footer = paged(lines, p.page, DIFF_PAGE, "rules diff")
        head = f"*Your draft* (based on v{draft.base_version}) against *live v{live.version}*:"
        if draft.base_version != live.version:
            head += (f"\n:warning: The live rules moved from v{draft.base_version} to v{live.version} since you started; "
                     "publish will say what your draft would undo.")
        report = lint(draft.content, live_ruleset(live))
        sections = [head, "\n".join(shown)]
        if report.findings:
            sections.append("*The linter:*\n" + "\n".join(render_findings(report.findings[:20])))
        return Result(reply(*sections, footer=footer), detail={"diff": changes.lines()[:200]})
