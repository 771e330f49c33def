"""Configuration: ``app.yaml`` for policy and structure, the environment for secrets and deployment.

Loaded once at start-up by :func:`load_settings`; nothing here runs at import time. Every problem is
reported with its key path (``delivery.max_attempts: …``) and, for environment variables, its name.
Secrets are :class:`pydantic.SecretStr`: they never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from routing.model import RuleSet
from routing.rules import RuleSetError, ruleset_from_dict

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "app.yaml"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SLACK_API_URL = "https://slack.com/api/"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names each key path and what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=3978, ge=0, le=65535)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=10 * 1024 * 1024)
    max_message_chars: int = Field(default=8_000, ge=100, le=100_000)


class SlackConfig(_Section):
    api_url: str = SLACK_API_URL
    request_max_age_seconds: int = Field(default=300, ge=10, le=3600)
    signing_secret: SecretStr | None = None
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None


class MspConfig(_Section):
    url: str | None = None
    secret: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class PagerDutyConfig(_Section):
    events_url: str = PAGERDUTY_EVENTS_URL
    routing_key: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    source: str = "handoff"


class InternalConfig(_Section):
    slack_channel: str | None = Field(default=None, description="In-house IT channel told of internal tickets and pages")


class AdminsConfig(_Section):
    slack: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    alert_slack_channel: str | None = Field(default=None, description="Where dead letters are reported")


class DeliveryConfig(_Section):
    max_attempts: int = Field(default=12, ge=1, le=100)
    backoff_base_seconds: float = Field(default=1.0, gt=0, le=60)
    backoff_cap_seconds: float = Field(default=300.0, gt=0, le=3600)
    batch: int = Field(default=20, ge=1, le=500)
    poll_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    lease_seconds: float = Field(default=60.0, ge=5, le=3600)


class DatabaseConfig(_Section):
    url: str | None = None
    pool_size: int = Field(default=10, ge=1, le=200)


class Settings(_Section):
    """Everything the application needs, validated. Build it with :func:`load_settings`."""

    config_path: Path
    server: ServerConfig = Field(default_factory=ServerConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    msp: MspConfig = Field(default_factory=MspConfig)
    pagerduty: PagerDutyConfig = Field(default_factory=PagerDutyConfig)
    internal: InternalConfig = Field(default_factory=InternalConfig)
    admins: AdminsConfig = Field(default_factory=AdminsConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    routing: dict[str, Any]

    def ruleset(self, *, version: int = 0) -> RuleSet:
        return ruleset_from_dict(self.routing, version=version)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.config_path.parent / 'handoff.db'}"


#: Environment variable -> (section, key). Secrets and deployment facts live here, not in app.yaml.
ENV_MAP: dict[str, tuple[str, str]] = {
    "HANDOFF_HOST": ("server", "host"),
    "HANDOFF_PORT": ("server", "port"),
    "HANDOFF_DATABASE_URL": ("database", "url"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_API_URL": ("slack", "api_url"),
    "HANDOFF_MSP_URL": ("msp", "url"),
    "HANDOFF_MSP_SECRET": ("msp", "secret"),
    "PAGERDUTY_ROUTING_KEY": ("pagerduty", "routing_key"),
    "PAGERDUTY_EVENTS_URL": ("pagerduty", "events_url"),
}
#: Keys that may only come from the environment: writing them in app.yaml is refused.
SECRET_KEYS = {("slack", "signing_secret"), ("slack", "bot_token"), ("slack", "app_token"),
               ("msp", "secret"), ("pagerduty", "routing_key")}
ENV_NAME = {v: k for k, v in ENV_MAP.items()}


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_settings(env: Mapping[str, str] | None = None, path: Path | str | None = None) -> Settings:
    """Read ``app.yaml`` (``HANDOFF_CONFIG`` or ``path``) and the environment into :class:`Settings`.

    Raises:
        ConfigError: naming every problem by key path (or environment variable).
    """
    env = os.environ if env is None else env
    config_path = Path(path or env.get("HANDOFF_CONFIG") or DEFAULT_CONFIG).resolve()
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: no such file (set HANDOFF_CONFIG to your app.yaml)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: the top level must be a mapping of sections")

    problems = [
        f"{section}.{key}: secrets are never written in app.yaml; set the environment variable "
        f"{ENV_NAME[(section, key)]} instead"
        for section, key in sorted(SECRET_KEYS)
        if isinstance(raw.get(section), dict) and key in raw[section]
    ]
    if problems:
        raise ConfigError("\n".join(problems))

    data: dict[str, Any] = {k: ({} if v is None else dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for var, (section, key) in ENV_MAP.items():
        value = env.get(var)
        if value:
            if not isinstance(data.setdefault(section, {}), dict):
                continue  # the section's own type error is reported by validation below
            data[section][key] = value
    data["config_path"] = config_path
    if "routing" not in data:
        raise ConfigError(f"{config_path}: routing: missing; app.yaml must hold the routing rules")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            where = _loc(e["loc"])
            var = ENV_NAME.get(tuple(e["loc"][:2]))  # type: ignore[arg-type]
            source = f" (from {var})" if var and env.get(var) else ""
            lines.append(f"{where}{source}: {e['msg']}")
        raise ConfigError("\n".join(lines)) from None
    try:
        settings.ruleset()
    except RuleSetError as exc:
        raise ConfigError("\n".join(f"routing.{p}" for p in exc.problems)) from None
    return settings


def extra_admins(env: Mapping[str, str] | None = None) -> list[str]:
    """User ids from ``HANDOFF_ADMINS`` (comma separated)."""
    env = os.environ if env is None else env
    return [a.strip() for a in env.get("HANDOFF_ADMINS", "").split(",") if a.strip()]
