"""The ``handoff`` command: serve, worker, chat, classify, outbox, db.

Every subcommand loads the same settings (``app.yaml`` + environment) and, where it needs them, the
same core (database, rules, intake, outbox worker) as the server, so what a newcomer sees in the
terminal is exactly what Slack users get.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import TextIO

from bot import cli_classify
from bot.config import ConfigError, Settings, load_settings

log = logging.getLogger("handoff")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The spellings logging itself accepts besides those.
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
LOG_FORMATS = ("auto", "json", "text")


def _setup_logging(level: str, fmt: str) -> None:
    from bot.logs import setup_logging

    setup_logging(level, fmt="json" if fmt == "json" else "text" if fmt == "text" else "auto")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handoff", description="Route IT requests from Slack and Teams.")
    parser.add_argument("--config", help="path of app.yaml (default: $HANDOFF_CONFIG or the bundled app.yaml)")
    parser.add_argument("--log-level", type=_level, choices=LOG_LEVELS, default="INFO", help="of serve and worker")
    parser.add_argument("--log-format", choices=LOG_FORMATS, help="json: one object per line with a request id "
                        "(auto: json when stderr is not a terminal); default $HANDOFF_LOG_FORMAT, else auto")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP server (Slack events, health, metrics) and the outbox worker")
    p.add_argument("--no-worker", action="store_true",
                   help="do not run the outbox worker here (delivery.worker: separate); run `handoff worker` instead")
    sub.add_parser("worker", help="run only the outbox worker (deliveries, escalations, SLA checks), no HTTP; "
                                  "pair it with `serve --no-worker`")
    sub.add_parser("chat", help="talk to the bot in the terminal as an employee")

    cli_classify.add_parser(sub)

    p = sub.add_parser("outbox", help="list outbound deliveries (what went, or would go, to the MSP and the pager)")
    p.add_argument("--status", choices=["pending", "delivered", "dead"])
    p.add_argument("--kind")
    p.add_argument("--limit", type=_positive, default=20, help="at most this many rows, newest first (1 or more)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("db", help="database maintenance")
    p.add_argument("action", choices=["upgrade"])

    args = parser.parse_args(argv)
    log_format = args.log_format or os.environ.get("HANDOFF_LOG_FORMAT", "").strip().lower() or "auto"
    if log_format not in LOG_FORMATS:  # argparse checks choices on the command line only, not on a default
        parser.error(f"HANDOFF_LOG_FORMAT={log_format!r}: choose from {', '.join(LOG_FORMATS)}")
    _setup_logging(args.log_level if args.command in ("serve", "worker") else "WARNING", log_format)
    try:
        settings = load_settings(path=args.config)
    except ConfigError as exc:
        print(f"handoff: configuration error:\n{exc}", file=sys.stderr)
        return 2
    if args.command in ("serve", "worker", "chat", "outbox", "db"):  # classify reads app.yaml only
        problem = _database_problem(settings.database_url)
        if problem is not None:
            print(f"handoff: {problem}", file=sys.stderr)
            return 2
    try:
        if args.command == "serve":
            if args.no_worker:
                settings = settings.model_copy(
                    update={"delivery": settings.delivery.model_copy(update={"worker": "separate"})})
            return _serve(settings)
        if args.command == "worker":
            _lower_priority(settings.delivery.separate_worker_nice)  # before any thread starts: they inherit it
            return asyncio.run(_worker(settings))
        if args.command == "classify":
            return asyncio.run(cli_classify.classify(settings, args, sys.stdin, sys.stdout))
        if args.command == "chat":
            from bot.cli_chat import chat

            return asyncio.run(chat(settings, sys.stdin, sys.stdout))
        if args.command == "outbox":
            return asyncio.run(_outbox(settings, args, sys.stdout))
        if args.command == "db":
            from storage import db

            db.upgrade_sync(settings.database_url)
            print(f"database at head: {_safe_url(settings.database_url)}")
            return 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `handoff outbox --json | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 2


def _positive(value: str) -> int:
    """An argparse type: a whole number of 1 or more (PostgreSQL refuses a negative LIMIT)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def _level(value: str) -> str:
    """``--log-level``: any case, and logging's own aliases (``warn``)."""
    return _LEVEL_ALIASES.get(value.upper(), value.upper())


def _database_problem(url: str) -> str | None:
    """None when the database opens (and is migrated to head), else what to tell the operator: an
    unreachable server or a mistyped URL is a configuration problem, not a traceback."""
    from storage import db

    try:
        asyncio.run(db.upgrade(url))  # one query when at head: Alembic (~10 MB for good) only when not
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the fix is the URL or the server
        detail = " ".join(str(exc).split())
        for piece in sorted(_credentials(url), key=len, reverse=True):  # a driver may echo a mis-parsed host
            detail = detail.replace(piece, "***")
        detail = detail[:300] or type(exc).__name__
        return (f"cannot open the database {_safe_url(url)} ({type(exc).__name__}: {detail}). Check "
                "HANDOFF_DATABASE_URL (or database.url in app.yaml) and that the database server is running.")
    return None


def _safe_url(url: str) -> str:
    """A database URL for messages, with everything between ``://`` and the last ``@`` hidden.

    Not SQLAlchemy's ``hide_password``: it ends the password at the first ``@``, so an unescaped
    ``@`` in a password (``postgres:S3cr@PGpass@host``) printed the rest of it as the host.
    """
    scheme, sep, rest = url.partition("://")
    _, at, host = (rest if sep else url).rpartition("@")
    return f"{scheme}{sep}***@{host}" if at and sep else f"***@{host}" if at else url


def _credentials(url: str) -> set[str]:
    """The password in ``url``, whole and split at ``@`` (pieces of 3 characters or more)."""
    _, sep, rest = url.partition("://")
    password = (rest if sep else url).rpartition("@")[0].partition(":")[2]
    return {p for p in (password, *password.split("@")) if len(p) >= 3}


def _serve(settings: Settings) -> int:
    from aiohttp import web

    from bot.app import create_app
    from bot.core import tune_gc

    host, port = settings.server.host, settings.server.port
    log.info("handoff on http://%s:%d (database %s)", host, port, _safe_url(settings.database_url))
    app = create_app(settings)

    async def gc_after_startup(_: web.Application) -> None:
        tune_gc()  # after the cleanup contexts opened: what they built lives as long as the process

    app.on_startup.append(gc_after_startup)
    try:
        web.run_app(app, host=host, port=port, print=None, access_log=None)
    except OSError as exc:
        # gaierror: a host that does not resolve (" 127.0.0.1", "[::1]", a typo); its errno is an EAI_* code
        unresolved = isinstance(exc, socket.gaierror)
        if not unresolved and exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        hint = ("HANDOFF_HOST must be a host name or an IP address, without brackets or spaces" if unresolved
                else "or stop what is using it")
        print(f"handoff: cannot listen on {_address(host, port)}: {exc.strerror}. Set HANDOFF_PORT / HANDOFF_HOST "
              f"(or server.port / server.host in app.yaml); {hint}.", file=sys.stderr)
        return 2
    return 0


def _address(host: str, port: int) -> str:
    """``host:port`` for messages, the host quoted when spaces in it would be invisible."""
    return f"{host}:{port}" if host == host.strip() and host else f"{host!r}:{port}"


def _lower_priority(nice: int) -> None:
    """Run this process at niceness ``nice`` at least (Linux applies it to the calling thread and to
    the threads it starts later, so call it first)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) < nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        log.warning("could not lower the worker's CPU priority to nice %d: %s", nice, exc)


async def _worker(settings: Settings) -> int:
    """``handoff worker``: the outbox worker of ``serve`` in a process of its own, until SIGTERM/SIGINT.

    Nothing in this process commits rows, so nothing wakes the worker: it polls every
    ``delivery.separate_poll_interval_seconds`` while idle (a busy worker claims batch after batch).
    """
    from bot.core import open_core, tune_gc, utcnow

    d = settings.delivery
    settings = settings.model_copy(update={"delivery": d.model_copy(
        update={"poll_interval_seconds": d.separate_poll_interval_seconds})})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("handoff worker (database %s, poll %gs, nice %d)", _safe_url(settings.database_url),
             settings.delivery.poll_interval_seconds, os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0)
    async with open_core(settings, clock=utcnow, load_rules=False) as core:
        tune_gc()
        await core.worker.run(stop)
    return 0


async def _outbox(settings: Settings, args: argparse.Namespace, stdout: TextIO) -> int:
    from storage import db, service

    await db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            rows = await service.list_outbox(session=session, limit=args.limit, status=args.status, kind=args.kind)
    finally:
        await engine.dispose()
    if args.json:
        stdout.writelines(json.dumps({
            "id": r.id, "kind": r.kind, "status": r.status, "attempts": r.attempts,
            "ticket_id": r.ticket_id, "idempotency_key": r.idempotency_key, "created_at": r.created_at.isoformat(),
            "detail": r.detail, "last_error": r.last_error, "remote_id": r.remote_id, "payload": r.payload,
        }, ensure_ascii=False, default=str) + "\n" for r in rows)
        return 0
    if not rows:
        stdout.write("outbox is empty\n")
        return 0
    for r in rows:
        ticket = r.payload.get("id") or r.payload.get("ticket") or r.payload.get("custom_details", {}).get("ticket", "")
        summary = str(r.payload.get("text") or r.payload.get("summary") or "").replace("\n", " ")[:60]
        note = (r.detail if r.status == "delivered" else r.last_error) or ""
        stdout.write(f"#{r.id:<5} {r.kind:<11} {r.status:<9} {ticket:<8} tries={r.attempts} {summary!r} {note}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
