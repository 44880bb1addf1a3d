"""One monitor as a push destination: check the realm, count each event id once, persist.

An accepted request is answered only after its events are counted and `persist` returned, so
a 200 never stands for an event that a crash could lose; when `persist` fails the events are
taken back out and the sender is told to retry.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..errors import CollectionError
from ..events import EventStream, admin_event_key, user_event_key
from ..monitor import Monitor
from .auth import PushCredentials
from .formats import PushedEvent

Persist = Callable[[], Awaitable[None]]


class PushRefused(Exception):
    """A request this target will not take: HTTP status, metric result and message."""

    def __init__(self, status: int, result: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.result, self.retry_after = status, result, retry_after


@dataclass(frozen=True)
class Accepted:
    counted: int
    duplicates: int
    ignored: int  # kinds this monitor does not count (events.user/admin off, system events)


async def _no_persist() -> None:
    return None


class PushTarget:
    def __init__(
        self,
        current: Callable[[], Monitor | None],
        credentials: Callable[[], Awaitable[PushCredentials]],
        persist: Persist = _no_persist,
        max_pending: int = 1000,
    ) -> None:
        self._current, self.credentials, self._persist = current, credentials, persist
        self._max_pending, self._pending = max_pending, 0
        self._lock = asyncio.Lock()
        self._realm_ids: dict[str, str] = {}  # monitor realm name -> Keycloak's realm id

    def monitor(self) -> Monitor:
        monitor = self._current()
        if monitor is None or monitor.spec.events_source == "poll":
            raise PushRefused(404, "unknown_monitor", "this monitor does not take pushed events (events.source)")
        return monitor

    @staticmethod
    def record(monitor: Monitor, result: str) -> None:
        """Count one request's result in the monitor's keycloak_monitor_push_requests_total."""
        monitor.health.push_requests[result] += 1
        monitor.republish()

    async def _check_realm(self, monitor: Monitor, events: Sequence[PushedEvent]) -> None:
        realm = monitor.spec.realm
        for event in events:
            if not event.realm or event.realm == realm or event.realm == self._realm_ids.get(realm):
                continue
            if realm not in self._realm_ids:  # the seed emitter names realms by id: learn it once
                try:
                    found = await monitor.api.get("")
                except CollectionError as exc:
                    message = f"cannot check the realm yet: {exc}"
                    raise PushRefused(503, "unavailable", message, retry_after=10) from None
                if isinstance(found, dict) and found.get("id"):
                    self._realm_ids[realm] = str(found["id"])
                if event.realm == self._realm_ids.get(realm):
                    continue
            raise PushRefused(422, "unknown_realm", f"event of realm '{event.realm}', this monitor counts '{realm}'")

    async def accept(self, events: Sequence[PushedEvent], now_ms: int | None = None) -> Accepted:
        monitor = self.monitor()
        await self._check_realm(monitor, events)
        if self._pending + len(events) > self._max_pending:
            raise PushRefused(503, "overloaded", "too many events waiting to be stored", retry_after=5)
        self._pending += len(events)
        try:
            async with self._lock:
                return await self._count(monitor, events, int(time.time() * 1000) if now_ms is None else now_ms)
        finally:
            self._pending -= len(events)

    async def _count(self, monitor: Monitor, events: Sequence[PushedEvent], now_ms: int) -> Accepted:
        streams: dict[str, EventStream | None] = {
            "user": monitor.state.user_events,
            "admin": monitor.state.admin_events,
        }
        for stream in streams.values():
            if stream is not None:
                stream.seen.expire(now_ms)
        for event in events:
            stream = streams[event.kind]
            if stream is not None and event.key not in stream.seen and event.time < stream.seen.horizon(now_ms):
                raise PushRefused(409, "replay", "event older than the de-duplication window: refused, not counted")
        fresh: list[PushedEvent] = []
        duplicates = ignored = 0
        for event in events:
            stream = streams[event.kind]
            if stream is None:
                ignored += 1
            elif event.key in stream.seen:
                duplicates += 1
            else:
                stream.seen.add(event.key, event.time)
                stream.counts[_counter_key(event)] += 1
                fresh.append(event)
        if fresh:
            try:
                await self._persist()
            except Exception:
                for event in fresh:  # not stored: take them back so the sender's retry counts them
                    stream = streams[event.kind]
                    assert stream is not None
                    stream.seen.discard([event.key])
                    stream.counts[_counter_key(event)] -= 1
                raise PushRefused(503, "unavailable", "events could not be stored; retry", retry_after=5) from None
            monitor.republish()
            if monitor.state.on_events is not None:
                for kind in ("user", "admin"):
                    chosen = [(e.key, e.event) for e in fresh if e.kind == kind]
                    if chosen:
                        await monitor.state.on_events(kind, chosen)
        return Accepted(counted=len(fresh), duplicates=duplicates, ignored=ignored)


def _counter_key(event: PushedEvent) -> tuple[str, ...]:
    return user_event_key(event.event) if event.kind == "user" else admin_event_key(event.event)
