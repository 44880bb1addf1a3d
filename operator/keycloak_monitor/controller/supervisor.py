"""The life of one KeycloakMonitor resource: collect on its interval, report in its status.

A plain async function with its collaborators passed in, so tests drive it directly; the
kopf daemon in handlers.py only wires it up.
"""

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from ..config import ConfigError, MonitorKey, parse_spec
from ..errors import CollectionError, Reason
from ..exposition import MetricsStore, base_labels
from ..health import Health
from ..http_pool import HttpPools
from ..jitter import start_delay
from ..monitor import Monitor, Outcome, run_every
from ..render import render_monitor
from ..spec_policy import SpecPolicy
from ..targets import TargetPolicy
from .credentials import load_ca, load_credentials
from .kube import Kube, StatusConflict
from .notifications import NotificationHost
from .status import Report, changes, desired_status, ready_transition

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0

Sleep = Callable[[float], Awaitable[bool]]  # wait up to n seconds; True when told to stop


class PostEvent(Protocol):
    def __call__(self, type: str, reason: str, message: str) -> None: ...


class Supervisor:
    def __init__(
        self,
        key: MonitorKey,
        body: Mapping[str, Any],
        kube: Kube,
        store: MetricsStore,
        post_event: PostEvent,
        targets: TargetPolicy | None = None,
        spec_policy: SpecPolicy | None = None,
        pools: HttpPools | None = None,
    ) -> None:
        self.key, self._body, self._kube, self._store, self._post_event = key, body, kube, store, post_event
        self._targets = targets
        self._spec_policy = spec_policy or SpecPolicy()
        self._pools = pools  # shared with the other monitors: a spec change releases its pool
        self.monitor: Monitor | None = None
        # Outlives spec changes and invalid specs: counters and the histogram never restart.
        self.health = Health()
        self._spec_data: Any = None  # the spec of self.monitor
        self._spec_seen: Any = None  # the spec of the last cycle, valid or not
        self._interval = DEFAULT_INTERVAL
        self._woken = asyncio.Event()
        self.notifications: NotificationHost | None = None  # set by the daemon when it runs one
        # What we last wrote; the live body lags behind our own patches.
        self._status: Mapping[str, Any] = copy.deepcopy(dict(body.get("status") or {}))
        self._events_taken = False  # another process stored event counts over ours

    async def run(self, stop: Sleep) -> None:
        try:
            if self._status and await self._sleep(stop, self._first_delay()):
                return
            await run_every(lambda: self._interval, self.cycle, lambda seconds: self._sleep(stop, seconds))
        finally:
            await self.close()

    def _first_delay(self) -> float:
        """A monitor with a status was running before this process: spread those over their
        interval so a restart does not make them all collect at once. A new one starts at once."""
        try:
            interval = parse_spec(dict(self._body.get("spec") or {})).interval
        except ConfigError:
            return 0.0
        return start_delay(self.key, interval)

    def observe(self, body: Mapping[str, Any]) -> None:
        """A watch event for this monitor: a changed spec ends the wait for the next cycle,
        so a fix applies within seconds even with a long interval."""
        self._body = body
        if (body.get("spec") or {}) != self._spec_seen:
            self._woken.set()

    async def _sleep(self, stop: Sleep, seconds: float) -> bool:
        """Wait for the next cycle, cut short by observe(); True when the daemon must stop."""
        stopping = asyncio.ensure_future(stop(seconds))
        waking = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait((stopping, waking), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopping, waking):
                task.cancel()
            await asyncio.wait((stopping, waking))
        self._woken.clear()
        return stopping.done() and not stopping.cancelled() and bool(stopping.result())

    async def cycle(self) -> None:
        """One collection and its status. Nothing raised here ends the monitor: whatever
        fails becomes `up 0` with a reason, and the next cycle tries again."""
        generation = self._body.get("metadata", {}).get("generation")
        await self._take_stored_events()
        try:
            monitor = await self._current_monitor()
        except ConfigError as exc:
            error = CollectionError(Reason.CONFIG, str(exc), "InvalidSpec")
            self._invalid_spec(error)
            await self._report(Report(generation, error=error))
            return
        outcome = await self._collect(monitor)
        failing = self.notifications.failing() if self.notifications is not None else None
        report = Report(generation, snapshot=outcome.snapshot, error=outcome.error)
        await self._report(replace(report, notifications_failing=failing))

    async def _current_monitor(self) -> Monitor:
        """The monitor for the current spec; a changed, valid spec replaces it and its series.
        An invalid spec raises ConfigError and leaves the current monitor in place."""
        spec_data = self._spec_seen = copy.deepcopy(dict(self._body.get("spec") or {}))
        if self.monitor is not None and spec_data == self._spec_data:
            return self.monitor
        spec = parse_spec(spec_data)
        await self.close()
        self._spec_data = spec_data
        self._interval = spec.interval
        # status.events, or the eventCursor of earlier versions (replaced on the first store).
        stored = self._status.get("events") or self._status.get("eventCursor")
        self.monitor = Monitor(
            self.key,
            spec,
            self._store,
            stored_events=stored,
            persist_events=self._store_events,
            health=self.health,
            targets=self._targets,
            pools=self._pools,
        )
        if self.notifications is not None:
            self.notifications.attach(self.monitor)
        return self.monitor

    async def _store_events(self, events: dict[str, Any]) -> None:
        """The monitor's event counts, in their own status patch; raises when not written.
        They replace the counts this process stored last, and only those: a replica that was
        frozen while another took over must not store (nor publish) what its successor counted."""
        value = {k: v for k, v in events.items() if v is not None}  # as a merge patch leaves it
        stored = self._status.get("events")
        if stored is None or "eventCursor" in self._status:  # the first store
            patch: dict[str, Any] = {"events": events}
            if "eventCursor" in self._status:
                patch["eventCursor"] = None
            await self._kube.patch_status(self.key.namespace, self.key.name, patch)
        else:
            try:
                await self._kube.replace_status_field(self.key.namespace, self.key.name, "events", value, stored)
            except StatusConflict:
                self._events_taken = True
                raise
        self._status = {**{k: v for k, v in self._status.items() if k != "eventCursor"}, "events": value}

    async def _take_stored_events(self) -> None:
        """After a conflict, continue from the counts the other process stored, as a
        restarted process does (a replica that yields is paused by kopf before this)."""
        if not self._events_taken or self.monitor is None:
            return
        try:
            status = await self._kube.read_status(self.key.namespace, self.key.name)
        except CollectionError as exc:
            log.debug("monitor %s: stored event counts not read: %s", self.key, exc)
            return
        self._events_taken = False
        self._status = {**self._status, "events": status.get("events")}
        log.info("monitor %s: continuing from the event counts another process stored", self.key)
        await self.close()  # _current_monitor makes a new one from them

    def _invalid_spec(self, error: CollectionError) -> None:
        """`up 0` and errors{reason="config"} stay, so KeycloakMonitorDown can fire."""
        if self.monitor is not None:
            self.monitor.fail(error)
            return
        self.health.failed(None, error.reason)
        realm = self._spec_seen.get("realm")
        labels = base_labels(self.key, realm if isinstance(realm, str) else "")
        self._store.publish(self.key, render_monitor(labels, self.health, None))

    async def _collect(self, monitor: Monitor) -> Outcome:
        try:
            self._spec_policy.check(monitor.spec)  # before any Secret is read or request made
            credentials = await load_credentials(self._kube, self.key.namespace, monitor.spec)
            ca_data = await load_ca(self._kube, self.key.namespace, monitor.spec)
        except CollectionError as exc:
            return monitor.fail(exc)
        except Exception as exc:  # a bug, not the apiserver (kube.py turns those into CollectionErrors)
            log.exception("monitor %s: unexpected failure reading its Secrets", self.key)
            return monitor.fail(CollectionError(Reason.INTERNAL, f"unexpected {type(exc).__name__} reading Secrets"))
        return await monitor.collect(credentials, ca_data)

    async def _report(self, report: Report) -> None:
        desired = desired_status(self._status, report, datetime.now(UTC))
        patch = changes(self._status, desired)
        if not patch:
            return
        transition = ready_transition(self._status, desired)
        try:
            await self._kube.patch_status(self.key.namespace, self.key.name, patch)
        except CollectionError as exc:  # unwritten: `up 0` says so, and the next cycle retries
            self._status_failed(report, exc)
            return
        except Exception as exc:
            log.exception("monitor %s: unexpected failure writing its status", self.key)
            error = CollectionError(Reason.INTERNAL, f"unexpected {type(exc).__name__} writing status")
            self._status_failed(report, error)
            return
        self._status = {**self._status, **patch}
        if transition:
            self._post_event(*transition)

    def _status_failed(self, report: Report, error: CollectionError) -> None:
        """A cycle counts once: a failed collection whose status is not written either is
        already `up 0` and counted; only a successful one becomes a failure here."""
        if report.error is None and self.monitor is not None:
            self.monitor.fail(error)
        else:
            log.debug("monitor %s: %s", self.key, error)

    async def close(self) -> None:
        if self.monitor is not None:
            monitor, self.monitor = self.monitor, None
            await monitor.close()
