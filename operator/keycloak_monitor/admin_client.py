"""Async client of one realm's Admin REST API: auth, limits, request accounting, error causes."""

import asyncio
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from .config import Credentials, MonitorSpec
from .errors import CollectionError, Reason
from .far_side import clean
from .http_pool import HttpPools
from .targets import TargetPolicy
from .tokens import Account, TokenProvider, oauth_error_body

# Requests in flight per monitor: enough to overlap latency, few enough that one monitor
# leaves most of its Keycloak's shared slots (http_pool.DEFAULT_MAX_REQUESTS) to the others.
MAX_CONCURRENT_REQUESTS = 4

# The realm-management role whose absence explains a 403 on each endpoint (as Keycloak 26
# checks them; view-users includes query-users).
REQUIRED_ROLE = {
    "/events/config": "view-events",
    "/client-session-stats": "view-realm",
    "/clients": "view-clients",
    "/clients/{id}/user-sessions": "view-clients",
    "/users/count": "view-users",
    "/users/{id}": "view-users",
    "/events": "view-events",
    "/admin-events": "view-events",
}

RequestObserver = Callable[[str, str], None]  # (endpoint template, code)


class AdminClient:
    """A monitor's view of a shared pool: its own credentials, limits, timeout and accounting."""

    def __init__(
        self,
        spec: MonitorSpec,
        observe: RequestObserver,
        *,
        pools: HttpPools | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        targets: TargetPolicy | None = None,
    ) -> None:
        self.spec = spec
        self._observe = observe
        self._transport = transport
        self._targets = targets or TargetPolicy()
        self._pools = HttpPools() if pools is None else pools  # alone: a pool of its own
        self._ca_data: str | None = None
        self._pool = self._pools.acquire(spec, self._targets, transport=transport)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._credentials: Credentials | None = None
        self._account: Account | None = None  # of self._tokens, in self._pool
        self._tokens: TokenProvider | None = None
        self._realm_url = f"{spec.url}/admin/realms/{quote(spec.realm, safe='')}"

    @property
    def admission(self) -> asyncio.Semaphore:
        """A place among the collections under way at this Keycloak. Hundreds of monitors
        started at once would otherwise share the request slots so thinly that every one of
        them outruns its budget, together, again each interval."""
        return self._pool.limits.collections

    async def use_credentials(self, credentials: Credentials) -> None:
        """Credentials are read before every collection, so a rotated Secret applies at once:
        other credentials mean another account, so another token."""
        self._credentials = credentials
        account = Account.of(self.spec.url, self.spec.auth_realm, credentials)
        if account != self._account:
            await self._leave_account()
            self._tokens = self._pool.tokens.acquire(
                account, lambda: TokenProvider(self.spec.url, self.spec.auth_realm, credentials)
            )
            self._account = account

    async def use_ca(self, ca_data: str | None) -> None:
        """A rotated CA bundle needs other connections: verification happens at handshake."""
        if ca_data != self._ca_data:
            pool = self._pools.acquire(self.spec, self._targets, ca_data, self._transport)
            await self._leave_account()  # tokens live in their pool
            previous, self._pool, self._ca_data = self._pool, pool, ca_data
            await self._pools.release(previous)
            if self._credentials is not None:
                await self.use_credentials(self._credentials)

    async def _leave_account(self) -> None:
        """The last monitor of an account ends its Keycloak session."""
        if self._account is not None:
            account, self._account, self._tokens = self._account, None, None
            provider = self._pool.tokens.release(account)
            if provider is not None:
                await provider.close(self._send_form)

    async def aclose(self) -> None:
        try:
            await self._leave_account()
        finally:
            await self._pools.release(self._pool)

    async def get(self, template: str, params: dict[str, Any] | None = None, **ids: str) -> Any:
        """GET a realm endpoint by its route template; one renewal and retry on 401."""
        tokens = self._tokens
        if tokens is None:
            raise CollectionError(Reason.CONFIG, "no credentials configured")
        url = self._realm_url + template.format(**ids)
        for attempt in (1, 2):
            token = await tokens.access_token(self._send_form)
            response = await self._request(
                "GET",
                url,
                template,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 401 and attempt == 1:
                tokens.invalidate(token)  # for every monitor of this account
                continue
            return self._decode(response, template)
        raise AssertionError("unreachable")

    async def _send_form(self, method: str, url: str, endpoint: str, data: dict[str, str]) -> httpx.Response:
        return await self._request(method, url, endpoint, data=data)

    async def _request(self, method: str, url: str, endpoint: str, **kwargs: Any) -> httpx.Response:
        # This monitor's share first, then the Keycloak's (in send): a monitor waiting for a
        # slot of its own never holds one of the slots all monitors of that Keycloak share.
        async with self._slots:
            try:
                response = await self._pool.send(method, url, timeout=self.spec.timeout, **kwargs)
            except httpx.TimeoutException:
                self._observe(endpoint, "timeout")
                raise CollectionError(
                    Reason.TIMEOUT,
                    f"{self.spec.url} did not answer {endpoint} within {self.spec.timeout:g}s",
                ) from None
            except httpx.TransportError as exc:
                self._observe(endpoint, "error")
                raise CollectionError(Reason.CONNECT, self._transport_message(exc)) from None
        self._observe(endpoint, str(response.status_code))
        return response

    def _transport_message(self, exc: httpx.TransportError) -> str:
        cause = exc.__context__ or exc.__cause__
        detail = clean(exc) or type(exc).__name__
        if isinstance(cause, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return f"TLS verification of {self.spec.url} failed: {detail} (set tls.caSecret)"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect to {self.spec.url}: {detail}"
        return f"connection to {self.spec.url} broke: {detail}"

    def _decode(self, response: httpx.Response, template: str) -> Any:
        code = response.status_code
        if code == 200:
            try:
                return response.json()
            except ValueError:
                raise CollectionError(
                    Reason.INVALID_RESPONSE, f"{template} answered 200 with a body that is not JSON"
                ) from None
        realm, url = self.spec.realm, self.spec.url
        if code == 401:
            raise CollectionError(Reason.AUTH, f"the Admin API rejected our token twice on {template}")
        if code == 403:
            role = REQUIRED_ROLE.get(template, "view-realm")
            raise CollectionError(
                Reason.FORBIDDEN,
                f"missing realm-management role {role} in realm '{realm}' (needed for {template})",
            )
        if code == 404:
            raise CollectionError(
                Reason.NOT_FOUND,
                f"realm '{realm}' not found at {url} ({template} answered 404; "
                "servers before Keycloak 17 need /auth in the URL)",
            )
        if code >= 500:
            raise CollectionError(Reason.SERVER_ERROR, f"{template} answered {code}")
        if code == 400 and oauth_error_body(response).get("error") == "unknown_error":
            # Keycloak's handler of exceptions it did not foresee: a failure on its side
            # (e.g. sorting sessions that change meanwhile), not a request it refused.
            raise CollectionError(
                Reason.SERVER_ERROR, f"{template} failed inside Keycloak (400 unknown_error; its debug log says why)"
            )
        raise CollectionError(Reason.INVALID_RESPONSE, f"{template} answered unexpected {code}")

    async def get_pages(
        self, template: str, page_size: int, params: dict[str, Any] | None = None, **ids: str
    ) -> list[Any]:
        """Every item of a first/max paged list, page after page until one comes back short."""
        base = dict(params or {})
        items: list[Any] = []
        while True:
            body = await self.get(template, {**base, "first": len(items), "max": page_size}, **ids)
            if not isinstance(body, list):
                raise CollectionError(Reason.INVALID_RESPONSE, f"{template} did not answer a list")
            items.extend(body)
            if len(body) < page_size:
                return items
