"""Teams configuration from the environment, and the rules for running without token validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, load_settings, teams_mode
from bot.config_chat import is_loopback
from tests.helpers import APP_YAML

APP = {"TEAMS_APP_ID": "eac5e5c6-ab14-4f50-80cb-49213fe51b1a", "TEAMS_APP_PASSWORD": "client-secret-value"}


def test_defaults_leave_teams_disabled() -> None:
    settings = load_settings(env={}, path=APP_YAML)
    assert teams_mode(settings) == "disabled"
    assert settings.teams.openid_url == "https://login.botframework.com/v1/.well-known/openidconfiguration"
    assert settings.teams.token_url == "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
    assert settings.teams.connector_urls == ["https://smba.trafficmanager.net/"]


def test_environment_configures_teams_and_keeps_the_password_secret() -> None:
    env = {**APP, "TEAMS_APP_TYPE": "SingleTenant", "TEAMS_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
           "TEAMS_OPENID_URL": "http://127.0.0.1:9/v1/.well-known/openidconfiguration",
           "TEAMS_CONNECTOR_URL": "http://127.0.0.1:9, https://smba.trafficmanager.net/"}
    settings = load_settings(env=env, path=APP_YAML)
    assert teams_mode(settings) == "validate"
    assert settings.teams.token_url == ("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47"
                                        "/oauth2/v2.0/token")
    assert settings.teams.connector_urls == ["http://127.0.0.1:9/", "https://smba.trafficmanager.net/"]
    assert "client-secret-value" not in repr(settings) + str(settings.model_dump())
    overridden = load_settings(env={**APP, "TEAMS_OAUTH_URL": "http://127.0.0.1:9/t/oauth2/v2.0/token"}, path=APP_YAML)
    assert overridden.teams.token_url == "http://127.0.0.1:9/t/oauth2/v2.0/token"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TEAMS_APP_ID": "app"}, "TEAMS_APP_PASSWORD is not"),
        ({**APP, "TEAMS_APP_TYPE": "SingleTenant"}, "needs TEAMS_TENANT_ID"),
        ({**APP, "TEAMS_APP_TYPE": "UserAssignedMSI"}, "teams.app_type (from TEAMS_APP_TYPE)"),
        ({"HANDOFF_TEAMS_AUTH": "no"}, "teams.auth (from HANDOFF_TEAMS_AUTH)"),
        ({**APP, "HANDOFF_TEAMS_AUTH": "off"}, "cannot be combined with TEAMS_APP_ID"),
        ({"HANDOFF_TEAMS_AUTH": "off", "HANDOFF_HOST": "0.0.0.0"}, "only allowed on a loopback bind"),
        ({"HANDOFF_TEAMS_AUTH": "off", "HANDOFF_HOST": "10.1.2.3"}, "not '10.1.2.3'"),
    ],
)
def test_refused_configurations(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, path=APP_YAML)
    assert message in str(info.value) and "client-secret-value" not in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2", "[::1]"])
def test_auth_off_on_loopback(host: str) -> None:
    settings = load_settings(env={"HANDOFF_TEAMS_AUTH": "off", "HANDOFF_HOST": host}, path=APP_YAML)
    assert teams_mode(settings) == "off"


def test_is_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "LOCALHOST", "127.9.9.9"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.evil.com", ""))


def test_mutated_settings_are_checked_again() -> None:
    settings = load_settings(env={"HANDOFF_TEAMS_AUTH": "off"}, path=APP_YAML)
    settings.server.host = "0.0.0.0"
    with pytest.raises(ConfigError, match="loopback"):
        teams_mode(settings)


def test_password_in_app_yaml_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(APP_YAML.read_text())
    data["teams"] = {"app_id": "app", "app_password": "s3cret"}
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="set the environment variable TEAMS_APP_PASSWORD") as info:
        load_settings(env={}, path=path)
    assert "s3cret" not in str(info.value)
