"""Standalone mode's protection of /metrics, in Prometheus' own web-config file format
(the `--web.config.file` of Prometheus and its exporters):

    tls_server_config: {cert_file: server.crt, key_file: server.key}
    basic_auth_users: {prometheus: $2y$10$...}   # bcrypt hashes, e.g. from htpasswd -nBC 10

Relative paths are relative to the file.
"""

import base64
import binascii
import hashlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from .config import ConfigError
from .metrics_tls import server_context


@dataclass(frozen=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash

    async def __call__(self, request: web.Request) -> web.Response | None:
        """None lets the request through; otherwise a 401 asking for Basic credentials."""
        if not self.users:
            return None
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic" and self._valid(encoded.strip()):
            return None
        return web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="metrics"'})

    def _valid(self, encoded: str) -> bool:
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        # An unknown user costs a bcrypt check too, so timing does not tell names apart.
        candidate = hashed or _DUMMY_HASH
        return bcrypt.checkpw(password.encode(), candidate) and hashed is not None


_DUMMY_HASH = bcrypt.hashpw(hashlib.sha256(b"keycloak-monitor").digest(), bcrypt.gensalt(rounds=10))


def load_web_config(path: Path) -> WebConfig:
    try:
        data: Any = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("--web-config-file", f"cannot read {path}: {type(exc).__name__}") from None
    if not isinstance(data, Mapping):
        raise ConfigError("--web-config-file", "must be a mapping")
    context = None
    tls = data.get("tls_server_config")
    if tls is not None:
        if not isinstance(tls, Mapping) or not tls.get("cert_file") or not tls.get("key_file"):
            raise ConfigError("tls_server_config", "needs cert_file and key_file")
        try:
            context = server_context(path.parent / str(tls["cert_file"]), path.parent / str(tls["key_file"]))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("tls_server_config", f"cannot load the certificate: {type(exc).__name__}") from None
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v.startswith("$2") for k, v in users.items()
    ):
        raise ConfigError("basic_auth_users", "must map user names to bcrypt hashes")
    return WebConfig(ssl_context=context, users={k: v.encode() for k, v in users.items()})
