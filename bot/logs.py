"""Logging for a serving process: one JSON object per line, a request id on every line, no secrets.

* :class:`JsonFormatter` writes ``{"ts", "level", "logger", "msg", "request_id", ...}`` per record, so a
  log pipeline (Loki, CloudWatch, Elastic) can filter by request without parsing prose.
* :data:`request_id` is a context variable: :func:`request_id_middleware` sets it for each HTTP request
  (a sane inbound ``X-Request-Id`` is kept, else a new one is made) and echoes it in the response, so
  every line logged while handling that request, in any module, carries it. Socket Mode sets it for
  each envelope (:mod:`bot.slack_socket`).
* :class:`SecretScrubber` runs the same detectors as intake redaction over each final message: defence
  in depth, in case a secret reaches a log call through an exception message or a third party's answer.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from routing.redact import redact

#: The id of the request being handled ("-" outside any request).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("handoff_request_id", default="-")
REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


def new_request_id() -> str:
    return secrets.token_hex(8)


def request_id_from(candidate: str | None) -> str:
    """``candidate`` when it is a sane id (an inbound ``X-Request-Id``, a Socket Mode envelope id), so
    the sender's logs and ours name the request alike; else a new id (nothing odd reaches a log line)."""
    return candidate if candidate and _SANE_ID.fullmatch(candidate) else new_request_id()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` from the context (for text and JSON formats alike)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class SecretScrubber(logging.Filter):
    """Replaces credentials in the final message (and exception text) by typed placeholders."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logged as is
            return True
        cleaned = redact(message).text
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            scrubbed = redact(text).text
            if scrubbed != text:  # keep the traceback, without the secret
                record.exc_info, record.exc_text = None, scrubbed
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields given to a log call are included."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def setup_logging(level: str, *, fmt: Literal["json", "text", "auto"] = "auto", stream: Any = None) -> None:
    """Configure the root logger: ``json`` (default when stderr is not a terminal) or ``text``."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SecretScrubber())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Give the request an id (kept from a sane ``X-Request-Id``), log under it, return it."""
    rid = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    token = request_id.set(rid)
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[REQUEST_ID_HEADER] = rid
            raise
        response.headers[REQUEST_ID_HEADER] = rid
        return response
    finally:
        request_id.reset(token)
