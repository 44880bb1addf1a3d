"""Bad configuration is refused with the field named; good configuration means what it says."""

import pytest

from keycloak_monitor.cli import main
from keycloak_monitor.config import ConfigError, parse_spec
from keycloak_monitor.durations import parse_duration
from keycloak_monitor.standalone_config import config_from_env, parse_config

BASE = {"url": "https://sso.example.com/", "realm": "customers"}


def test_defaults_match_the_crd():
    spec = parse_spec(BASE)
    assert (spec.url, spec.auth_realm, spec.interval, spec.timeout) == ("https://sso.example.com", "master", 30, 10)
    assert spec.offline_sessions and spec.user_events and spec.admin_events
    assert not spec.per_user.enabled and spec.per_user.limit == 100 and not spec.tls.insecure_skip_verify


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"realm": ""}, "realm"),
        ({"interval": "0s"}, "interval"),
        ({"interval": "soon"}, "interval"),
        ({"timeout": "40s"}, "timeout"),
        ({"perUser": {"limit": 1_000_000}}, "perUser.limit"),
        ({"perUser": {"enabled": "yes"}}, "perUser.enabled"),
        ({"tls": {"caSecret": {}}}, "tls.caSecret.name"),
    ],
)
def test_bad_spec_names_the_field(change, field):
    with pytest.raises(ConfigError) as err:
        parse_spec({**BASE, **change})
    assert err.value.field == field


def test_go_durations():
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2h") == 7200
    with pytest.raises(ValueError):
        parse_duration("1d")


def test_file_credentials_come_inline_or_from_the_environment():
    config = parse_config(
        {
            "port": 9100,
            "maxRequestsPerKeycloak": 4,
            "monitors": [
                {**BASE, "name": "a", "credentials": {"username": "u", "passwordEnv": "PW"}},
                {**BASE, "name": "b", "credentials": {"clientId": "svc", "clientSecret": "x"}},
            ],
        },
        {"PW": "from-env"},
    )
    assert config.port == 9100 and config.max_requests_per_keycloak == 4
    assert config.monitors[0].credentials.password == "from-env"
    assert config.monitors[1].credentials.grant == "client_credentials"
    assert str(config.monitors[0].key) == "standalone/a"


@pytest.mark.parametrize(
    ("monitor", "env", "field"),
    [
        (
            {**BASE, "name": "a", "credentials": {"username": "u", "passwordEnv": "PW"}},
            {},
            "monitors[0].credentials.passwordEnv",
        ),
        ({**BASE, "name": "a", "credentials": {"username": "u"}}, {}, "monitors[0].credentials.password"),
        ({**BASE, "name": "a"}, {}, "monitors[0].credentials"),
        ({"realm": "r", "name": "a", "credentials": {"clientId": "c", "clientSecret": "s"}}, {}, "monitors[0].url"),
    ],
)
def test_bad_file_names_the_field(monitor, env, field):
    with pytest.raises(ConfigError) as err:
        parse_config({"monitors": [monitor]}, env)
    assert err.value.field == field


@pytest.mark.parametrize("bound", [0, -1, "8", True])
def test_the_bound_on_requests_per_keycloak_is_a_positive_number(bound):
    monitor = {**BASE, "name": "a", "credentials": {"clientId": "c", "clientSecret": "s"}}
    with pytest.raises(ConfigError) as err:
        parse_config({"maxRequestsPerKeycloak": bound, "monitors": [monitor]}, {})
    assert err.value.field == "maxRequestsPerKeycloak"


def test_the_seed_exporters_variables_define_one_monitor():
    config = config_from_env(
        {
            "KEYCLOAK_URL": "http://kc:8080",
            "KEYCLOAK_REALM": "shop",
            "KEYCLOAK_ADMIN_USER": "admin",
            "KEYCLOAK_ADMIN_PASSWORD": "pw",
            "EXPORTER_PORT": "9200",
        }
    )
    (monitor,) = config.monitors
    assert (config.port, monitor.spec.url, monitor.spec.realm, monitor.key.name) == (
        9200,
        "http://kc:8080",
        "shop",
        "shop",
    )
    assert monitor.credentials.username == "admin"


def test_a_missing_variable_is_named():
    with pytest.raises(ConfigError) as err:
        config_from_env({"KEYCLOAK_URL": "http://kc", "KEYCLOAK_REALM": "r", "KEYCLOAK_ADMIN_USER": "a"})
    assert err.value.field == "KEYCLOAK_ADMIN_PASSWORD"


def test_the_command_exits_non_zero_on_a_bad_file(tmp_path, capsys):
    path = tmp_path / "monitors.yaml"
    path.write_text("monitors:\n  - name: a\n    url: ftp://nope\n    realm: r\n")
    assert main(["standalone", "--config", str(path)]) == 2
    assert "monitors[0].url" in capsys.readouterr().err
