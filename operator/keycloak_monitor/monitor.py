"""One monitor at run time: collects its realm, keeps its health, publishes its series.

Mode-agnostic: standalone mode and the operator both drive it, each with its own source of
credentials and its own schedule.
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .admin_client import AdminClient
from .collect import RealmState, collect_realm
from .config import ConfigError, Credentials, MonitorKey, MonitorSpec
from .errors import CollectionError, Reason
from .events import EventLimits, Persist
from .exposition import MetricsStore, base_labels
from .health import Health
from .http_pool import HttpPools
from .render import render_monitor
from .snapshot import RealmSnapshot
from .targets import TargetPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a collection gave: a snapshot, or the error that explains its absence."""

    snapshot: RealmSnapshot | None
    error: CollectionError | None
    duration: float | None  # None: failed before any request

    @property
    def ok(self) -> bool:
        return self.error is None


class Monitor:
    def __init__(
        self,
        key: MonitorKey,
        spec: MonitorSpec,
        store: MetricsStore,
        *,
        stored_events: Any = None,
        persist_events: Persist | None = None,
        event_limits: EventLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        health: Health | None = None,
        targets: TargetPolicy | None = None,
        pools: HttpPools | None = None,
    ) -> None:
        """`stored_events`: the `status.events` (or state file) a previous process stored,
        resumed when taken on the same url and realm; `persist_events` stores a new one and
        raises when it cannot (without it, counts live in memory only). `pools`: the
        process's connections and tokens, shared with the other monitors of a Keycloak."""
        self.key, self.spec, self._store = key, spec, store
        # Passed in by an owner that outlives spec changes, so counters never restart.
        self.health = health or Health()
        self.targets = targets or TargetPolicy()  # where this monitor may connect, notifications included
        self.api = AdminClient(
            spec, self.health.observe_request, pools=pools, transport=transport, targets=self.targets
        )
        self.state = RealmState(
            spec,
            self.api,
            owner=str(key),
            stored_events=stored_events,
            persist=persist_events,
            event_limits=event_limits,
        )
        self._labels = base_labels(key, spec.realm)
        self.last: Outcome | None = None
        self._publish(None)  # health series exist from the start, `up` 0 until proven

    async def collect(self, credentials: Credentials, ca_data: str | None = None) -> Outcome:
        async with self.api.admission:  # the wait for a place is not part of the budget
            return await self._collect(credentials, ca_data)

    async def _collect(self, credentials: Credentials, ca_data: str | None) -> Outcome:
        started = time.monotonic()
        try:
            # spec.timeout is the budget of the whole collection (shorter than the interval,
            # so the next one starts on time); every request waits at most as long.
            async with asyncio.timeout(self.spec.timeout):
                credentials.validate()
                await self.api.use_ca(ca_data)
                await self.api.use_credentials(credentials)
                snapshot = await collect_realm(self.api, self.spec, self.state)
        except CollectionError as exc:
            return self.fail(exc, time.monotonic() - started)
        except ConfigError as exc:
            return self.fail(CollectionError(Reason.CONFIG, str(exc)), time.monotonic() - started)
        except TimeoutError:
            error = CollectionError(Reason.TIMEOUT, f"collection took longer than its {self.spec.timeout:g}s timeout")
            return self.fail(error, time.monotonic() - started)
        except Exception as exc:  # a bug or a response we did not foresee: this monitor only
            log.exception("monitor %s: unexpected failure", self.key)
            error = CollectionError(Reason.INTERNAL, f"unexpected {type(exc).__name__} while collecting")
            return self.fail(error, time.monotonic() - started)
        duration = time.monotonic() - started
        self.health.succeeded(duration)
        if self.last is None or not self.last.ok:
            log.info("monitor %s: collecting realm '%s' from %s", self.key, self.spec.realm, self.spec.url)
        self.last = Outcome(snapshot, None, duration)
        self._publish(snapshot)
        return self.last

    def fail(self, error: CollectionError, duration: float | None = None) -> Outcome:
        """Record a failure, also one found before any request (a missing Secret: no duration)."""
        self.health.failed(duration, error.reason)
        changed = self.last is None or self.last.ok or self.last.error != error
        (log.warning if changed else log.debug)("monitor %s: %s", self.key, error)
        self.last = Outcome(None, error, duration)
        self._publish(None)
        return self.last

    def republish(self) -> None:
        """Show what moved between collections (pushed events, push and notification counts) at once."""
        if self.last is None or self.last.snapshot is None:
            self._publish(None)
        else:
            events, now = self.state.events, time.time()
            snapshot = dataclasses.replace(
                self.last.snapshot,
                user_events=events.counts("user", now),
                admin_events=events.counts("admin", now),
            )
            self.last = dataclasses.replace(self.last, snapshot=snapshot)
            self._publish(snapshot)

    def _publish(self, snapshot: RealmSnapshot | None) -> None:
        self._store.publish(self.key, render_monitor(self._labels, self.health, snapshot))

    async def close(self) -> None:
        """Remove every series of this monitor; the last monitor of an account ends its Keycloak
        session, the last of a pool closes its connections."""
        self._store.remove(self.key)
        await self.api.aclose()


async def run_every(
    interval: Callable[[], float],
    action: Callable[[], Awaitable[object]],
    sleep: Callable[[float], Awaitable[bool]],
) -> None:
    """Call `action` every `interval()` seconds (start to start) until `sleep` says stop.
    The interval is read after each action, since a spec change may move it."""
    while True:
        started = time.monotonic()
        await action()
        if await sleep(max(0.0, interval() - (time.monotonic() - started))):
            return
