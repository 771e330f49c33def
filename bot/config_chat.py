"""Configuration of the chat platforms: the ``slack`` and ``teams`` sections of ``app.yaml``, and the
checks of their credentials (:func:`check_slack`, :func:`teams_mode`) that ``load_settings`` runs.

Validated like the rest of :mod:`bot.config` (which uses them and re-exports the checks); kept apart
so each module stays readable. Secrets come from the environment (``SLACK_SIGNING_SECRET``,
``TEAMS_APP_PASSWORD``, ...).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from bot.config_base import ConfigError, HttpUrl, Section

if TYPE_CHECKING:
    from bot.config import Settings

SLACK_API_URL = "https://slack.com/api/"
LOOPBACK_NAMES = frozenset({"localhost"})
#: Bot Framework: signing keys of the tokens Teams sends us, and where the bot gets its own tokens.
TEAMS_OPENID_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
TEAMS_TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
#: Service URL prefix of the public Teams cloud: replies (and our bearer token) only go there.
TEAMS_CONNECTOR_URL = "https://smba.trafficmanager.net/"
#: Microsoft Graph root: Teams (Entra ID) group members of ``admins.teams_groups``.
TEAMS_GRAPH_URL = "https://graph.microsoft.com"


class SlackConfig(Section):
    api_url: HttpUrl = SLACK_API_URL
    request_max_age_seconds: int = Field(default=300, ge=10, le=3600)
    signing_secret: SecretStr | None = None
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None


def check_slack(slack: SlackConfig) -> None:
    """Refuse Slack credentials set by halves, which used to leave Slack off with one INFO line.

    ``POST /slack/events`` and Socket Mode both need ``SLACK_SIGNING_SECRET`` and ``SLACK_BOT_TOKEN``
    (Socket Mode ``SLACK_APP_TOKEN`` as well). The bot token alone is a whole configuration: the bot
    then posts to Slack (in-house channel, chat pager) without taking requests from it.

    Raises:
        ConfigError: naming each missing variable and the one that needs it.
    """
    problems = []
    if slack.bot_token is None:
        for name, value in (("SLACK_SIGNING_SECRET", slack.signing_secret), ("SLACK_APP_TOKEN", slack.app_token)):
            if value is not None:
                problems.append(f"slack.bot_token: {name} is set but SLACK_BOT_TOKEN is not (Slack needs both)")
    if slack.app_token is not None and slack.signing_secret is None:
        problems.append("slack.signing_secret: SLACK_APP_TOKEN is set but SLACK_SIGNING_SECRET is not (Socket Mode "
                        "needs it too)")
    if problems:
        raise ConfigError("\n".join(problems))


class TeamsConfig(Section):
    """Microsoft Teams (Bot Framework). Teams is served when ``app_id`` is set (or auth is off)."""

    app_id: str | None = None
    app_password: SecretStr | None = None
    app_type: Literal["MultiTenant", "SingleTenant"] = "MultiTenant"
    tenant_id: str | None = None
    auth: Literal["on", "off"] = "on"
    openid_url: HttpUrl = TEAMS_OPENID_URL
    oauth_url: HttpUrl | None = Field(default=None, description="Token endpoint; default from app_type and tenant_id")
    connector_urls: list[HttpUrl] = Field(default_factory=lambda: [TEAMS_CONNECTOR_URL], min_length=1)
    graph_url: HttpUrl = Field(default=TEAMS_GRAPH_URL, description="Microsoft Graph root (admins.teams_groups)")
    clock_skew_seconds: int = Field(default=300, ge=0, le=600)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("connector_urls", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("connector_urls")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        # "https://host/" is a prefix of that host only; "https://host" would also match host.evil.com
        return [v if v.endswith("/") else v + "/" for v in value]

    @property
    def token_url(self) -> str:
        """Where the client-credentials token is fetched (the bot's own outbound token)."""
        if self.oauth_url:
            return self.oauth_url
        tenant = self.tenant_id if self.app_type == "SingleTenant" and self.tenant_id else "botframework.com"
        return TEAMS_TOKEN_URL.format(tenant=tenant)

    @property
    def graph_token_url(self) -> str | None:
        """Token endpoint for app-only Graph tokens: the organisation's tenant, never ``botframework.com``.

        ``oauth_url`` wins when set (sovereign clouds, test fakes); else ``tenant_id`` is needed.
        """
        if self.oauth_url:
            return self.oauth_url
        return TEAMS_TOKEN_URL.format(tenant=self.tenant_id) if self.tenant_id else None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def teams_mode(settings: Settings) -> Literal["validate", "off", "disabled"]:
    """How the Teams endpoint runs: ``validate`` (tokens checked), ``off`` (local testing), ``disabled``.

    Raises:
        ConfigError: validation switched off with an app id or on a non-loopback bind, an app id
            without a password, or a single-tenant app without its tenant.
    """
    teams = settings.teams
    if teams.auth == "off":
        if teams.app_id:
            raise ConfigError(
                "teams.auth (from HANDOFF_TEAMS_AUTH): 'off' cannot be combined with TEAMS_APP_ID; Teams tokens "
                "are always validated when an app id is set"
            )
        if not is_loopback(settings.server.host):
            raise ConfigError(
                f"teams.auth (from HANDOFF_TEAMS_AUTH): 'off' is only allowed on a loopback bind "
                f"(HANDOFF_HOST=127.0.0.1, ::1 or localhost), not {settings.server.host!r}"
            )
        return "off"
    if not teams.app_id:
        return "disabled"
    problems = []
    if teams.app_password is None:
        problems.append("teams.app_password: TEAMS_APP_ID is set but TEAMS_APP_PASSWORD is not (replies need it)")
    if teams.app_type == "SingleTenant" and not teams.tenant_id:
        problems.append("teams.tenant_id: TEAMS_APP_TYPE=SingleTenant needs TEAMS_TENANT_ID")
    if problems:
        raise ConfigError("\n".join(problems))
    return "validate"
