"""Where monitors may connect: operator-wide allow and deny rules for target hosts and networks.

A KeycloakMonitor names any URL, so without rules its author could make the operator connect
to cloud metadata or any in-cluster service (server-side request forgery). Every connection
is checked on the addresses it really goes to, after DNS and before the socket opens, so a
name that resolves differently later (DNS rebinding) is checked again on its next connection.
Link-local networks (cloud metadata at 169.254.169.254) are always denied.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpcore
import httpx

from .errors import CollectionError, Reason

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LINK_LOCAL = ("169.254.0.0/16", "fe80::/10")


class TargetRefused(CollectionError):
    def __init__(self, host: str, why: str) -> None:
        message = f"target {host} refused by the operator's target policy: {why}"
        super().__init__(Reason.CONFIG, message, "TargetRefused")


@dataclass(frozen=True)
class Rule:
    """A network (CIDR or single address), or a host name: exact, or `*.example.com` for its subdomains."""

    text: str
    network: Network | None = None

    @classmethod
    def parse(cls, text: str) -> "Rule":
        text = text.strip().lower()
        try:
            return cls(text, ipaddress.ip_network(text, strict=False))
        except ValueError:
            pass
        name = text.removeprefix("*.")
        if not name or any(c in name for c in "/:@ *"):
            raise ValueError(f"not a network or host name: {text!r}")
        return cls(text)

    def matches_name(self, host: str) -> bool:
        if self.network is not None:
            return False
        host = host.lower().rstrip(".")
        if self.text.startswith("*."):
            return host.endswith(self.text[1:])
        return host == self.text

    def matches_address(self, address: Address) -> bool:
        return self.network is not None and address.version == self.network.version and address in self.network


def parse_rules(texts: Iterable[str]) -> tuple[Rule, ...]:
    """Rules from flags or an environment variable: each text may hold several, comma-separated."""
    return tuple(Rule.parse(part) for text in texts for part in text.split(",") if part.strip())


def _plain(address: Address) -> Address:
    """::ffff:169.254.169.254 is 169.254.169.254."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class TargetPolicy:
    """Deny wins; with allow rules, a target must match one by name or with every address."""

    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()

    @property
    def always_denied(self) -> tuple[Rule, ...]:
        return tuple(Rule.parse(net) for net in LINK_LOCAL) + self.deny

    def check(self, host: str, addresses: Sequence[Address]) -> None:
        """Raise TargetRefused unless the host, reached at these addresses, is allowed."""
        plain = [_plain(a) for a in addresses]
        for rule in self.always_denied:
            if rule.matches_name(host) or any(rule.matches_address(a) for a in plain):
                raise TargetRefused(host, f"denied by rule {rule.text}")
        if not self.allow:
            return
        if any(rule.matches_name(host) for rule in self.allow):
            return
        if plain and all(any(rule.matches_address(a) for rule in self.allow) for a in plain):
            return
        raise TargetRefused(host, "matches no allow rule")


async def resolve(host: str, port: int) -> list[Address]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the policy checked on the resolved addresses; the socket
    then goes to a checked address, never to a second resolution of the name."""

    def __init__(self, policy: TargetPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy, self._inner = policy, inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        self._policy.check(host, addresses)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused(path, "unix sockets are never a target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(policy: TargetPolicy, **options: object) -> httpx.AsyncHTTPTransport:
    """An httpx transport (verify, limits, ... as `options`) whose every connection obeys `policy`."""
    transport = httpx.AsyncHTTPTransport(**options)  # type: ignore[arg-type]
    # httpx takes no network backend of its own; its pool does (httpx is pinned below 0.29).
    pool = transport._pool
    pool._network_backend = GuardedBackend(policy, pool._network_backend)
    return transport
