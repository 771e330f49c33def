"""Configuration: ``app.yaml`` for policy and structure, the environment for secrets and deployment.

Loaded once at start-up by :func:`load_settings`; nothing here runs at import time. Every problem is
reported with its key path (``delivery.max_attempts: …``) and, for environment variables, its name.
Secrets are :class:`pydantic.SecretStr`: they never appear in ``repr``, logs or error messages.
The chat platforms' sections are in :mod:`bot.config_chat`, the on-call ones (pager, rotation, storm
control, business hours, SLA) in :mod:`bot.config_oncall`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator

from bot.config_base import ConfigError, HttpUrl, Section
from bot.config_chat import SlackConfig, TeamsConfig, check_slack, teams_mode
from bot.config_oncall import (
    BusinessHoursConfig,
    OncallConfig,
    OpsgenieConfig,
    SlaConfig,
    StormConfig,
)
from handlers.yaml_input import DuplicateKey, load_yaml
from routing.model import RuleSet
from routing.regexes import costly_regexes
from routing.rules import RuleSetError, ruleset_from_dict

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "app.yaml"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


_Section = Section


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=3978, ge=1, le=65535)  # 0 (any free port) would be logged as :0
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=10 * 1024 * 1024)
    max_message_chars: int = Field(default=8_000, ge=100, le=100_000)


class MspConfig(_Section):
    url: HttpUrl | None = None
    secret: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: ``POST /msp/callback``: signed requests older (or newer) than this are refused as replays.
    callback_max_age_seconds: int = Field(default=300, ge=10, le=3600)


class PagerDutyConfig(_Section):
    events_url: HttpUrl = PAGERDUTY_EVENTS_URL
    routing_key: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    source: str = "handoff"


class InternalConfig(_Section):
    slack_channel: str | None = Field(default=None, description="In-house IT channel told of internal tickets and pages")
    teams_channel: str | None = Field(default=None, description="Teams channel id (19:…@thread.tacv2) told of the same")


class AdminsConfig(_Section):
    slack: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    alert_slack_channel: str | None = Field(default=None, description="Where dead letters are reported")
    alert_teams_channel: str | None = Field(default=None, description="Teams channel id where dead letters are reported")
    slack_groups: list[str] = Field(default_factory=list, description="Slack user groups (id S0… or handle) of rule admins")
    teams_groups: list[str] = Field(default_factory=list, description="Entra ID group object ids of rule admins (Graph)")


class RulesAdminConfig(_Section):
    """Rule editing by chat: how fast replicas follow a new version, replay window and time budget."""

    watch_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    replay_days: int = Field(default=7, ge=1, le=90)
    replay_budget_seconds: float = Field(default=2.5, gt=0, le=600)
    group_cache_seconds: float = Field(default=60.0, ge=0, le=3600)


class DeliveryConfig(_Section):
    max_attempts: int = Field(default=12, ge=1, le=100)
    backoff_base_seconds: float = Field(default=1.0, gt=0, le=60)
    backoff_cap_seconds: float = Field(default=300.0, gt=0, le=3600)
    batch: int = Field(default=50, ge=1, le=500)
    poll_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    lease_seconds: float = Field(default=60.0, ge=5, le=3600)
    #: Deliveries in flight at once per worker (rows of one ticket still go one by one).
    concurrency: int = Field(default=64, ge=1, le=500)
    #: ``in-process``: ``handoff serve`` runs the outbox worker; ``separate``: it does not, and a
    #: ``handoff worker`` process (same database) delivers instead (``serve --no-worker`` says the same).
    worker: Literal["in-process", "separate"] = "in-process"
    #: How often ``handoff worker`` polls for due rows when idle: no intake in its process wakes it.
    separate_poll_interval_seconds: float = Field(default=0.1, gt=0, le=60)
    #: Niceness ``handoff worker`` takes at start (POSIX; 0 leaves it alone). On a host shared with
    #: ``serve``, the kernel then gives the web process the CPU first: acknowledgements have
    #: Slack's 3 s deadline, deliveries only a lag budget.
    separate_worker_nice: int = Field(default=10, ge=0, le=19)


class DatabaseConfig(_Section):
    url: str | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        """A space pasted after the URL would name another file (``x.db ``); a blank one is unset."""
        return (value.strip() or None) if isinstance(value, str) else value
    pool_size: int = Field(default=10, ge=1, le=200)
    #: Intake transactions in flight at most (group commit; more than one only while a whole batch
    #: waits behind a running one). None: 1 on SQLite (one writer at a time anyway), 4 on
    #: PostgreSQL. Each holds a pooled connection while it runs.
    intake_writers: int | None = Field(default=None, ge=1, le=64)
    #: Inbound event ids (platform retry dedupe) are forgotten after this many days.
    inbound_retention_days: float = Field(default=7.0, ge=1, le=365)


class Settings(_Section):
    """Everything the application needs, validated. Build it with :func:`load_settings`."""

    config_path: Path
    server: ServerConfig = Field(default_factory=ServerConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    teams: TeamsConfig = Field(default_factory=TeamsConfig)
    msp: MspConfig = Field(default_factory=MspConfig)
    pagerduty: PagerDutyConfig = Field(default_factory=PagerDutyConfig)
    internal: InternalConfig = Field(default_factory=InternalConfig)
    admins: AdminsConfig = Field(default_factory=AdminsConfig)
    rules_admin: RulesAdminConfig = Field(default_factory=RulesAdminConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    opsgenie: OpsgenieConfig = Field(default_factory=OpsgenieConfig)
    oncall: OncallConfig = Field(default_factory=OncallConfig)
    storm: StormConfig = Field(default_factory=StormConfig)
    business_hours: BusinessHoursConfig = Field(default_factory=BusinessHoursConfig)
    sla: SlaConfig = Field(default_factory=SlaConfig)
    routing: dict[str, Any]

    @property
    def pager(self) -> Literal["pagerduty", "opsgenie", "chat"]:
        """The pager in use (``oncall.pager``, with ``auto`` resolved from the credentials given)."""
        chosen = self.oncall.pager
        if chosen != "auto":
            return chosen
        if self.pagerduty.routing_key is not None:
            return "pagerduty"
        if self.opsgenie.api_key is not None:
            return "opsgenie"
        return "chat"

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
    "TEAMS_APP_ID": ("teams", "app_id"),
    "TEAMS_APP_PASSWORD": ("teams", "app_password"),
    "TEAMS_APP_TYPE": ("teams", "app_type"),
    "TEAMS_TENANT_ID": ("teams", "tenant_id"),
    "HANDOFF_TEAMS_AUTH": ("teams", "auth"),
    "TEAMS_OPENID_URL": ("teams", "openid_url"),
    "TEAMS_OAUTH_URL": ("teams", "oauth_url"),
    "TEAMS_CONNECTOR_URL": ("teams", "connector_urls"),
    "TEAMS_GRAPH_URL": ("teams", "graph_url"),
    "OPSGENIE_API_KEY": ("opsgenie", "api_key"),
    "OPSGENIE_API_URL": ("opsgenie", "api_url"),
}
#: Keys that may only come from the environment: writing them in app.yaml is refused.
SECRET_KEYS = {("slack", "signing_secret"), ("slack", "bot_token"), ("slack", "app_token"),
               ("msp", "secret"), ("pagerduty", "routing_key"), ("teams", "app_password"),
               ("opsgenie", "api_key")}
ENV_NAME = {v: k for k, v in ENV_MAP.items()}


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _read_yaml(name: Path | str) -> tuple[Path, Any]:
    """(absolute path, parsed YAML) of the configuration file, or a ConfigError saying what to fix."""
    try:
        config_path = Path(name).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL in HANDOFF_CONFIG
        raise ConfigError(f"{name!r}: not a usable path ({exc}); set HANDOFF_CONFIG to your app.yaml") from None
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: no such file (set HANDOFF_CONFIG to your app.yaml)") from None
    except IsADirectoryError:
        raise ConfigError(f"{config_path}: is a directory; set HANDOFF_CONFIG to the app.yaml file in it") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config_path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
    except (OSError, ValueError) as exc:  # PermissionError and the like
        raise ConfigError(f"{config_path}: cannot be read ({exc.__class__.__name__}: {exc}); check that the "
                          "service's user may read it") from None
    try:
        return config_path, load_yaml(text) or {}
    except DuplicateKey as exc:  # before ValueError: it is one
        raise ConfigError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{config_path}: nested too deeply to read; app.yaml needs a few levels, not "
                          "thousands") from None
    except (ValueError, TypeError, OverflowError) as exc:  # PyYAML builds dates and numbers: 2024-02-30
        raise ConfigError(f"{config_path}: a value YAML cannot read ({exc}); quote it if it is text, or fix "
                          "the date (YYYY-MM-DD) or number") from None


def load_settings(env: Mapping[str, str] | None = None, path: Path | str | None = None) -> Settings:
    """Read ``app.yaml`` (``HANDOFF_CONFIG`` or ``path``) and the environment into :class:`Settings`.

    Raises:
        ConfigError: naming every problem by key path (or environment variable).
    """
    env = os.environ if env is None else env
    config_path, raw = _read_yaml(path or env.get("HANDOFF_CONFIG") or DEFAULT_CONFIG)
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
            env_name: str | None = ENV_NAME.get(tuple(e["loc"][:2]))  # type: ignore[arg-type]
            source = f" (from {env_name})" if env_name and env.get(env_name) else ""
            lines.append(f"{where}{source}: {e['msg']}")
        raise ConfigError("\n".join(lines)) from None
    try:
        costly = costly_regexes(settings.ruleset())
    except RuleSetError as exc:
        raise ConfigError("\n".join(f"routing.{p}" for p in exc.problems)) from None
    if costly:
        raise ConfigError("\n".join(f"routing.{p}" for p in costly))
    check_slack(settings.slack)
    teams_mode(settings)
    return settings


def extra_admins(env: Mapping[str, str] | None = None) -> list[str]:
    """User ids from ``HANDOFF_ADMINS`` (comma separated)."""
    env = os.environ if env is None else env
    return [a.strip() for a in env.get("HANDOFF_ADMINS", "").split(",") if a.strip()]
