"""Who may push: HTTP Basic against the monitor's push credentials, or an HMAC signature."""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

SIGNATURE_HEADER = "X-Keycloak-Signature"  # keycloak-events: hex HMAC of the body


@dataclass(frozen=True)
class PushCredentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    hmac_secret: str | None = field(default=None, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.password or self.hmac_secret)


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def signature(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def authorized(credentials: PushCredentials, headers: Mapping[str, str], body: bytes) -> bool:
    """True when the request proves one configured credential and presents no wrong one."""
    proven = False
    if "Authorization" in headers:
        pair = _basic(headers["Authorization"])
        if pair is None or not credentials.password:
            return False
        # Without a configured user name any is taken: seed 001's emitter is set up with a password only.
        user_ok = _equal(pair[0], credentials.username) if credentials.username else True
        if not (user_ok & _equal(pair[1], credentials.password)):
            return False
        proven = True
    if SIGNATURE_HEADER in headers:
        if not credentials.hmac_secret:
            return False
        given = headers[SIGNATURE_HEADER].strip().lower()
        # keycloak-events signs with HmacSHA256 by default, HmacSHA1 for older configurations.
        if not any(_equal(given, signature(credentials.hmac_secret, body, alg)) for alg in ("sha256", "sha1")):
            return False
        proven = True
    return proven
