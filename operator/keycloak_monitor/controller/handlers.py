"""kopf wiring: one daemon per KeycloakMonitor, running a Supervisor."""

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ..config import MonitorKey
from ..exposition import MetricsStore
from . import GROUP, PLURAL, VERSION
from .kube import Kube
from .supervisor import Supervisor

log = logging.getLogger(__name__)


def register(registry: kopf.OperatorRegistry, store: MetricsStore, kube: Kube, labels: Mapping[str, Any]) -> None:
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

        supervisor = Supervisor(MonitorKey(namespace, name), body, kube, store, post_event)
        await supervisor.run(stopped.wait)
