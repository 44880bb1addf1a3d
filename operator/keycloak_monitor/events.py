"""A monitor's event counters: read, counted once, stored, then published.

Per stream (user, admin) the counts and the position they were counted up to are one
immutable value (event_state.StreamState), computed by pure functions and swapped in
whole. Two copies are kept:

- `pending`: what has been read, possibly not stored yet;
- `stored`: what the persistence callback last stored (the monitor's status in the
  operator, a state file in standalone mode). Only this one is published.

So the counters served on /metrics never exceed what a restarted process resumes from,
and Prometheus never sees them go down, even across SIGKILL. Storing is rate-limited
(`EventLimits.persist_every`) because status writes cost the apiserver; a failed store
drops the pending state, and its events are read again (and de-duplicated) next time.

Reading is bounded per cycle (`pages_per_cycle` pages, and a deadline), so a backlog is
caught up over several cycles without holding the session metrics back.
"""

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from .admin_client import AdminClient
from .config import MonitorSpec
from .errors import CollectionError, Reason
from .event_labels import OVERFLOW, admin_key, user_key, zero_user_keys
from .event_state import (
    DEFAULT_SERIES_CAP,
    OVERLAP_MS,
    EventsState,
    KeyOf,
    StreamState,
    count_events,
    starting_state,
)
from .events_api import ADMIN_EVENTS, PAGE_SIZE, USER_EVENTS, Event, EventSource, event_time
from .snapshot import EventCounts, StatusWarning
from .tasks import all_of

log = logging.getLogger(__name__)

Persist = Callable[[dict[str, Any]], Awaitable[None]]  # stores status.events; raises when it could not
REALM_CHECK_SECONDS = 600.0  # how often to re-read the realm's event settings
# With events.source push nothing is re-read, and a sender may retry late (its buffer
# after an outage): ids are remembered for a day, within the MAX_REMEMBERED_IDS bound.
PUSH_WINDOW_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class EventLimits:
    page_size: int = PAGE_SIZE
    pages_per_cycle: int = 10  # per stream
    persist_every: float = 30.0  # seconds between two stores of the counts (at most)
    series_cap: int = DEFAULT_SERIES_CAP  # label sets per stream; more go to the overflow series


class PersistFailed(Exception):
    """The counts could not be stored; the stored ones stay in force."""


class NotCounting(Exception):
    """A polled stream that has not started counting yet (its first collection is due)."""


@dataclass(frozen=True)
class RealmEventSettings:
    user_enabled: bool = True
    admin_enabled: bool = True
    user_expiration: float | None = None  # seconds Keycloak keeps user events (None: forever)


class EventLedger:
    """One monitor's event counts: `pump` reads them (once per collection), `ingest` takes
    pushed ones, `counts` and `warnings` say what is served."""

    def __init__(
        self,
        spec: MonitorSpec,
        api: AdminClient,
        *,
        owner: str = "",
        stored: Any = None,
        persist: Persist | None = None,
        limits: EventLimits | None = None,
    ) -> None:
        self.spec, self.limits, self._owner = spec, limits or EventLimits(), owner
        self._persist, self._api = persist, api
        self.sources = {
            name: EventSource(api, template, self.limits.page_size)
            for name, template, on in (
                ("user", USER_EVENTS, spec.user_events),
                ("admin", ADMIN_EVENTS, spec.admin_events),
            )
            if on
        }
        self.polled = spec.events_source != "push"
        self._overlap_ms = OVERLAP_MS if self.polled else PUSH_WINDOW_MS
        now = time.time()
        resumed = EventsState.resume(stored, spec.url, spec.realm, now)
        streams = {k: v for k, v in resumed.streams.items() if k in self.sources}
        if not self.polled:  # pushed events are counted from the first one on
            streams = {name: streams.get(name) or StreamState(since=now) for name in self.sources}
        state = replace(resumed, streams=streams)
        self._stored = self._pending = state
        self._stored_status = state.to_status()
        self._stored_at = -math.inf
        self._lock = asyncio.Lock()
        self._clients: frozenset[str] = frozenset()
        self._settings = RealmEventSettings()
        self._settings_read_at: float | None = None
        self._unfinished: set[str] = set()  # streams whose catch-up did not fit (servers before 26.2)
        self._behind: set[str] = set()  # streams whose last read stopped before the newest event

    async def pump(self, clients: Awaitable[Collection[str]], deadline: float) -> dict[str, list[Event]]:
        """Read and count new events of every enabled stream, within this cycle's bounds
        (`deadline`: time.monotonic() after which no new page is started). Returns the events
        counted now, by stream. `clients`: the realm's client ids, once the collection has them."""
        if not self.sources:
            return {}
        if not self.polled and "user" in self.sources:  # pushed events are labelled with them
            self._clients = frozenset(await clients)
        names = list(self.sources) if self.polled else []
        _, *counted = await all_of([self._read_settings(), *(self._pump_stream(n, clients, deadline) for n in names)])
        return dict(zip(names, counted, strict=True))

    async def _read_settings(self) -> list[Event]:
        """The realm's event settings, re-read every few minutes (answers nothing: it runs
        beside the streams' reads)."""
        now = time.monotonic()
        if self._settings_read_at is not None and now - self._settings_read_at < REALM_CHECK_SECONDS:
            return []
        # events/config, not the realm: without view-realm the realm answers a few fields only.
        config = await self._api.get("/events/config")
        if not isinstance(config, Mapping):
            raise CollectionError(Reason.INVALID_RESPONSE, "/events/config is not an object")
        expiration = config.get("eventsExpiration")
        self._settings = RealmEventSettings(
            user_enabled=bool(config.get("eventsEnabled")),
            admin_enabled=bool(config.get("adminEventsEnabled")),
            user_expiration=float(expiration) if isinstance(expiration, int | float) and expiration > 0 else None,
        )
        self._settings_read_at = now
        return []

    async def _pump_stream(self, name: str, clients: Awaitable[Collection[str]], deadline: float) -> list[Event]:
        source = self.sources[name]
        state = self._pending.streams.get(name)
        try:
            if name == "user":  # labels need the realm's clients; they also name the zero series
                self._clients = frozenset(await clients)
            if state is None:  # counting starts after what is stored now
                newest = await source.newest()
                await self._commit(lambda s: s.with_stream(name, starting_state(newest, time.time())), force=True)
                return []
            if not await source.supports_ascending():
                return await self._catch_up_newest_first(name, source, state)
            # A catch-up goes on from the cursor; once caught up, every read starts at the
            # window start again, to find late commits.
            start = state.cursor if name in self._behind else state.floor
            counted: list[Event] = []
            started, pages = time.time(), 0
            self._behind.add(name)
            async with aclosing(source.forward(start)) as reader:
                async for page, last in reader:
                    counted += await self._count(name, page, caught_up_at=started if last else None)
                    if last:
                        self._behind.discard(name)
                    pages += 1
                    if pages >= self.limits.pages_per_cycle or time.monotonic() >= deadline:
                        break
            return counted
        except PersistFailed:
            return []

    async def _catch_up_newest_first(self, name: str, source: EventSource, state: StreamState) -> list[Event]:
        # Before Keycloak 26.2 the oldest events come last: all of them must be read
        # before any can be counted (see events_api).
        started = time.time()
        events = await source.backward(state.floor, state.cursor)
        if events is None:
            self._unfinished.add(name)
            return []
        self._unfinished.discard(name)
        return await self._count(name, sorted(events, key=event_time), caught_up_at=started)

    def _key_of(self, name: str) -> KeyOf:
        if name == "user":
            clients = self._clients
            return lambda event: user_key(event, clients)
        return admin_key

    async def _count(
        self,
        name: str,
        events: Iterable[Event],
        *,
        caught_up_at: float | None = None,
        polled: bool = True,
        force: bool = False,
    ) -> list[Event]:
        counted: list[Event] = []

        def update(state: EventsState) -> EventsState:
            stream, fresh = count_events(
                state.streams[name],
                events,
                self._key_of(name),
                polled=polled,
                cap=self.limits.series_cap,
                overlap_ms=self._overlap_ms,
            )
            counted.extend(fresh)
            if polled:
                stream = replace(stream, caught_up_at=caught_up_at)
            return state.with_stream(name, stream)

        await self._commit(update, force)
        return counted

    async def _commit(self, update: Callable[[EventsState], EventsState], force: bool = False) -> None:
        """Apply `update` to the pending state; store it when due (or `force`), and publish
        only what is stored. Raises PersistFailed, with the stored state back in force."""
        async with self._lock:
            self._pending = update(self._pending)
            status = self._pending.to_status()
            if status == self._stored_status:
                self._stored = self._pending  # nothing to store; only the in-memory fields moved
                return
            due = time.monotonic() - self._stored_at >= self.limits.persist_every
            if self._persist is not None and not (due or force):
                return
            if self._persist is not None:
                try:
                    await self._persist(status)
                except Exception as exc:  # the apiserver or the disk said no: keep what is stored
                    log.warning("monitor %s: event counts not stored, re-reading later: %s", self._owner, exc)
                    self._pending = self._stored
                    raise PersistFailed from exc
            self._stored, self._stored_status, self._stored_at = self._pending, status, time.monotonic()

    def counts_stream(self, stream: str) -> bool:
        """Whether this monitor counts that stream (events.user / events.admin)."""
        return stream in self.sources

    def too_old(self, stream: str, key: str, at: int) -> bool:
        """Whether an event could have been counted and forgotten: older than the window of
        remembered ids and not in it. Such an event is never counted."""
        state = self._pending.streams.get(stream)
        return state is not None and at < state.floor and key not in state.recent

    async def ingest(self, stream: str, events: Iterable[Event]) -> list[Event]:
        """Count pushed events (dicts in Keycloak's event shape, with `id`: the push receiver's
        seam); returns those that were new, once they are stored.

        Each id is counted at most once together with the polled events: both go through
        the same window of remembered ids. With events.source both, pushed events do not
        move the cursor, so the poll still reads whatever was not pushed; with push alone
        they do. An event older than the window start is not counted (see too_old), nor is
        any before a polled stream has started counting (NotCounting). Client ids are
        checked against the client list of the last collection. Every call is stored at
        once (a sender's acknowledgement must survive a crash); raises PersistFailed when
        that fails, with nothing counted."""
        if stream not in self._pending.streams:
            raise NotCounting(stream)
        return await self._count(stream, list(events), polled=not self.polled, force=True)

    def counts(self, name: str, now: float) -> EventCounts | None:
        """The stored counts of one stream, as the metrics show them."""
        stream = self._stored.streams.get(name)
        if stream is None:
            return None
        zero: list[tuple[str, ...]] = []
        if name == "user":
            room = max(0, self.limits.series_cap - len(stream.totals))
            zero = [k for k in zero_user_keys(self._clients) if k not in stream.totals][:room]
        overflow = (OVERFLOW,) * (3 if name == "user" else 2)
        return EventCounts(
            totals=stream.totals,
            created=stream.since,
            zero=tuple(zero),
            lag=self._lag(stream, now),
            folded=stream.totals.get(overflow, 0),
            expired=self._expired(name, stream, now),
        )

    @staticmethod
    def _lag(stream: StreamState, now: float) -> float:
        if stream.caught_up_at is not None:
            reference = stream.caught_up_at
        else:
            reference = stream.cursor / 1000 if stream.cursor else stream.since
        return max(0.0, now - reference)

    def _expired(self, name: str, stream: StreamState, now: float) -> bool:
        expiration = self._settings.user_expiration if name == "user" else None
        return expiration is not None and self._lag(stream, now) > expiration

    def warnings(self, now: float) -> tuple[StatusWarning, ...]:
        """What the EventsRecorded condition says, worst first."""
        found = []
        saved = {"user": self._settings.user_enabled, "admin": self._settings.admin_enabled}
        for name in self.sources:
            if not saved[name]:
                message = f"realm '{self.spec.realm}' does not save {name} events (Realm settings > Events)"
                found.append(StatusWarning("EventsDisabled", message))
        for name in self.sources:
            counts = self.counts(name, now)
            if counts is not None and counts.expired:
                # No number in the message: a condition that changed every cycle would be written every cycle.
                found.append(
                    StatusWarning(
                        "EventsExpiredUnread",
                        f"{name} events are read further behind than the realm keeps them (its event "
                        "expiration): some may have expired unread; see keycloak_monitor_event_lag_seconds",
                    )
                )
            if name in self._unfinished:
                found.append(
                    StatusWarning(
                        "CatchUpTooLarge",
                        f"more {name} events in one day than one cycle reads on this Keycloak (before 26.2)",
                    )
                )
            stream = self._stored.streams.get(name)
            if stream is not None and len(stream.totals) >= self.limits.series_cap:
                found.append(
                    StatusWarning(
                        "SeriesCapReached",
                        f"{name} events reached the cap of {self.limits.series_cap} series; "
                        f"new label sets are counted under '{OVERFLOW}'",
                    )
                )
        return tuple(found)
