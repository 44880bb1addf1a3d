"""kopf wiring: one daemon per KeycloakMonitor, running a Supervisor; watch events reach it
at once, so a spec change does not wait for the next interval."""

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from ..config import MonitorKey, MonitorSpec
from ..exposition import MetricsStore
from ..http_pool import HttpPools
from ..push.receiver import PushRegistry
from ..push.target import PushTarget
from ..spec_policy import SpecPolicy
from ..targets import TargetPolicy
from . import GROUP, PLURAL, VERSION
from .kube import Kube
from .leadership import Leadership
from .notifications import NotificationHost
from .push_secret import push_credentials_loader
from .supervisor import Supervisor

log = logging.getLogger(__name__)


def register(
    registry: kopf.OperatorRegistry,
    store: MetricsStore,
    kube: Kube,
    labels: Mapping[str, Any],
    on_watch_event: Callable[[], None] = lambda: None,
    push: PushRegistry | None = None,
    leadership: Leadership | None = None,
    targets: TargetPolicy | None = None,
    spec_policy: SpecPolicy | None = None,
    pools: HttpPools | None = None,
) -> None:
    running: dict[MonitorKey, Supervisor] = {}

    @kopf.daemon(
        GROUP,
        VERSION,
        PLURAL,
        registry=registry,
        labels=dict(labels) or None,
        # On deletion the stop flag ends the wait at once; a collection in flight is
        # cancelled after a short grace so the finalizer goes within seconds.
        cancellation_backoff=1.0,
        cancellation_timeout=10.0,
    )
    async def keycloak_monitor(
        body: kopf.Body, namespace: str, name: str, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        def post_event(type: str, reason: str, message: str) -> None:
            kopf.event(body, type=type, reason=reason, message=message)

        if leadership is not None:  # kopf runs daemons only in the replica that collects
            await leadership.claim()
        key = MonitorKey(namespace, name)
        supervisor = running[key] = Supervisor(key, body, kube, store, post_event, targets, spec_policy, pools)
        target = _push_target(supervisor, kube, namespace)
        if push is not None:
            push.add(key, target)
        try:
            async with asyncio.TaskGroup() as group:  # the notifier runs beside the collections
                stored = (body.get("status") or {}).get("notifications")
                supervisor.notifications = NotificationHost(key, kube, stored, group)
                try:
                    await supervisor.run(stopped.wait)
                finally:
                    supervisor.notifications.stop()
        finally:
            if leadership is not None:
                leadership.released(stopped.reason)
            if push is not None:
                push.remove(key, target)
            if running.get(key) is supervisor:
                del running[key]

    # An event handler, not on.update: it needs no progress annotations, so it writes nothing;
    # async, so kopf runs it in the loop rather than in its thread pool.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, labels=dict(labels) or None)
    async def spec_changed(body: kopf.Body, namespace: str, name: str, type: str | None, **_: Any) -> None:
        on_watch_event()
        supervisor = running.get(MonitorKey(namespace, name))
        if supervisor is not None and type != "DELETED":
            supervisor.observe(body)


def _push_target(supervisor: Supervisor, kube: Kube, namespace: str) -> PushTarget:
    """Pushes go to whatever monitor the supervisor runs now (a spec change replaces it)."""

    def spec() -> MonitorSpec | None:
        return supervisor.monitor.spec if supervisor.monitor else None

    return PushTarget(lambda: supervisor.monitor, push_credentials_loader(kube, namespace, spec))
