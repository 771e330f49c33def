"""Configuration: app.yaml + environment, errors by key path, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, extra_admins, load_settings
from tests.helpers import APP_YAML


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def shipped() -> dict:
    return yaml.safe_load(APP_YAML.read_text())


def test_shipped_config_loads_with_defaults() -> None:
    s = load_settings(env={}, path=APP_YAML)
    assert (s.server.host, s.server.port) == ("127.0.0.1", 3978)
    assert s.database_url == f"sqlite:///{APP_YAML.parent / 'handoff.db'}"
    assert s.slack.api_url == "https://slack.com/api/"
    assert s.pagerduty.events_url == "https://events.pagerduty.com/v2/enqueue"
    assert s.msp.url is None and s.slack.bot_token is None
    rs = s.ruleset()
    assert rs.rules[-1].when.is_empty and any(r.route == "page" for r in rs.rules)


def test_environment_overrides_and_secrets_stay_secret() -> None:
    env = {
        "HANDOFF_HOST": "0.0.0.0", "HANDOFF_PORT": "8080", "HANDOFF_DATABASE_URL": "postgresql://u@db/h",
        "SLACK_SIGNING_SECRET": "sig-secret-value", "SLACK_BOT_TOKEN": "xoxb-secret-value",
        "SLACK_APP_TOKEN": "xapp-secret-value", "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "HANDOFF_MSP_URL": "http://127.0.0.1:9/msp", "HANDOFF_MSP_SECRET": "msp-secret-value",
        "PAGERDUTY_ROUTING_KEY": "pd-secret-value", "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9/v2/enqueue",
    }
    s = load_settings(env=env, path=APP_YAML)
    assert (s.server.host, s.server.port, s.database_url) == ("0.0.0.0", 8080, "postgresql://u@db/h")
    assert s.slack.api_url == "http://127.0.0.1:9/api/" and s.msp.url == "http://127.0.0.1:9/msp"
    assert s.pagerduty.events_url == "http://127.0.0.1:9/v2/enqueue"
    assert s.slack.bot_token is not None and s.slack.bot_token.get_secret_value() == "xoxb-secret-value"
    dumped = repr(s) + str(s.model_dump())
    for value in ("sig-secret-value", "xoxb-secret-value", "xapp-secret-value", "msp-secret-value", "pd-secret-value"):
        assert value not in dumped


def test_handoff_config_names_the_file(tmp_path: Path) -> None:
    data = shipped()
    data["server"]["port"] = 4000
    path = write(tmp_path, data)
    assert load_settings(env={"HANDOFF_CONFIG": str(path)}).server.port == 4000
    assert load_settings(env={"HANDOFF_CONFIG": str(path)}).database_url == f"sqlite:///{tmp_path / 'handoff.db'}"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["delivery"].update(max_attempts=0), "delivery.max_attempts: Input should be greater than or equal to 1"),
        (lambda d: d["server"].update(port="http"), "server.port"),
        (lambda d: d.update(bogus={}), "bogus: Extra inputs are not permitted"),
        (lambda d: d["msp"].update(secret="s3cret"), "msp.secret: secrets are never written in app.yaml; set the environment variable HANDOFF_MSP_SECRET"),
        (lambda d: d["slack"].update(bot_token="xoxb-1"), "SLACK_BOT_TOKEN"),
        (lambda d: d["routing"]["rules"][0].update(route="pager"), "routing.rules[0].route: 'pager' is not a route"),
        (lambda d: d.pop("routing"), "routing: missing"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, mutate: object, message: str) -> None:
    data = shipped()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, path=write(tmp_path, data))
    assert message in str(info.value)
    assert "s3cret" not in str(info.value)


def test_bad_environment_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server.port \(from HANDOFF_PORT\)"):
        load_settings(env={"HANDOFF_PORT": "eighty"}, path=APP_YAML)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(env={}, path=tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(env={}, path=write(tmp_path, "server: [unclosed"))
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_settings(env={}, path=write(tmp_path, "- a list"))


def test_extra_admins() -> None:
    assert extra_admins({"HANDOFF_ADMINS": " U1, ,U2 "}) == ["U1", "U2"]
    assert extra_admins({}) == []


def test_oncall_and_business_hours_sections(tmp_path: Path) -> None:
    data = shipped()
    data["business_hours"] = {"timezone": "Europe/Berlin", "weekdays": ["Monday", "tue", "wed"], "open": 510,
                              "close": "17:30", "holidays": ["2026-12-25"]}
    data["oncall"] = {"rotation": {"people": [{"name": "Ana", "slack": "U1"}], "handoff_time": 540,
                                   "timezone": "Europe/Berlin"}}
    settings = load_settings(env={}, path=write(tmp_path, data))
    hours = settings.business_hours
    assert (hours.open, hours.close, hours.weekdays) == ("08:30", "17:30", ["mon", "tue", "wed"])  # YAML 08:30 is 510
    assert settings.oncall.rotation.handoff_time == "09:00"
    assert settings.pager == "chat"
    assert load_settings(env={"PAGERDUTY_ROUTING_KEY": "r" * 32}, path=write(tmp_path, data)).pager == "pagerduty"
    assert load_settings(env={"OPSGENIE_API_KEY": "k"}, path=write(tmp_path, data)).pager == "opsgenie"


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("business_hours", {"timezone": "Mars/Olympus"}, "business_hours.timezone: Value error, unknown IANA time zone"),
        ("business_hours", {"open": "8am"}, "business_hours.open: Value error, '8am' is not a time of day as HH:MM"),
        ("business_hours", {"open": "18:00", "close": "08:00"}, "close (08:00) must be after open (18:00)"),
        ("business_hours", {"weekdays": ["mon", "funday"]}, "unknown weekday(s) ['funday']"),
        ("oncall", {"rotation": {"people": [{"name": "Bo"}]}}, "Bo: give a slack user id, a teams user id, or both"),
        ("oncall", {"overrides": [{"person": "Bo", "start": "2026-12-24T18:00:00", "end": "2026-12-25T08:00:00"}]},
         "need a UTC offset"),
        ("opsgenie", {"api_key": "x"}, "opsgenie.api_key: secrets are never written in app.yaml"),
    ],
)
def test_oncall_config_errors_say_what_to_fix(tmp_path: Path, section: str, value: object, message: str) -> None:
    data = shipped()
    data[section] = value
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, path=write(tmp_path, data))
    assert message in str(err.value)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("server", "port", True, "server.port: Value error, expected a number, not true"),  # pydantic read it as port 1
    ("server", "port", 0, "server.port: Input should be greater than or equal to 1"),
    ("delivery", "max_attempts", False, "delivery.max_attempts: Value error, expected a number, not false"),
    ("msp", "timeout_seconds", True, "msp.timeout_seconds: Value error, expected a number, not true"),
    ("database", "intake_writers", True, "database.intake_writers: Value error, expected a number, not true"),
    ("storm", "window_minutes", True, "storm.window_minutes: Value error, expected a number, not true"),
])
def test_numbers_are_numbers(tmp_path: Path, section: str, key: str, value: object, message: str) -> None:
    data = shipped()
    data.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, path=write(tmp_path, data))
    assert message in str(err.value)


def test_port_zero_from_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"server.port \(from HANDOFF_PORT\): Input should be greater than or equal to 1"):
        load_settings(env={"HANDOFF_PORT": "0"}, path=APP_YAML)


def test_database_url_is_stripped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert load_settings(env={"HANDOFF_DATABASE_URL": f" {url} \n"}, path=APP_YAML).database_url == url
    assert load_settings(env={"HANDOFF_DATABASE_URL": "  "}, path=APP_YAML).database_url.endswith("/handoff.db")


@pytest.mark.parametrize(("var", "value", "key"), [
    ("HANDOFF_MSP_URL", "not a url", "msp.url"),
    ("HANDOFF_MSP_URL", "ftp://x/y", "msp.url"),
    ("HANDOFF_MSP_URL", "https://psa.example.com:99999/hook?token=t0psecret", "msp.url"),
    ("SLACK_API_URL", "slack.com/api/", "slack.api_url"),
    ("PAGERDUTY_EVENTS_URL", "https:///v2/enqueue", "pagerduty.events_url"),
    ("OPSGENIE_API_URL", "api.opsgenie.com", "opsgenie.api_url"),
    ("TEAMS_OPENID_URL", "file:///etc/passwd", "teams.openid_url"),
    ("TEAMS_OAUTH_URL", "http://[::1/token", "teams.oauth_url"),
    ("TEAMS_GRAPH_URL", "graph.microsoft.com", "teams.graph_url"),
    ("TEAMS_CONNECTOR_URL", "https://smba.trafficmanager.net/, mailto:x@y", "teams.connector_urls.1"),
])
def test_outbound_urls_are_checked_at_start(var: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={var: value}, path=APP_YAML)
    assert f"{key} (from {var}): " in str(err.value) and "URL" in str(err.value)
    assert "t0psecret" not in str(err.value)  # a webhook URL may carry a token: not echoed


def test_outbound_urls_in_app_yaml_are_checked(tmp_path: Path) -> None:
    data = shipped()
    data["msp"]["url"] = "psa.example.com/hook"
    with pytest.raises(ConfigError, match=r"msp.url: Value error, must be an http:// or https:// URL with a host"):
        load_settings(env={}, path=write(tmp_path, data))
    data["msp"]["url"] = " https://psa.example.com/hook "
    assert load_settings(env={}, path=write(tmp_path, data)).msp.url == "https://psa.example.com/hook"


@pytest.mark.parametrize(("env", "messages"), [
    ({"SLACK_SIGNING_SECRET": "s"}, ["slack.bot_token: SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not"]),
    ({"SLACK_APP_TOKEN": "xapp-1", "SLACK_SIGNING_SECRET": "s"},
     ["slack.bot_token: SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not"]),
    ({"SLACK_APP_TOKEN": "xapp-1", "SLACK_BOT_TOKEN": "xoxb-1"},
     ["slack.signing_secret: SLACK_APP_TOKEN is set but SLACK_SIGNING_SECRET is not"]),
    ({"SLACK_APP_TOKEN": "xapp-1"}, ["SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not",
                                     "SLACK_APP_TOKEN is set but SLACK_SIGNING_SECRET is not"]),
])
def test_half_set_slack_credentials_are_refused(env: dict[str, str], messages: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env, path=APP_YAML)
    for message in messages:
        assert message in str(err.value)
    assert "xapp-1" not in str(err.value) and "xoxb-1" not in str(err.value)


def test_whole_slack_credentials_load() -> None:
    for env in ({"SLACK_BOT_TOKEN": "xoxb-1"},  # posting only (in-house channel, chat pager)
                {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"},
                {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_APP_TOKEN": "xapp-1"}):
        assert load_settings(env=env, path=APP_YAML).slack.bot_token is not None


def test_duplicate_keys_are_refused_with_their_path_and_line(tmp_path: Path) -> None:
    text = APP_YAML.read_text(encoding="utf-8")
    second_server = text + "\nserver:\n  port: 4000\n"  # PyYAML dropped the first server: section
    lines = len(text.splitlines())
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, path=write(tmp_path, second_server))
    assert f"server: duplicate key at line {lines + 2} (first at line " in str(err.value)

    doubled = ("routing:\n  queues: [{name: q, route: internal}]\n  rules:\n    - id: vpn\n      route: internal\n"
               "      queue: q\n      when:\n        any: [vpn]\n        any: [wifi]\n"
               "    - {id: default, route: internal, queue: q}\n")
    with pytest.raises(ConfigError, match=r"routing\.rules\[0\]\.when\.any: duplicate key at line 9 \(first at line 8\)"):
        load_settings(env={}, path=write(tmp_path, doubled))


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    merged = ("routing:\n  queues: [{name: q, route: internal}]\n  rules:\n"
              "    - &vpn {id: vpn, route: internal, queue: q, when: {any: [vpn]}}\n"
              "    - <<: *vpn\n      id: wifi\n      when: {any: [wifi]}\n"  # keys beside a merge override it
              "    - {id: default, route: internal, queue: q}\n")
    rules = load_settings(env={}, path=write(tmp_path, merged)).ruleset().rules
    assert [r.id for r in rules] == ["vpn", "wifi", "default"]
