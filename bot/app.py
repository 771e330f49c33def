"""The composition root: an aiohttp application wired from :class:`Settings`.

Resources are opened in ``cleanup_ctx`` (database, HTTP client, services) and shared under
``web.AppKey`` constants, so a test builds a real app on port 0 and a replica is just another
process with the same settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import paging_setup
from bot.config import Settings, extra_admins, teams_mode
from bot.connectors import SlackWebConnector
from bot.connectors.teams import BotTokenProvider
from bot.connectors_setup import build_connectors, slack_response_prefixes
from bot.directory import (
    GRAPH_SCOPE,
    GraphGroupDirectory,
    PlatformDirectory,
    SlackGroupDirectory,
)
from bot.logs import request_id_middleware
from bot.metrics import Metrics
from bot.msp_callback import MspCallback
from bot.slack import SlackEdge
from handlers.admin_rules import RulesAdmin, RulesAdminOptions
from handlers.commands import CommandRouter
from handlers.delivery import OutboxWorker, RetryPolicy
from handlers.housekeeping import Housekeeper
from handlers.incidents import IncidentActions
from handlers.intake import Intake, IntakeOptions
from handlers.msp_updates import MspUpdates
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
from storage import db, service

if TYPE_CHECKING:
    from bot.teams import TeamsEdge

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
METRICS = web.AppKey("metrics", Metrics)
SLACK = web.AppKey("slack", SlackEdge)
READY = web.AppKey("ready", dict)
TEAMS: web.AppKey[TeamsEdge] = web.AppKey("teams")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _teams_edge(settings: Settings, core: Core, metrics: Metrics, clock: Clock) -> TeamsEdge | None:
    """The Teams edge, or None when Teams is not configured (botbuilder is only imported if it is)."""
    mode = teams_mode(settings)
    if mode == "disabled":
        return None
    from bot.teams import HandoffTeamsBot, TeamsEdge
    from bot.teams_auth import SigningKeys, TokenValidator

    teams = settings.teams
    validator = None
    if mode == "validate" and teams.app_id:
        keys = SigningKeys(session=core.http, metadata_url=teams.openid_url, timeout=teams.timeout_seconds)
        validator = TokenValidator(app_id=teams.app_id, keys=keys, leeway=teams.clock_skew_seconds)
    else:
        log.warning("!" * 78)
        log.warning("TEAMS TOKENS ARE NOT VALIDATED (HANDOFF_TEAMS_AUTH=off): anyone who can reach "
                    "%s:%s can post as any Teams user. Local testing only.", settings.server.host, settings.server.port)
        log.warning("!" * 78)
    bot = HandoffTeamsBot(intake=core.intake, commands=core.commands, sessionmaker=core.sessionmaker, clock=clock,
                          metrics=metrics, on_commit=core.worker.wake, page_actions=core.page_actions,
                          threads=core.threads)
    return TeamsEdge(bot=bot, validator=validator, metrics=metrics)


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


def _rules_admin(settings: Settings, *, sessionmaker: async_sessionmaker[AsyncSession], rules: ActiveRules,
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


CORE = web.AppKey("core", Core)


@contextlib.asynccontextmanager
async def open_core(settings: Settings, *, clock: Clock, metrics: Metrics | None = None) -> AsyncIterator[Core]:
    """Migrate and open the database, load the rules, build the worker and the intake."""
    url = settings.database_url
    await db.upgrade(url)
    engine = db.make_engine(url, pool_size=settings.database.pool_size)
    # The worker's own records (claims, delivered marks) on connections that skip the WAL-flush wait;
    # on SQLite one engine serves all (one writer at a time either way).
    books = None if engine.dialect.name == "sqlite" else db.make_engine(url, pool_size=4, bookkeeping=True)
    try:
        sessionmaker = db.make_sessionmaker(engine)
        rules = ActiveRules(sessionmaker=sessionmaker, clock=clock)
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
                options=IntakeOptions(
                    max_message_chars=settings.server.max_message_chars,
                    internal_channel=settings.internal.slack_channel,
                    pager_source=settings.pagerduty.source,
                    calendar=paging_setup.business_calendar(settings),
                    sla_first_response=paging_setup.sla_first_response(settings),
                ),
                storm=StormControl(options=paging, escalation=escalation),
                writers=_intake_writers(settings, engine.dialect.name),
            )
            commands = CommandRouter(intake=intake)
            access = _admin_access(settings, http)
            commands.register(_rules_admin(settings, sessionmaker=sessionmaker, rules=rules, http=http, clock=clock,
                                           access=access).command())
            ticket_life = Tickets(sessionmaker=sessionmaker, clock=clock, access=access, on_commit=worker.wake,
                                  options=TicketOptions(max_comment_chars=settings.server.max_message_chars))
            for command in ticket_life.commands():
                commands.register(command)
            commands.register(Report(sessionmaker=sessionmaker, clock=clock, access=access,
                                      sla_hours=settings.sla.msp_first_response_hours).command())
            page_actions = IncidentActions(sessionmaker=sessionmaker, escalation=escalation, clock=clock,
                                           on_commit=worker.wake)
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
    """Intake transactions in flight at once: as configured, else 1 on SQLite and 4 on PostgreSQL."""
    configured = settings.database.intake_writers
    if configured is not None:
        return min(configured, settings.database.pool_size)
    return 1 if dialect == "sqlite" else min(4, settings.database.pool_size)


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings, metrics = app[SETTINGS], app[METRICS]
    async with open_core(settings, clock=app[CLOCK], metrics=metrics) as core:
        app[CORE] = core
        slack = settings.slack
        socket_mode: Any = None
        if slack.signing_secret is not None and slack.bot_token is not None:
            edge = SlackEdge(
                signing_secret=slack.signing_secret.get_secret_value(), bot_token=slack.bot_token.get_secret_value(),
                api_url=slack.api_url, intake=core.intake, commands=core.commands, metrics=metrics,
                max_age_seconds=slack.request_max_age_seconds, page_actions=core.page_actions, threads=core.threads,
                responder=SlackWebConnector(session=core.http, token=slack.bot_token, base_url=slack.api_url,
                                            response_url_prefixes=slack_response_prefixes(slack.api_url), timeout=5),
            )
            app[SLACK] = edge
            if slack.app_token is not None:
                from slack_bolt.adapter.socket_mode.async_handler import (
                    AsyncSocketModeHandler,
                )

                socket_mode = AsyncSocketModeHandler(edge.app, slack.app_token.get_secret_value())
                await socket_mode.connect_async()
                log.info("Slack Socket Mode connected")
        teams_edge = _teams_edge(settings, core, metrics, app[CLOCK])
        if teams_edge is not None:
            app[TEAMS] = teams_edge

        _banner(settings, core, slack_ready=SLACK in app, socket_mode=socket_mode is not None)
        log.info("Teams: %s", "POST /api/messages" if teams_edge is not None
                 else "not configured (set TEAMS_APP_ID and TEAMS_APP_PASSWORD)")
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(core.rules.watch(stop, interval=settings.rules_admin.watch_interval_seconds),
                                name="rules-watch"),
            asyncio.create_task(Housekeeper(
                sessionmaker=core.sessionmaker, clock=app[CLOCK],
                retention=timedelta(days=settings.database.inbound_retention_days)).run(stop), name="housekeeping"),
        ]
        if settings.delivery.worker == "in-process":
            tasks.append(asyncio.create_task(core.worker.run(stop), name="outbox-worker"))
            app[READY]["worker"] = tasks[-1]
        else:  # a `handoff worker` process delivers; this one only writes the rows
            app[READY]["worker"] = "separate"
            log.info("outbox worker: separate (delivery.worker: separate / --no-worker): run `handoff worker`")
        try:
            yield
        finally:
            stop.set()
            if socket_mode is not None:
                await socket_mode.close_async()
            if teams_edge is not None:
                await teams_edge.close()
            if SLACK in app:
                await app[SLACK].close()
            for task in tasks:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=5)


def _banner(settings: Settings, core: Core, *, slack_ready: bool, socket_mode: bool) -> None:
    """Say at start-up what is connected and what is only recorded locally."""
    def where(configured: bool, env: str) -> str:
        return "connected" if configured else f"recorded locally (set {env})"

    log.info("Slack: %s", ("Socket Mode" if socket_mode else "POST /slack/events") if slack_ready
             else "not configured (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN); try `handoff chat`")
    log.info("MSP: %s", where(bool(settings.msp.url), "HANDOFF_MSP_URL"))
    pager = settings.pager
    if pager == "chat":
        people = len(settings.oncall.rotation.people)
        log.info("Pager: in chat (%s%s); for PagerDuty set PAGERDUTY_ROUTING_KEY, for Opsgenie OPSGENIE_API_KEY",
                 f"{people} people in the rotation" if people
                 else "nobody in the rotation (oncall.rotation): pages go to the in-house channel and the admins",
                 ", on-call channel set" if settings.oncall.slack_channel or settings.oncall.teams_channel else "")
    else:
        log.info("Pager: %s (connected; it decides who is on call)", "PagerDuty" if pager == "pagerduty" else "Opsgenie")


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Turn a database outage into 503 (callers retry); anything else unexpected is logged."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (TimeoutError, OperationalError, DBAPIError, OSError) as exc:
        log.error("%s %s: unavailable (%s)", request.method, request.path, type(exc).__name__)
        return web.json_response({"ok": False, "error": "temporarily unavailable"}, status=503,
                                 headers={"Retry-After": "1"})


async def slack_events(request: web.Request) -> web.Response:
    edge = request.app.get(SLACK)
    if edge is None:
        return web.json_response(
            {"ok": False, "error": "Slack is not configured: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"},
            status=404,
        )
    with request.app[METRICS].intake_latency.labels(platform="slack").time():
        return await edge.handle(request)


async def teams_messages(request: web.Request) -> web.Response:
    edge = request.app.get(TEAMS)
    if edge is None:
        return web.json_response(
            {"ok": False, "error": "Teams is not configured: set TEAMS_APP_ID and TEAMS_APP_PASSWORD"}, status=404
        )
    with request.app[METRICS].intake_latency.labels(platform="teams").time():
        return await edge.handle(request)


async def msp_callback(request: web.Request) -> web.Response:
    """``POST /msp/callback``: status changes and comments from the MSP (see :mod:`bot.msp_callback`)."""
    core, settings, clock = _core(request.app), request.app[SETTINGS], request.app[CLOCK]
    edge = MspCallback(secret=settings.msp.secret, metrics=request.app[METRICS], clock=clock,
                       max_age_seconds=settings.msp.callback_max_age_seconds,
                       updates=MspUpdates(sessionmaker=core.sessionmaker, clock=clock, on_commit=core.worker.wake))
    return await edge.handle(request)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with _core(request.app).sessionmaker() as session:
            stats = await service.outbox_stats(session=session, now=request.app[CLOCK]())
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        stats = {}
        checks["database"] = f"unavailable ({type(exc).__name__})"
    task = request.app[READY].get("worker")
    if task == "separate":  # delivered by `handoff worker` processes; not this process's to check
        checks["worker"] = "separate"
    else:
        checks["worker"] = "ok" if isinstance(task, asyncio.Task) and not task.done() else "stopped"
    ok = all(v in ("ok", "separate") for v in checks.values())
    return web.json_response({"ok": ok, "checks": checks, "outbox": stats}, status=200 if ok else 503)


async def metrics_view(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        async with _core(request.app).sessionmaker() as session:
            stats = await service.outbox_stats(session=session, now=request.app[CLOCK]())
        metrics.outbox_pending.set(stats.get("pending", 0))
        metrics.outbox_dead.set(stats.get("dead", 0))
        metrics.outbox_oldest.set(stats.get("oldest_pending_age_seconds") or 0)
        metrics.outbox_scheduled.set(stats.get("scheduled", 0))
    except Exception:  # noqa: BLE001 - metrics still served without the DB figures
        log.warning("metrics: outbox stats unavailable")
    return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type": "text/plain; version=0.0.4"})


def _core(app: web.Application) -> Core:
    return app[CORE]


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


def create_app(settings: Settings, *, clock: Clock = utcnow) -> web.Application:
    """Build the application; nothing is opened until it starts."""
    app = web.Application(client_max_size=settings.server.max_body_bytes, middlewares=[request_id_middleware, _errors])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[READY] = {}
    app.cleanup_ctx.append(_services)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_post("/api/messages", teams_messages)
    app.router.add_post("/msp/callback", msp_callback)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app
