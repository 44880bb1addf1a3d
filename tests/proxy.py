"""A fault-injecting HTTP proxy on loopback, in front of a real server.

For what a real Keycloak cannot be made to do on demand: answer one path slowly, or fail
one request. Every request gets a connection of its own upstream (`Connection: close`),
so each is seen, delayed or failed on its own.

    async with FaultProxy(keycloak.base_url) as proxy:
        proxy.delay("/events", 2.0)
        proxy.fail("/users/count", status=503)   # the next matching request only
        monitor = Monitor(..., parse_spec({"url": proxy.url, ...}))
"""

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class _Rule:
    fragment: str
    delay: float = 0.0
    failures: int = 0  # requests still to fail
    status: int = 503


@dataclass
class FaultProxy:
    upstream: str
    rules: list[_Rule] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # request targets, in arrival order
    # Requests held at once, from the arrival of their body to the start of their answer:
    # the client waits on each of them all along, so this never overcounts its concurrency.
    in_flight: int = 0
    most_in_flight: int = 0
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> "FaultProxy":
        parts = urlsplit(self.upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        for handler in self._handlers:  # requests still held by a delay
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def delay(self, fragment: str, seconds: float) -> None:
        """Hold every request whose target contains `fragment` for `seconds` before forwarding it."""
        self.rules.append(_Rule(fragment, delay=seconds))

    def fail(self, fragment: str, times: int = 1, status: int = 503) -> None:
        """Answer the next `times` matching requests with `status` instead of forwarding them."""
        self.rules.append(_Rule(fragment, failures=times, status=status))

    def clear(self) -> None:
        self.rules.clear()

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            head = await client_in.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            self.seen.append(target)
            length = next(
                (int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"), 0
            )
            body = await client_in.readexactly(length)
            with self._held():
                status = await self._apply_rules(target)
                upstream = None if status else await self._ask_upstream(lines, body)
            if upstream is None:
                client_out.write(
                    f"HTTP/1.1 {status} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
                )
                await client_out.drain()
                return
            up_in, up_out, answer_head = upstream
            try:
                client_out.write(_closing(answer_head))
                while chunk := await up_in.read(65536):
                    client_out.write(chunk)
                    await client_out.drain()
            finally:
                up_out.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away (e.g. its collection was cancelled)
        finally:
            client_out.close()
            with contextlib.suppress(ConnectionError):
                await client_out.wait_closed()

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1

    async def _apply_rules(self, target: str) -> int | None:
        """The status to inject instead of forwarding, or None (after the matching delays)."""
        for rule in list(self.rules):
            if rule.fragment not in target:
                continue
            if rule.failures:
                rule.failures -= 1
                return rule.status
            await asyncio.sleep(rule.delay)
        return None

    async def _ask_upstream(
        self, lines: list[str], body: bytes
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        """The request sent upstream on a connection of its own, and the head of its answer."""
        kept = [h for h in lines[1:] if h and h.split(":")[0].lower() not in ("connection", "keep-alive")]
        request = "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode() + body
        up_in, up_out = await asyncio.open_connection(self._host, self._port)
        try:
            up_out.write(request)
            await up_out.drain()
            return up_in, up_out, await up_in.readuntil(b"\r\n\r\n")
        except BaseException:
            up_out.close()
            raise


def _closing(head: bytes) -> bytes:
    """A response head that tells the client not to reuse the connection (the proxy closes it)."""
    lines = [h for h in head.decode("latin-1").split("\r\n") if h and h.split(":")[0].lower() != "connection"]
    return "\r\n".join([*lines, "Connection: close", "", ""]).encode("latin-1")
