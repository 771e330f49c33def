"""The core every entry point runs on: database, rules, intake, worker and commands, wired from settings.

:func:`open_core` migrates and opens the database, loads the rules and builds the use cases; the HTTP
server (:mod:`bot.app`), ``handoff chat``, ``handoff worker`` and the benchmarks all start from it, so
each runs the same code paths as a replica.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import paging_setup
from bot.config import Settings, extra_admins
from bot.connectors.teams import BotTokenProvider
from bot.connectors_setup import build_connectors
from bot.directory import (
    GRAPH_SCOPE,
    GraphGroupDirectory,
    PlatformDirectory,
    SlackGroupDirectory,
)
from bot.metrics import Metrics
from handlers.admin_rules import RulesAdmin, RulesAdminOptions
from handlers.commands import CommandRouter
from handlers.delivery import OutboxWorker, RetryPolicy
from handlers.incidents import IncidentActions
from handlers.intake import Intake
from handlers.oncall import OncallCommands
from handlers.paging import ESCALATE_KIND
from handlers.paging_escalation import Escalation
from handlers.paging_storm import StormControl
from handlers.ports import GroupDirectory, PageActions, ThreadComments
from handlers.report import Report
from handlers.rules_access import AdminAccess, AdminPolicy
from handlers.rules_state import ActiveRules
from handlers.sla import SLA_KIND, SlaOptions, SlaWatchdog
from handlers.tickets import TicketOptions, Tickets
from storage import db

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _admin_access(settings: Settings, http: aiohttp.ClientSession) -> AdminAccess:
    """Who is an admin: admins from app.yaml and HANDOFF_ADMINS, Slack user groups via the Web API,
    Teams groups via Microsoft Graph (app-only token of the Teams bot's app registration)."""
    admins, ra, teams = settings.admins, settings.rules_admin, settings.teams
    directories: dict[str, GroupDirectory] = {}
    if settings.slack.bot_token is not None:
        directories["slack"] = SlackGroupDirectory(session=http, token=settings.slack.bot_token,
                                                   base_url=settings.slack.api_url, ttl=ra.group_cache_seconds)
    graph_token_url = teams.graph_token_url
    if teams.app_id and teams.app_password is not None and graph_token_url is not None:
        graph_tokens = BotTokenProvider(session=http, app_id=teams.app_id, app_password=teams.app_password,
                                        token_url=graph_token_url, scope=GRAPH_SCOPE, timeout=teams.timeout_seconds)
        directories["teams"] = GraphGroupDirectory(session=http, tokens=graph_tokens, base_url=teams.graph_url,
                                                   ttl=ra.group_cache_seconds, timeout=teams.timeout_seconds)
    policy = AdminPolicy.build(slack=admins.slack, teams=admins.teams, slack_groups=admins.slack_groups,
                               teams_groups=admins.teams_groups, env_admins=extra_admins())
    return AdminAccess(policy=policy, directory=PlatformDirectory(directories))


def rules_admin(settings: Settings, *, sessionmaker: async_sessionmaker[AsyncSession], rules: ActiveRules,
                http: aiohttp.ClientSession, clock: Clock, access: AdminAccess | None = None) -> RulesAdmin:
    """The ``rules`` command; ``access`` (default: :func:`_admin_access`) decides who may change rules."""
    ra = settings.rules_admin
    return RulesAdmin(sessionmaker=sessionmaker, rules=rules, clock=clock, access=access or _admin_access(settings, http),
                      options=RulesAdminOptions(replay_days=ra.replay_days, replay_budget_seconds=ra.replay_budget_seconds))


@dataclass
class Core:
    """What every entry point (HTTP server, terminal chat) runs on."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    rules: ActiveRules
    http: aiohttp.ClientSession
    worker: OutboxWorker
    intake: Intake
    commands: CommandRouter
    #: On-call buttons (Slack block actions, Teams card actions) act through this; None: not wired.
    page_actions: PageActions | None = None
    #: Messages in a ticket's thread become comments through this; None: they open new tickets.
    threads: ThreadComments | None = None


@contextlib.asynccontextmanager
async def open_core(settings: Settings, *, clock: Clock, metrics: Metrics | None = None,
                    load_rules: bool = True) -> AsyncIterator[Core]:
    """Migrate and open the database, load the rules, build the worker and the intake.

    ``load_rules=False`` (``handoff worker``): the rules are neither imported from ``app.yaml`` nor
    compiled, since a worker classifies nothing (the ``serve`` processes import them); it saves the
    process the compiled rule set's memory. Its intake and commands must then not be used: they
    raise "rules not loaded".
    """
    url = settings.database_url
    await db.upgrade(url)
    engine = db.make_engine(url, pool_size=settings.database.pool_size)
    # The worker's own records (claims, delivered marks) on connections that skip the WAL-flush wait;
    # on SQLite one engine serves all (one writer at a time either way).
    books = None if engine.dialect.name == "sqlite" else db.make_engine(url, pool_size=4, bookkeeping=True)
    try:
        sessionmaker = db.make_sessionmaker(engine)
        rules = ActiveRules(sessionmaker=sessionmaker, clock=clock)
        if load_rules:
            await rules.sync_from_file(settings.routing)
        async with aiohttp.ClientSession() as http:
            d = settings.delivery
            paging = paging_setup.paging_options(settings)
            escalation = Escalation(sessionmaker=sessionmaker, roster=paging_setup.roster(settings), options=paging,
                                    clock=clock, on_commit=lambda: worker.wake())
            worker = OutboxWorker(
                sessionmaker=sessionmaker,
                bookkeeping=db.make_sessionmaker(books) if books is not None else None,
                connectors={**build_connectors(settings, http, sessionmaker=sessionmaker),
                            SLA_KIND: SlaWatchdog(sessionmaker=sessionmaker, clock=clock, options=SlaOptions(
                                first_response_hours=settings.sla.msp_first_response_hours)),
                            ESCALATE_KIND: escalation},
                clock=clock,
                policy=RetryPolicy(base=d.backoff_base_seconds, cap=d.backoff_cap_seconds, max_attempts=d.max_attempts),
                worker_id=f"{socket.gethostname()}:{os.getpid()}",
                batch=d.batch,
                lease_seconds=d.lease_seconds,
                poll_interval=d.poll_interval_seconds,
                concurrency=d.concurrency,
                metrics=metrics,
            )
            intake = Intake(
                sessionmaker=sessionmaker, rules=rules, clock=clock, on_commit=worker.wake,
                options=paging_setup.intake_options(settings),
                storm=StormControl(options=paging, escalation=escalation),
                writers=_intake_writers(settings, engine.dialect.name),
            )
            commands = CommandRouter(intake=intake)
            access = _admin_access(settings, http)
            commands.register(rules_admin(settings, sessionmaker=sessionmaker, rules=rules, http=http, clock=clock,
                                           access=access).command())
            ticket_life = Tickets(sessionmaker=sessionmaker, clock=clock, access=access, on_commit=worker.wake,
                                  options=TicketOptions(max_comment_chars=settings.server.max_message_chars),
                                  critical=intake.is_critical, sla_due=intake.sla_due_from)
            for command in ticket_life.commands():
                commands.register(command)
            commands.register(Report(sessionmaker=sessionmaker, clock=clock, access=access,
                                      sla_hours=settings.sla.msp_first_response_hours).command())
            page_actions = IncidentActions(sessionmaker=sessionmaker, escalation=escalation, clock=clock,
                                           access=access, on_commit=worker.wake)
            for command in OncallCommands(sessionmaker=sessionmaker, roster=escalation.roster, options=paging,
                                          actions=page_actions, access=access, clock=clock).commands():
                commands.register(command)
            yield Core(settings, engine, sessionmaker, rules, http, worker, intake, commands, threads=ticket_life,
                       page_actions=page_actions)
    finally:
        await engine.dispose()
        if books is not None:
            await books.dispose()


def _intake_writers(settings: Settings, dialect: str) -> int:
    """Intake transactions in flight at most (see ``handlers.batching``: more than one only while a
    whole batch waits): as configured, else 1 on SQLite and 4 on PostgreSQL."""
    configured = settings.database.intake_writers
    if configured is not None:
        return min(configured, settings.database.pool_size)
    return 1 if dialect == "sqlite" else min(4, settings.database.pool_size)


def tune_gc() -> None:
    """Process-wide garbage-collector settings for serving (``handoff serve`` calls it at start-up).

    A serving process holds many long-lived objects (bolt, botbuilder, SQLAlchemy, the compiled
    rules); with CPython's default thresholds (700, 10, 10) full collections come every few
    hundred requests and each one traverses all of them: under load those pauses were the p99 ack
    latency (bench/slack_intake.py: 130-146 ms -> 85 ms). ``freeze()`` moves what exists after
    start-up out of the collector's way; a larger first threshold makes young collections rarer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
