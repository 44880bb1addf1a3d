"""The monitor spec (same field names as the CRD) parsed into immutable, validated values.

The CRD validates at apply time; this module validates again because standalone files and
pre-CRD objects reach the collector without the apiserver's help.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .durations import parse_duration

MIN_INTERVAL = 5.0
MAX_PER_USER_LIMIT = 10_000


class ConfigError(ValueError):
    """A bad field: `field` is its dotted path, so the message can name it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class MonitorKey:
    """Identity of a monitor; its labels on every series."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class PerUserConfig:
    enabled: bool = False
    limit: int = 100
    include_email: bool = False


@dataclass(frozen=True)
class SecretRef:
    """Where the operator finds credentials; the key names are overridable."""

    name: str
    username_key: str = "username"
    password_key: str = "password"
    client_id_key: str = "clientId"
    client_secret_key: str = "clientSecret"


@dataclass(frozen=True)
class PushSecretRef:
    """The Secret whose keys authenticate pushed events (HTTP Basic and/or an HMAC secret)."""

    name: str
    username_key: str = "username"
    password_key: str = "password"
    hmac_secret_key: str = "hmacSecret"


EVENT_SOURCES = ("poll", "push", "both")
SMTP_SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: tuple[str, str] | None = None  # (Secret name, key) of the HMAC key; the operator resolves it


@dataclass(frozen=True)
class EmailTarget:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    security: str = "starttls"
    credentials_secret: tuple[str, str, str] | None = None  # (Secret name, username key, password key)
    console_url: str | None = None  # admin console base for links; spec.url when unset


@dataclass(frozen=True)
class NotificationsSpec:
    user_events: frozenset[str] = frozenset({"REGISTER"})
    admin_events: frozenset[tuple[str, str]] = frozenset()  # (operation, resource type); "*" matches any
    webhook: WebhookTarget | None = None
    email: EmailTarget | None = None

    def wants(self, kind: str, event: Mapping[str, Any]) -> bool:
        if kind == "user":
            return str(event.get("type")) in self.user_events
        operation, resource = str(event.get("operationType")), str(event.get("resourceType"))
        return any(o in ("*", operation) and r in ("*", resource) for o, r in self.admin_events)


@dataclass(frozen=True)
class MonitorSpec:
    url: str
    realm: str
    auth_realm: str = "master"
    interval: float = 30.0
    timeout: float = 10.0
    tls: TLSConfig = field(default_factory=TLSConfig)
    offline_sessions: bool = True
    session_details: bool = True  # list sessions for users, connected users and ages (costs grow with the realm)
    user_events: bool = True
    admin_events: bool = True
    per_user: PerUserConfig = field(default_factory=PerUserConfig)
    credentials_secret: SecretRef | None = None
    ca_secret: tuple[str, str] | None = None  # (secret name, key); the operator resolves it
    events_source: str = "poll"  # poll the Admin API, take pushed events, or both (each counted once)
    push_secret: PushSecretRef | None = None
    notifications: NotificationsSpec | None = None


@dataclass(frozen=True)
class Credentials:
    """Either a user (password grant) or a service-account client (client_credentials)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)

    @property
    def grant(self) -> str:
        return "password" if self.username else "client_credentials"

    def validate(self) -> None:
        if self.username:
            if not self.password:
                raise ConfigError("credentials.password", "required with a username")
        elif not (self.client_id and self.client_secret):
            raise ConfigError(
                "credentials",
                "need username/password, or clientId/clientSecret of a service account",
            )


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(name, "must be an object")
    return value


def _bool(data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {value!r}")
    return value


def _str(data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "is required" if value is None else "must be a non-empty string")
    return value.strip()


def _realm_name(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    """A realm name goes into URL paths (quoted there): no path, query or fragment of its own."""
    name = _str(data, key, key, default)
    if name in (".", "..") or any(c in name for c in "/?#"):
        raise ConfigError(key, "must be a realm name: no /, ? or #, and not . or ..")
    return name


def _duration(data: Mapping[str, Any], key: str, default: str) -> float:
    try:
        return parse_duration(data.get(key, default))
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def _url(data: Mapping[str, Any]) -> str:
    url = _str(data, "url", "url")
    parts = urlsplit(url)
    if "@" in parts.netloc:  # never echoed: the part before @ may be a password
        raise ConfigError("url", "must not carry user:password@; credentials belong in credentialsSecret")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("url", f"must be an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def _per_user(data: Mapping[str, Any]) -> PerUserConfig:
    section = _section(data, "perUser")
    limit = section.get("limit", 100)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PER_USER_LIMIT:
        raise ConfigError("perUser.limit", f"must be an integer from 1 to {MAX_PER_USER_LIMIT}")
    return PerUserConfig(
        enabled=_bool(section, "enabled", "perUser.enabled", False),
        limit=limit,
        include_email=_bool(section, "includeEmail", "perUser.includeEmail", False),
    )


def _secret_ref(data: Mapping[str, Any]) -> SecretRef | None:
    section = data.get("credentialsSecret")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError("credentialsSecret", "must be an object")
    path = "credentialsSecret"
    return SecretRef(
        name=_str(section, "name", f"{path}.name"),
        username_key=_str(section, "usernameKey", f"{path}.usernameKey", "username"),
        password_key=_str(section, "passwordKey", f"{path}.passwordKey", "password"),
        client_id_key=_str(section, "clientIdKey", f"{path}.clientIdKey", "clientId"),
        client_secret_key=_str(section, "clientSecretKey", f"{path}.clientSecretKey", "clientSecret"),
    )


def _tls(data: Mapping[str, Any]) -> tuple[TLSConfig, tuple[str, str] | None]:
    section = _section(data, "tls")
    insecure = _bool(section, "insecureSkipVerify", "tls.insecureSkipVerify", False)
    ca_file = section.get("caFile")
    if ca_file is not None and not isinstance(ca_file, str):
        raise ConfigError("tls.caFile", "must be a path")
    ca_secret = None
    if section.get("caSecret") is not None:
        ref = section["caSecret"]
        if not isinstance(ref, Mapping):
            raise ConfigError("tls.caSecret", "must be an object")
        ca_secret = (_str(ref, "name", "tls.caSecret.name"), _str(ref, "key", "tls.caSecret.key", "ca.crt"))
    return TLSConfig(ca_file=ca_file, insecure_skip_verify=insecure), ca_secret


def _push_secret(events: Mapping[str, Any]) -> PushSecretRef | None:
    ref = events.get("pushSecret")
    if ref is None:
        return None
    if not isinstance(ref, Mapping):
        raise ConfigError("events.pushSecret", "must be an object")
    path = "events.pushSecret"
    return PushSecretRef(
        name=_str(ref, "name", f"{path}.name"),
        username_key=_str(ref, "usernameKey", f"{path}.usernameKey", "username"),
        password_key=_str(ref, "passwordKey", f"{path}.passwordKey", "password"),
        hmac_secret_key=_str(ref, "hmacSecretKey", f"{path}.hmacSecretKey", "hmacSecret"),
    )


def _strings(data: Mapping[str, Any], key: str, path: str, default: list[str]) -> list[str]:
    value = data.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(path, "must be a list of strings")
    return value


def _webhook(data: Any) -> WebhookTarget | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ConfigError("notifications.webhook", "must be an object")
    url = _str(data, "url", "notifications.webhook.url")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError("notifications.webhook.url", f"must be an http:// or https:// URL, got {url!r}")
    secret = None
    if isinstance(data.get("secret"), Mapping):
        ref = data["secret"]
        path = "notifications.webhook.secret"
        secret = (_str(ref, "name", f"{path}.name"), _str(ref, "key", f"{path}.key", "hmacSecret"))
    return WebhookTarget(url=url, secret=secret)


def _email(data: Any) -> EmailTarget | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ConfigError("notifications.email", "must be an object")
    path = "notifications.email"
    port = data.get("port", 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{path}.port", f"must be a port number, got {port!r}")
    security = data.get("security", "starttls")
    if security not in SMTP_SECURITY:
        raise ConfigError(f"{path}.security", f"must be one of {', '.join(SMTP_SECURITY)}, got {security!r}")
    to = data.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(t, str) and "@" in t for t in to):
        raise ConfigError(f"{path}.to", "must be a list of e-mail addresses")
    credentials = None
    if isinstance(data.get("credentialsSecret"), Mapping):
        ref = data["credentialsSecret"]
        credentials = (
            _str(ref, "name", f"{path}.credentialsSecret.name"),
            _str(ref, "usernameKey", f"{path}.credentialsSecret.usernameKey", "username"),
            _str(ref, "passwordKey", f"{path}.credentialsSecret.passwordKey", "password"),
        )
    console = data.get("consoleUrl")
    return EmailTarget(
        host=_str(data, "host", f"{path}.host"),
        sender=_str(data, "from", f"{path}.from"),
        to=tuple(to),
        port=port,
        security=str(security),
        credentials_secret=credentials,
        console_url=str(console).rstrip("/") if console else None,
    )


def _notifications(data: Mapping[str, Any]) -> NotificationsSpec | None:
    section = data.get("notifications")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError("notifications", "must be an object")
    admin = []
    for item in _strings(section, "adminEvents", "notifications.adminEvents", []):
        operation, sep, resource = item.partition("/")
        if not sep or not operation or not resource:
            raise ConfigError("notifications.adminEvents", f"entries are OPERATION/RESOURCE_TYPE, got {item!r}")
        admin.append((operation, resource))
    spec = NotificationsSpec(
        user_events=frozenset(_strings(section, "userEvents", "notifications.userEvents", ["REGISTER"])),
        admin_events=frozenset(admin),
        webhook=_webhook(section.get("webhook")),
        email=_email(section.get("email")),
    )
    if spec.webhook is None and spec.email is None:
        raise ConfigError("notifications", "needs a webhook or an email target")
    return spec


def _source(events: Mapping[str, Any]) -> str:
    source = events.get("source", "poll")
    if source not in EVENT_SOURCES:
        raise ConfigError("events.source", f"must be one of {', '.join(EVENT_SOURCES)}, got {source!r}")
    return str(source)


def parse_spec(data: Mapping[str, Any]) -> MonitorSpec:
    """Parse a CRD-shaped spec; raise ConfigError naming the first bad field."""
    if not isinstance(data, Mapping):
        raise ConfigError("spec", "must be an object")
    interval = _duration(data, "interval", "30s")
    timeout = _duration(data, "timeout", "10s")
    if interval < MIN_INTERVAL:
        raise ConfigError("interval", f"must be at least {MIN_INTERVAL:g}s")
    if not 0 < timeout < interval:
        raise ConfigError("timeout", "must be positive and shorter than interval")
    tls, ca_secret = _tls(data)
    sessions = _section(data, "sessions")
    events = _section(data, "events")
    return MonitorSpec(
        url=_url(data),
        realm=_realm_name(data, "realm"),
        auth_realm=_realm_name(data, "authRealm", "master"),
        interval=interval,
        timeout=timeout,
        tls=tls,
        offline_sessions=_bool(sessions, "offline", "sessions.offline", True),
        session_details=_bool(sessions, "details", "sessions.details", True),
        user_events=_bool(events, "user", "events.user", True),
        admin_events=_bool(events, "admin", "events.admin", True),
        per_user=_per_user(data),
        credentials_secret=_secret_ref(data),
        ca_secret=ca_secret,
        events_source=_source(events),
        push_secret=_push_secret(events),
        notifications=_notifications(data),
    )
