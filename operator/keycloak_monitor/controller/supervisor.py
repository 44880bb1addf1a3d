"""The life of one KeycloakMonitor resource: collect on its interval, report in its status.

A plain async function with its collaborators passed in, so tests drive it directly; the
kopf daemon in handlers.py only wires it up.
"""

import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from ..config import ConfigError, MonitorKey, MonitorSpec, parse_spec
from ..errors import CollectionError, Reason
from ..exposition import MetricsStore
from ..monitor import Monitor, Outcome, run_every
from .credentials import load_ca, load_credentials
from .kube import Kube
from .status import Report, changes, desired_status, ready_transition

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0

Sleep = Callable[[float], Awaitable[bool]]  # wait up to n seconds; True when told to stop


class PostEvent(Protocol):
    def __call__(self, type: str, reason: str, message: str) -> None: ...


def resumable_cursors(status: Mapping[str, Any], spec: MonitorSpec) -> Mapping[str, Any] | None:
    """Event cursors from the status, only if they were taken on this same realm."""
    cursor = status.get("eventCursor")
    if not isinstance(cursor, Mapping):
        return None
    if (cursor.get("url"), cursor.get("realm")) != (spec.url, spec.realm):
        return None
    return cursor


class Supervisor:
    def __init__(
        self,
        key: MonitorKey,
        body: Mapping[str, Any],
        kube: Kube,
        store: MetricsStore,
        post_event: PostEvent,
    ) -> None:
        self.key, self._body, self._kube, self._store, self._post_event = key, body, kube, store, post_event
        self.monitor: Monitor | None = None
        self._spec_data: Any = None
        self._interval = DEFAULT_INTERVAL
        # What we last wrote; the live body lags behind our own patches.
        self._status: Mapping[str, Any] = copy.deepcopy(dict(body.get("status") or {}))

    async def run(self, sleep: Sleep) -> None:
        try:
            await run_every(lambda: self._interval, self.cycle, sleep)
        finally:
            await self.close()

    async def cycle(self) -> None:
        generation = self._body.get("metadata", {}).get("generation")
        try:
            monitor = await self._current_monitor()
        except ConfigError as exc:
            await self._report(Report(generation, error=CollectionError(Reason.CONFIG, str(exc), "InvalidSpec")))
            return
        outcome = await self._collect(monitor)
        cursors = {"url": monitor.spec.url, "realm": monitor.spec.realm, **monitor.state.cursors()}
        await self._report(Report(generation, snapshot=outcome.snapshot, error=outcome.error, cursors=cursors))

    async def _current_monitor(self) -> Monitor:
        """The monitor for the current spec; a changed spec replaces it and its series."""
        spec_data = self._body.get("spec") or {}
        if self.monitor is not None and spec_data == self._spec_data:
            return self.monitor
        await self.close()
        self._spec_data = copy.deepcopy(dict(spec_data))
        spec = parse_spec(spec_data)
        self._interval = spec.interval
        self.monitor = Monitor(self.key, spec, self._store, cursors=resumable_cursors(self._status, spec))
        return self.monitor

    async def _collect(self, monitor: Monitor) -> Outcome:
        try:
            credentials = await load_credentials(self._kube, self.key.namespace, monitor.spec)
            ca_data = await load_ca(self._kube, self.key.namespace, monitor.spec)
        except CollectionError as exc:
            return monitor.fail(exc)
        return await monitor.collect(credentials, ca_data)

    async def _report(self, report: Report) -> None:
        desired = desired_status(self._status, report, datetime.now(UTC))
        patch = changes(self._status, desired)
        if not patch:
            return
        transition = ready_transition(self._status, desired)
        try:
            await self._kube.patch_status(self.key.namespace, self.key.name, patch)
        except Exception as exc:  # the resource may be going away; the next cycle retries
            log.warning("monitor %s: status not written: %s", self.key, exc)
            return
        self._status = {**self._status, **patch}
        if transition:
            self._post_event(*transition)

    async def close(self) -> None:
        if self.monitor is not None:
            monitor, self.monitor = self.monitor, None
            await monitor.close()
