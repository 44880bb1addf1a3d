"""kopf wiring: one daemon per KeycloakMonitor, running a Supervisor; watch events reach it
at once, so a spec change does not wait for the next interval."""

import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from ..config import MonitorKey
from ..exposition import MetricsStore
from . import GROUP, PLURAL, VERSION
from .kube import Kube
from .supervisor import Supervisor

log = logging.getLogger(__name__)


def register(
    registry: kopf.OperatorRegistry,
    store: MetricsStore,
    kube: Kube,
    labels: Mapping[str, Any],
    on_watch_event: Callable[[], None] = lambda: None,
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

        key = MonitorKey(namespace, name)
        supervisor = running[key] = Supervisor(key, body, kube, store, post_event)
        try:
            await supervisor.run(stopped.wait)
        finally:
            if running.get(key) is supervisor:
                del running[key]

    # An event handler, not on.update: it needs no progress annotations, so it writes nothing.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, labels=dict(labels) or None)
    def spec_changed(body: kopf.Body, namespace: str, name: str, type: str | None, **_: Any) -> None:
        on_watch_event()
        supervisor = running.get(MonitorKey(namespace, name))
        if supervisor is not None and type != "DELETED":
            supervisor.observe(body)
