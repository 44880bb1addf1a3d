"""Connecting a notifier to a monitor: its counted events (polled or pushed) feed the outbox."""

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..monitor import Monitor
from .notifier import Notifier, NotifySecrets, Store
from .outbox import OutboxFull

log = logging.getLogger(__name__)


def attach_notifier(
    monitor: Monitor, stored: Any, store: Store, secrets: Callable[[], Awaitable[NotifySecrets]]
) -> Notifier:
    notifier = Notifier(
        monitor.key, monitor.spec, stored, store, secrets, monitor.health, monitor.republish, targets=monitor.targets
    )

    async def on_events(kind: str, events: list[tuple[str, Mapping[str, Any]]]) -> None:
        try:
            await notifier.enqueue(kind, events)
        except OutboxFull as exc:
            monitor.health.notifications[("outbox", "dropped")] += len(events)
            log.warning("monitor %s: notifications dropped: %s", monitor.key, exc)
        except Exception as exc:  # the store failed: these events will not be notified
            monitor.health.notifications[("outbox", "dropped")] += len(events)
            log.warning("monitor %s: notifications not stored, dropped: %s", monitor.key, exc)

    monitor.state.on_events = on_events
    return notifier
