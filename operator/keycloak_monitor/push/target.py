"""One monitor as a push destination: check the realm, count each event id once, store.

An accepted request is answered only after its events are counted and stored by the monitor's
event ledger, so a 200 never stands for an event that a crash could lose; when storing fails
nothing is counted and the sender is told to retry.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..errors import CollectionError
from ..events import NotCounting, PersistFailed
from ..monitor import Monitor
from .auth import PushCredentials
from .formats import PushedEvent


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


class PushTarget:
    def __init__(
        self,
        current: Callable[[], Monitor | None],
        credentials: Callable[[], Awaitable[PushCredentials]],
        max_pending: int = 1000,
    ) -> None:
        self._current, self.credentials = current, credentials
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

    async def accept(self, events: Sequence[PushedEvent]) -> Accepted:
        monitor = self.monitor()
        await self._check_realm(monitor, events)
        if self._pending + len(events) > self._max_pending:
            raise PushRefused(503, "overloaded", "too many events waiting to be stored", retry_after=5)
        self._pending += len(events)
        try:
            async with self._lock:
                return await self._count(monitor, events)
        finally:
            self._pending -= len(events)

    async def _count(self, monitor: Monitor, events: Sequence[PushedEvent]) -> Accepted:
        """Counted by the monitor's event ledger (events.py), which shares the window of
        remembered ids with polling and stores the counts before answering."""
        ledger = monitor.state.events
        wanted = [event for event in events if ledger.counts_stream(event.kind)]
        if any(ledger.too_old(event.kind, event.key, event.time) for event in wanted):
            raise PushRefused(409, "replay", "event older than the de-duplication window: refused, not counted")
        fresh: list[PushedEvent] = []
        try:
            for kind in ("user", "admin"):
                batch = {event.key: event for event in wanted if event.kind == kind}
                if batch:
                    counted = await ledger.ingest(kind, [{**e.event, "id": key} for key, e in batch.items()])
                    fresh += [batch[str(event["id"])] for event in counted]
        except NotCounting:
            raise PushRefused(503, "unavailable", "the monitor has not started counting yet", retry_after=10) from None
        except PersistFailed:
            raise PushRefused(503, "unavailable", "events could not be stored; retry", retry_after=5) from None
        if fresh:
            monitor.republish()
            if monitor.state.on_events is not None:
                for kind in ("user", "admin"):
                    chosen = [(e.key, e.event) for e in fresh if e.kind == kind]
                    if chosen:
                        await monitor.state.on_events(kind, chosen)
        return Accepted(counted=len(fresh), duplicates=len(wanted) - len(fresh), ignored=len(events) - len(wanted))
