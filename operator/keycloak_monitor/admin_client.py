"""Async client of one realm's Admin REST API: auth, limits, request accounting, error causes."""

import asyncio
import functools
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from .config import Credentials, MonitorSpec
from .errors import CollectionError, Reason
from .far_side import clean
from .targets import TargetPolicy, guarded_transport
from .tasks import all_of
from .tokens import TokenProvider

# Requests in flight per monitor: enough to overlap latency, few enough to spare Keycloak.
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


@functools.cache
def _shared_context(verify: bool) -> ssl.SSLContext:
    """httpx's own context for verify=True/False, made once: each costs about 1 MiB, which
    monitors created and deleted by the hundred would otherwise leave in the heap."""
    return httpx.create_ssl_context(verify=verify)


def ssl_verify(spec: MonitorSpec, ca_data: str | None = None) -> ssl.SSLContext:
    """TLS verification is on unless the spec says otherwise; a CA adds to the system store."""
    if spec.tls.insecure_skip_verify:
        return _shared_context(False)
    if not (ca_data or spec.tls.ca_file):
        return _shared_context(True)
    context = ssl.create_default_context(cafile=spec.tls.ca_file, cadata=ca_data)
    return context


class AdminClient:
    def __init__(
        self,
        spec: MonitorSpec,
        observe: RequestObserver,
        *,
        ca_data: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        targets: TargetPolicy | None = None,
    ) -> None:
        self.spec = spec
        self._observe = observe
        self._transport = transport
        self._targets = targets or TargetPolicy()
        self._ca_data = ca_data
        self._http = self._new_http()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._tokens = TokenProvider(self._send_form, spec.url, spec.auth_realm)
        self._credentials: Credentials | None = None
        self._realm_path = f"/admin/realms/{quote(spec.realm, safe='')}"

    def _new_http(self) -> httpx.AsyncClient:
        transport = self._transport or guarded_transport(
            self._targets,
            verify=ssl_verify(self.spec, self._ca_data),
            limits=httpx.Limits(max_connections=MAX_CONCURRENT_REQUESTS),
        )
        return httpx.AsyncClient(
            base_url=self.spec.url,
            timeout=self.spec.timeout,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "keycloak-monitor"},
        )

    def use_credentials(self, credentials: Credentials) -> None:
        """Credentials are read before every collection, so a rotated Secret applies at once."""
        self._credentials = credentials

    async def use_ca(self, ca_data: str | None) -> None:
        """A rotated CA bundle needs new connections: verification happens at handshake."""
        if ca_data != self._ca_data:
            previous, self._ca_data = self._ca_data, ca_data
            try:
                new = self._new_http()
            except BaseException:
                self._ca_data = previous  # retried next cycle, never silently kept
                raise
            old, self._http = self._http, new
            await old.aclose()

    async def aclose(self) -> None:
        await self._tokens.close()
        await self._http.aclose()

    async def get(self, template: str, params: dict[str, Any] | None = None, **ids: str) -> Any:
        """GET a realm endpoint by its route template; one renewal and retry on 401."""
        if self._credentials is None:
            raise CollectionError(Reason.CONFIG, "no credentials configured")
        path = self._realm_path + template.format(**ids)
        for attempt in (1, 2):
            token = await self._tokens.access_token(self._credentials)
            response = await self._request(
                "GET",
                path,
                template,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 401 and attempt == 1:
                self._tokens.invalidate()
                continue
            return self._decode(response, template)
        raise AssertionError("unreachable")

    async def _send_form(self, method: str, path: str, endpoint: str, data: dict[str, str]) -> httpx.Response:
        return await self._request(method, path, endpoint, data=data)

    async def _request(self, method: str, path: str, endpoint: str, **kwargs: Any) -> httpx.Response:
        async with self._slots:
            try:
                response = await self._http.request(method, path, **kwargs)
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
        raise CollectionError(Reason.INVALID_RESPONSE, f"{template} answered unexpected {code}")

    async def get_pages(
        self,
        template: str,
        page_size: int,
        params: dict[str, Any] | None = None,
        *,
        expected: int = 0,
        keep: Callable[[Any], Any] | None = None,
        **ids: str,
    ) -> list[Any]:
        """Every item of a first/max paged list.

        `expected` (a count read beforehand) lets the pages be fetched concurrently; paging
        then continues one page at a time while pages come back full, since items may have
        been added between the count and the listing. `keep` reduces each item as its page
        arrives, so a big listing holds what the caller needs, not the bodies.
        """
        base = dict(params or {})

        async def page(number: int) -> tuple[int, list[Any]]:
            body = await self.get(template, {**base, "first": number * page_size, "max": page_size}, **ids)
            if not isinstance(body, list):
                raise CollectionError(Reason.INVALID_RESPONSE, f"{template} did not answer a list")
            return len(body), body if keep is None else [keep(item) for item in body]

        known = max(1, -(-expected // page_size))
        pages = await all_of(page(n) for n in range(known))
        while pages[-1][0] == page_size:
            pages.append(await page(len(pages)))
        return [item for _, items in pages for item in items]
