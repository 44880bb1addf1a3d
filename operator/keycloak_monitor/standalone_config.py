"""Standalone configuration: a YAML file of monitors, or the seed exporter's variables.

File shape (spec fields as in the CRD; credentials inline or named environment variables):

    port: 9091
    maxRequestsPerKeycloak: 16   # requests in flight to one Keycloak, all monitors together
    monitors:
      - name: shop-customers
        url: https://sso.example.com
        realm: customers
        credentials: {username: monitor, passwordEnv: KC_MONITOR_PASSWORD}
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, Credentials, MonitorKey, MonitorSpec, parse_spec
from .http_pool import DEFAULT_MAX_REQUESTS
from .notify.notifier import NotifySecrets
from .push.auth import PushCredentials

STANDALONE_NAMESPACE = "standalone"
DEFAULT_PORT = 9091
DEFAULT_STATE_DIR = "keycloak-monitor-state"
STATE_DIR_ENV = "KEYCLOAK_MONITOR_STATE_DIR"
CREDENTIAL_FIELDS = {
    "username": "username",
    "password": "password",
    "clientId": "client_id",
    "clientSecret": "client_secret",
}


@dataclass(frozen=True)
class StandaloneMonitor:
    key: MonitorKey
    spec: MonitorSpec
    credentials: Credentials
    push_credentials: PushCredentials | None = None
    notify_secrets: NotifySecrets = field(default_factory=NotifySecrets)


@dataclass(frozen=True)
class StandaloneConfig:
    port: int
    monitors: tuple[StandaloneMonitor, ...]
    state_dir: Path = Path(DEFAULT_STATE_DIR)  # event counts and notification outboxes, files per monitor
    max_requests_per_keycloak: int = DEFAULT_MAX_REQUESTS


def _port(value: Any, field: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(field, f"must be a port number, got {value!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(field, f"must be a port number, got {port}")
    return port


def _positive(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, f"must be a whole number of at least 1, got {value!r}")
    return value


def _secret_value(data: Mapping[str, Any], key: str, path: str, env: Mapping[str, str]) -> str | None:
    if f"{key}Env" in data:
        variable = str(data[f"{key}Env"])
        if variable not in env:
            raise ConfigError(f"{path}.{key}Env", f"environment variable {variable} is not set")
        return env[variable]
    value = data.get(key)
    return None if value is None else str(value)


def _credentials(data: Any, path: str, env: Mapping[str, str]) -> Credentials:
    if not isinstance(data, Mapping):
        raise ConfigError(path, "is required: username/password or clientId/clientSecret")
    creds = Credentials(**{attr: _secret_value(data, key, path, env) for key, attr in CREDENTIAL_FIELDS.items()})
    try:
        creds.validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc.field.removeprefix('credentials.')}", exc.message) from None
    return creds


def _push_credentials(data: Any, path: str, env: Mapping[str, str]) -> PushCredentials:
    """Who may push to this monitor: username/password (HTTP Basic) and/or hmacSecret."""
    if not isinstance(data, Mapping):
        raise ConfigError(path, "is required with events.source push or both")
    creds = PushCredentials(
        username=_secret_value(data, "username", path, env),
        password=_secret_value(data, "password", path, env),
        hmac_secret=_secret_value(data, "hmacSecret", path, env),
    )
    if not creds.configured:
        raise ConfigError(path, "needs a password (with an optional username), or hmacSecret")
    return creds


def _notify_secrets(data: Any, path: str, env: Mapping[str, str]) -> NotifySecrets:
    """The webhook's HMAC key (secret/secretEnv) and the SMTP login (credentials), given inline."""
    section = data.get("notifications") if isinstance(data, Mapping) else None
    if not isinstance(section, Mapping):
        return NotifySecrets()
    webhook, email = section.get("webhook"), section.get("email")
    secret = (
        _secret_value(webhook, "secret", f"{path}.notifications.webhook", env) if isinstance(webhook, Mapping) else None
    )
    login = None
    if isinstance(email, Mapping) and isinstance(email.get("credentials"), Mapping):
        where = f"{path}.notifications.email.credentials"
        user = _secret_value(email["credentials"], "username", where, env)
        password = _secret_value(email["credentials"], "password", where, env)
        if not (user and password):
            raise ConfigError(where, "needs username and password (or passwordEnv)")
        login = (user, password)
    return NotifySecrets(webhook_secret=secret, smtp_login=login)


def _monitor(data: Any, index: int, env: Mapping[str, str]) -> StandaloneMonitor:
    path = f"monitors[{index}]"
    if not isinstance(data, Mapping):
        raise ConfigError(path, "must be an object")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}.name", "is required")
    spec_data = {k: v for k, v in data.items() if k not in ("name", "namespace", "credentials", "pushCredentials")}
    try:
        spec = parse_spec(spec_data)
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc.field}", exc.message) from None
    namespace = str(data.get("namespace") or STANDALONE_NAMESPACE)
    push = None
    if spec.events_source != "poll":
        push = _push_credentials(data.get("pushCredentials"), f"{path}.pushCredentials", env)
    return StandaloneMonitor(
        MonitorKey(namespace, name),
        spec,
        _credentials(data.get("credentials"), f"{path}.credentials", env),
        push,
        _notify_secrets(data, path, env),
    )


def parse_config(data: Any, env: Mapping[str, str]) -> StandaloneConfig:
    if not isinstance(data, Mapping):
        raise ConfigError("(file)", "must be a YAML mapping with a 'monitors' list")
    monitors = data.get("monitors")
    if not isinstance(monitors, list) or not monitors:
        raise ConfigError("monitors", "must be a non-empty list")
    parsed = tuple(_monitor(m, i, env) for i, m in enumerate(monitors))
    keys = [m.key for m in parsed]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError("monitors", f"name '{key.name}' is used twice in namespace '{key.namespace}'")
    return StandaloneConfig(
        port=_port(data.get("port", DEFAULT_PORT), "port"),
        monitors=parsed,
        # The environment variable wins over the file (and --state-dir over both, in cli).
        state_dir=Path(str(env.get(STATE_DIR_ENV) or data.get("stateDir") or DEFAULT_STATE_DIR)),
        max_requests_per_keycloak=_positive(
            data.get("maxRequestsPerKeycloak", DEFAULT_MAX_REQUESTS), "maxRequestsPerKeycloak"
        ),
    )


def load_config_file(path: Path, env: Mapping[str, str]) -> StandaloneConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"is not valid YAML: {exc}") from None
    return parse_config(data, env)


def config_from_env(env: Mapping[str, str]) -> StandaloneConfig:
    """The seed exporter's variables define one monitor, so its users switch in one step."""
    missing = [v for v in ("KEYCLOAK_URL", "KEYCLOAK_REALM") if not env.get(v)]
    if missing:
        raise ConfigError(missing[0], "is not set (or pass --config FILE)")
    spec: dict[str, Any] = {"url": env["KEYCLOAK_URL"], "realm": env["KEYCLOAK_REALM"]}
    optional = {"KEYCLOAK_AUTH_REALM": "authRealm", "KEYCLOAK_INTERVAL": "interval", "KEYCLOAK_TIMEOUT": "timeout"}
    spec.update({field: env[var] for var, field in optional.items() if env.get(var)})
    credentials = {
        "username": env.get("KEYCLOAK_ADMIN_USER"),
        "password": env.get("KEYCLOAK_ADMIN_PASSWORD"),
        "clientId": env.get("KEYCLOAK_CLIENT_ID"),
        "clientSecret": env.get("KEYCLOAK_CLIENT_SECRET"),
    }
    monitor = {"name": env["KEYCLOAK_REALM"], **spec, "credentials": {k: v for k, v in credentials.items() if v}}
    try:
        config = parse_config({"monitors": [monitor], "port": env.get("EXPORTER_PORT", DEFAULT_PORT)}, env)
    except ConfigError as exc:
        raise ConfigError(_env_name(exc.field), exc.message) from None
    return config


def _env_name(field: str) -> str:
    """Name the variable behind a field, since that is what the user set."""
    names = {
        "url": "KEYCLOAK_URL",
        "realm": "KEYCLOAK_REALM",
        "authRealm": "KEYCLOAK_AUTH_REALM",
        "interval": "KEYCLOAK_INTERVAL",
        "timeout": "KEYCLOAK_TIMEOUT",
        "password": "KEYCLOAK_ADMIN_PASSWORD",
        "credentials": "KEYCLOAK_ADMIN_USER/KEYCLOAK_ADMIN_PASSWORD",
        "port": "EXPORTER_PORT",
    }
    leaf = field.rsplit(".", 1)[-1]
    return names.get(leaf, field)
