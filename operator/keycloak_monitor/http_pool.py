"""Connections, request slots and tokens shared by the monitors of one Keycloak.

Hundreds of monitors of one Keycloak would otherwise each keep their own connections, TLS
context and login (one Keycloak session each), and send as many requests at once as they
like. A pool is shared only by monitors that would make the very same connections: same
origin, same trust (system store, one CA bundle, or no verification) and the same target
policy, so no monitor ever uses a connection its own settings would refuse. Requests in
flight are bounded per origin, across pools, operator-wide.
"""

import asyncio
import functools
import hashlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx

from .config import MonitorSpec
from .targets import TargetPolicy, guarded_transport
from .tokens import Account, TokenProvider

# Requests in flight to one Keycloak from the whole process: enough to overlap latency for
# hundreds of monitors, few enough that they never look like a load test to Keycloak.
DEFAULT_MAX_REQUESTS = 16

HEADERS = {"Accept": "application/json", "User-Agent": "keycloak-monitor"}

K = TypeVar("K")
V = TypeVar("V")


class Shared(Generic[K, V]):
    """Values made once per key and kept while anyone uses them (reference counted)."""

    def __init__(self) -> None:
        self._entries: dict[K, tuple[V, int]] = {}

    def acquire(self, key: K, make: Callable[[], V]) -> V:
        value, users = self._entries.get(key) or (make(), 0)  # make() raising registers nothing
        self._entries[key] = (value, users + 1)
        return value

    def release(self, key: K) -> V | None:
        """The value when its last user left (for the caller to close), else None."""
        value, users = self._entries[key]
        if users > 1:
            self._entries[key] = (value, users - 1)
            return None
        del self._entries[key]
        return value

    def __len__(self) -> int:
        return len(self._entries)


@functools.cache
def _shared_context(verify: bool) -> ssl.SSLContext:
    """httpx's own context for verify=True/False, made once: each costs about 1 MiB and a
    few milliseconds of blocked event loop to load the system store."""
    return httpx.create_ssl_context(verify=verify)


def ssl_verify(spec: MonitorSpec, ca_data: str | None = None) -> ssl.SSLContext:
    """TLS verification is on unless the spec says otherwise; a CA bundle is trusted instead of
    the system store (create_default_context loads the store only without one)."""
    if spec.tls.insecure_skip_verify:
        return _shared_context(False)
    if not (ca_data or spec.tls.ca_file):
        return _shared_context(True)
    return ssl.create_default_context(cafile=spec.tls.ca_file, cadata=ca_data)


def trust_of(spec: MonitorSpec, ca_data: str | None) -> tuple[str, ...]:
    """What decides whether a TLS handshake is accepted: pools are shared only on equal trust."""
    if spec.tls.insecure_skip_verify:
        return ("insecure",)
    if not (ca_data or spec.tls.ca_file):
        return ("system",)
    return ("ca", spec.tls.ca_file or "", hashlib.sha256((ca_data or "").encode()).hexdigest())


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class PoolKey:
    origin: str
    trust: tuple[str, ...]
    targets: TargetPolicy
    transport: httpx.AsyncBaseTransport | None = None  # a test's own transport: shared by identity only


class OriginLimits:
    """One Keycloak's bounds, shared by all its pools: requests in flight and collections under way."""

    def __init__(self, most: int) -> None:
        self.requests = asyncio.Semaphore(most)
        self.collections = asyncio.Semaphore(most)


@dataclass(eq=False)
class Pool:
    key: PoolKey
    http: httpx.AsyncClient
    limits: OriginLimits  # the origin's, shared with its other pools
    tokens: Shared[Account, TokenProvider] = field(default_factory=Shared)
    _sending: set[asyncio.Task[httpx.Response]] = field(default_factory=set)

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request within the Keycloak's bound, carried out by a task of the pool's own.

        httpcore 1.0.9 keeps a connection slot for good when a request is cancelled while it
        waits for a new connection (encode/httpcore#1093); once every slot is kept, every
        request to that Keycloak waits forever. Collections are cancelled (their budget, a
        failed sibling), so a caller's cancellation ends its wait only: the request runs to its
        own timeout, then frees its connection and its place among the requests in flight."""
        await self.limits.requests.acquire()  # a wait that is safe to cancel
        task = asyncio.create_task(self._carry(method, url, kwargs))
        self._sending.add(task)
        task.add_done_callback(self._sent)
        return await asyncio.shield(task)

    async def _carry(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        try:
            return await self.http.request(method, url, **kwargs)
        finally:
            self.limits.requests.release()

    def _sent(self, task: asyncio.Task[httpx.Response]) -> None:
        self._sending.discard(task)
        if not task.cancelled():
            task.exception()  # a request whose caller left fails unheard, not as "never retrieved"

    async def aclose(self) -> None:
        """Ends the requests still under way (their callers left), then the connections."""
        for task in self._sending:
            task.cancel()
        if self._sending:
            await asyncio.wait(set(self._sending))
        await self.http.aclose()


class HttpPools:
    """Every pool of one process; monitors acquire one and release it when closed or changed."""

    def __init__(self, max_requests: int = DEFAULT_MAX_REQUESTS) -> None:
        if max_requests < 1:
            raise ValueError("at least one request in flight per Keycloak")
        self.max_requests = max_requests
        self._pools: Shared[PoolKey, Pool] = Shared()
        self._limits: Shared[str, OriginLimits] = Shared()

    def __len__(self) -> int:
        return len(self._pools)

    def acquire(
        self,
        spec: MonitorSpec,
        targets: TargetPolicy,
        ca_data: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Pool:
        key = PoolKey(origin_of(spec.url), trust_of(spec, ca_data), targets, transport)
        return self._pools.acquire(key, lambda: self._new_pool(key, spec, ca_data))

    def _new_pool(self, key: PoolKey, spec: MonitorSpec, ca_data: str | None) -> Pool:
        transport = key.transport or guarded_transport(
            key.targets,
            verify=ssl_verify(spec, ca_data),
            limits=httpx.Limits(max_connections=self.max_requests, max_keepalive_connections=self.max_requests),
        )
        limits = self._limits.acquire(key.origin, lambda: OriginLimits(self.max_requests))
        return Pool(key, httpx.AsyncClient(transport=transport, headers=HEADERS), limits)

    async def release(self, pool: Pool) -> None:
        """Closes the pool's connections when its last monitor leaves."""
        if self._pools.release(pool.key) is not None:
            self._limits.release(pool.key.origin)
            await pool.aclose()
