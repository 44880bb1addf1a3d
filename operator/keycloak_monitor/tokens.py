"""Access tokens for the Admin API: cached, renewed before expiry, re-issued when refresh fails.

Each password grant opens a real session in the auth realm, so the token is reused and
refreshed rather than re-issued per collection, and the session is ended on close. One
token serves every monitor that logs in with the same account on the same Keycloak: it is
renewed once for all of them, and a rejected one is dropped for all of them.
"""

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from .config import Credentials
from .errors import CollectionError, Reason
from .far_side import clean

TOKEN_ENDPOINT = "token"
LOGOUT_ENDPOINT = "logout"
DEFAULT_PUBLIC_CLIENT = "admin-cli"

# (method, URL, endpoint label, form data) -> response; counts the request on the calling
# monitor and turns transport failures into CollectionError.
Send = Callable[[str, str, str, dict[str, str]], Awaitable[httpx.Response]]

# Secrets are compared through a keyed digest: equal secrets share a token, a rotated or
# different one never does, and the key is per process so a digest reveals nothing elsewhere.
_DIGEST_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class Account:
    """Who a token belongs to: monitors with equal accounts share one token."""

    url: str
    auth_realm: str
    grant: str
    client_id: str
    username: str
    secret_digest: bytes = field(repr=False)

    @classmethod
    def of(cls, url: str, auth_realm: str, creds: Credentials) -> "Account":
        secret = "\0".join((creds.password or "", creds.client_secret or "")).encode()
        digest = hmac.new(_DIGEST_KEY, secret, hashlib.sha256).digest()
        return cls(url, auth_realm, creds.grant, creds.client_id or "", creds.username or "", digest)


@dataclass
class Token:
    access: str = field(repr=False)
    expires_at: float
    lifetime: float
    refresh: str | None = field(default=None, repr=False)
    refresh_expires_at: float | None = None

    def fresh(self, now: float) -> bool:
        # Renew with a fifth of the lifetime left (at most 30 s), so a token never expires
        # in flight even when a realm sets lifespans of a few seconds.
        margin = min(30.0, self.lifetime * 0.2)
        return now < self.expires_at - margin

    def refreshable(self, now: float) -> bool:
        return bool(self.refresh) and (self.refresh_expires_at is None or now < self.refresh_expires_at - 1)


def _client_fields(creds: Credentials) -> dict[str, str]:
    data = {"client_id": creds.client_id or DEFAULT_PUBLIC_CLIENT}
    if creds.client_secret:
        data["client_secret"] = creds.client_secret
    return data


class TokenProvider:
    """The token of one account, for every monitor using it; each request goes through the
    `send` of the monitor that needs it, so it is counted there and obeys its timeout."""

    def __init__(self, base_url: str, auth_realm: str, creds: Credentials) -> None:
        self._base_url = base_url
        self._auth_realm = auth_realm
        self._creds = creds
        self._url = f"{base_url}/realms/{quote(auth_realm, safe='')}/protocol/openid-connect"
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self._logins = 0  # logins answered so far
        self._rejected: CollectionError | None = None  # why the last login was refused

    def invalidate(self, access: str) -> None:
        """Forget this access token (answered 401); a refresh token, if any, is tried next.
        A token renewed meanwhile by another monitor stays."""
        if self._token and self._token.access == access:
            self._token.expires_at = 0.0

    async def access_token(self, send: Send) -> str:
        logins = self._logins
        async with self._lock:
            if self._rejected is not None and self._logins != logins:
                # Refused while we waited: the same credentials would be refused again, so
                # the requests waiting on one account do not send one (failed) login each.
                raise self._rejected
            now = time.monotonic()
            if self._token and self._token.fresh(now):
                return self._token.access
            if self._token and self._token.refreshable(now):
                refreshed = await self._grant(
                    send,
                    {"grant_type": "refresh_token", "refresh_token": self._token.refresh or ""},
                    tolerate_rejection=True,
                )
                if refreshed:
                    self._token = refreshed
                    return refreshed.access
            self._token, self._rejected = None, None
            try:
                self._token = await self._grant(send, self._login_fields(self._creds))
            except CollectionError as exc:
                if exc.reason is Reason.AUTH:
                    self._rejected = exc
                raise
            finally:
                # Answered, not begun: a request that began waiting during a login takes its
                # answer (a caller cancelled meanwhile does not stop the login it started).
                self._logins += 1
            assert self._token is not None
            return self._token.access

    @staticmethod
    def _login_fields(creds: Credentials) -> dict[str, str]:
        if creds.grant == "password":
            return {
                "grant_type": "password",
                "username": creds.username or "",
                "password": creds.password or "",
            }
        return {"grant_type": "client_credentials"}

    async def _grant(self, send: Send, fields: dict[str, str], tolerate_rejection: bool = False) -> Token | None:
        started = time.monotonic()
        data = {**fields, **_client_fields(self._creds)}
        response = await send("POST", f"{self._url}/token", TOKEN_ENDPOINT, data)
        if response.status_code == 200:
            return self._parse(response, started)
        if tolerate_rejection and response.status_code in (400, 401):
            return None  # refresh token expired or revoked: fall back to a new login
        raise self._rejection(response, self._creds)

    def _parse(self, response: httpx.Response, started: float) -> Token:
        try:
            body = response.json()
            lifetime = float(body["expires_in"])
            refresh_in = body.get("refresh_expires_in")
            return Token(
                access=str(body["access_token"]),
                expires_at=started + lifetime,
                lifetime=lifetime,
                refresh=body.get("refresh_token"),
                refresh_expires_at=started + float(refresh_in) if refresh_in else None,
            )
        except (ValueError, KeyError, TypeError):
            raise CollectionError(
                Reason.INVALID_RESPONSE,
                f"token endpoint of realm '{self._auth_realm}' at {self._base_url} answered 200 without a usable token",
            ) from None

    def _rejection(self, response: httpx.Response, creds: Credentials) -> CollectionError:
        code = response.status_code
        if code == 404:
            return CollectionError(
                Reason.NOT_FOUND,
                f"realm '{self._auth_realm}' (authRealm) not found at {self._base_url}",
            )
        if code >= 500:
            return CollectionError(Reason.SERVER_ERROR, f"token endpoint of realm '{self._auth_realm}' answered {code}")
        detail = _oauth_error(response)
        who = f"user '{creds.username}'" if creds.grant == "password" else f"client '{creds.client_id}'"
        return CollectionError(Reason.AUTH, f"credentials of {who} rejected by realm '{self._auth_realm}' ({detail})")

    async def close(self, send: Send) -> None:
        """End our session in Keycloak (by its last user); best effort, a failure must not block a shutdown."""
        async with self._lock:
            token, self._token = self._token, None
            if not token or not token.refresh:
                return
            with contextlib.suppress(CollectionError):
                await send(
                    "POST",
                    f"{self._url}/logout",
                    LOGOUT_ENDPOINT,
                    {"refresh_token": token.refresh, **_client_fields(self._creds)},
                )


def oauth_error_body(response: httpx.Response) -> dict[str, Any]:
    """Keycloak's error object ({"error": ..., "error_description": ...}), or {} if none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _oauth_error(response: httpx.Response) -> str:
    """Keycloak's error and error_description: they name the problem, never the secret."""
    body = oauth_error_body(response)
    parts = [str(body[k]) for k in ("error", "error_description") if body.get(k)]
    return clean(": ".join(parts)) or f"HTTP {response.status_code}"
