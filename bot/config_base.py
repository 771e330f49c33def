"""What every section of ``app.yaml`` shares: the error type, the section base, checked value types.

Kept apart from :mod:`bot.config` so the section modules (:mod:`bot.config_chat`,
:mod:`bot.config_oncall`) can use them without importing the loader that imports them.
"""

from __future__ import annotations

from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationInfo,
    field_validator,
)


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names each key path and what is wrong."""


class Section(BaseModel):
    """A section of app.yaml: unknown keys are errors (a typo must not be silently ignored), and so
    is ``true``/``false`` where a number is expected (pydantic would read ``port: true`` as port 1)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name and _wants_number(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, not {str(value).lower()}")
        return value


def _wants_number(annotation: Any) -> bool:
    """True for ``int``, ``float`` and their optional forms (``int | None``), not when ``bool`` is allowed."""
    if get_origin(annotation) in (Union, UnionType):
        options = set(get_args(annotation)) - {NoneType}
    else:
        options = {annotation}
    return bool(options) and options <= {int, float}


def _http_url(value: str) -> str:
    """An outbound base URL, checked at start rather than failing ticket after ticket: http(s) with
    a host and a valid port. The value itself is not echoed: a webhook URL may carry a token."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError when not a number from 0 to 65535
    except ValueError:
        raise ValueError("is not a valid URL (check the port, and the brackets around an IPv6 address)") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. https://example.com/path")
    if port == 0 or any(c.isspace() for c in value):
        raise ValueError("is not a valid URL (a space in it, or port 0)")
    return value


#: A URL the bot sends to (MSP webhook, Slack, PagerDuty, Opsgenie, Teams / Microsoft endpoints).
HttpUrl = Annotated[str, AfterValidator(_http_url)]
