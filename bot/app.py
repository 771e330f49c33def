"""The HTTP application: routes, middlewares and the chat edges, on the core of :mod:`bot.core`.

Resources are opened in ``cleanup_ctx`` (the core: database, HTTP client, use cases; then the Slack
and Teams edges and the background tasks) and shared under ``web.AppKey`` constants, so a test builds
a real app on port 0 and a replica is just another process with the same settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.config import Settings, teams_mode
from bot.connectors import SlackWebConnector
from bot.connectors_setup import slack_response_prefixes
from bot.core import Clock, Core, open_core, utcnow
from bot.logs import request_id_middleware
from bot.metrics import Metrics
from bot.msp_callback import MspCallback
from bot.slack import SlackEdge
from bot.slack_socket import socket_mode_handler
from handlers.housekeeping import Housekeeper
from handlers.msp_updates import MspUpdates
from storage import service

if TYPE_CHECKING:
    from bot.teams import TeamsEdge

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
METRICS = web.AppKey("metrics", Metrics)
SLACK = web.AppKey("slack", SlackEdge)
READY = web.AppKey("ready", dict)
TEAMS: web.AppKey[TeamsEdge] = web.AppKey("teams")


def _teams_edge(settings: Settings, core: Core, metrics: Metrics, clock: Clock) -> TeamsEdge | None:
    """The Teams edge, or None when Teams is not configured (botbuilder is only imported if it is)."""
    mode = teams_mode(settings)
    if mode == "disabled":
        return None
    from bot.teams import TeamsEdge
    from bot.teams_auth import SigningKeys, TokenValidator
    from bot.teams_bot import HandoffTeamsBot

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


CORE = web.AppKey("core", Core)


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
                socket_mode = socket_mode_handler(edge, slack.app_token.get_secret_value())
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
    """Turn a database outage into 503 (callers retry), counted like the edges' own refusals.

    Only what an edge let through gets here, so counting it never counts a refusal twice: Slack
    answers (and counts) its listeners' failures itself, Teams and the MSP callback leave theirs here.
    """
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (TimeoutError, OperationalError, DBAPIError, OSError) as exc:
        log.error("%s %s: unavailable (%s)", request.method, request.path, type(exc).__name__)
        request.app[METRICS].rejected.labels(platform=_platform(request), status="503").inc()
        return web.json_response({"ok": False, "error": "temporarily unavailable"}, status=503,
                                 headers={"Retry-After": "1"})


def _platform(request: web.Request) -> str:
    """Who sent ``request``: the name of its route (``slack``, ``teams``, ``msp``, see :func:`create_app`)."""
    return request.match_info.route.name or "other"


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
    """200 while this replica can accept work: the database answers and its worker runs.

    A receiver's outage (the MSP answering 503) leaves it ready on purpose: intake still stores
    every request and its rows wait to be retried, and a balancer taking every replica out would
    refuse requests instead. The outbox counts are in the body; alert on the delivery lag
    (``handoff_outbox_oldest_pending_seconds``), not on this.
    """
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
        metrics.outbox_retrying.set(stats.get("retrying", 0))
    except Exception:  # noqa: BLE001 - metrics still served without the DB figures
        log.warning("metrics: outbox stats unavailable")
    return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type": "text/plain; version=0.0.4"})


def _core(app: web.Application) -> Core:
    return app[CORE]


def create_app(settings: Settings, *, clock: Clock = utcnow) -> web.Application:
    """Build the application; nothing is opened until it starts."""
    app = web.Application(client_max_size=settings.server.max_body_bytes, middlewares=[request_id_middleware, _errors])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[READY] = {}
    app.cleanup_ctx.append(_services)
    # Named after the platform that calls them: the label of their refusals (_platform).
    app.router.add_post("/slack/events", slack_events, name="slack")
    app.router.add_post("/api/messages", teams_messages, name="teams")
    app.router.add_post("/msp/callback", msp_callback, name="msp")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app
