"""Notifications in the operator: the outbox lives in status.notifications, the webhook's HMAC
key and the SMTP login in Secrets named by the spec, and one notifier runs beside the monitor
(replaced with it when the spec changes)."""

import asyncio
import logging
from typing import Any

from ..config import MonitorKey
from ..errors import CollectionError
from ..monitor import Monitor
from ..notify.attach import attach_notifier
from ..notify.notifier import Notifier, NotifySecrets
from .credentials import require_opt_in
from .kube import Kube

log = logging.getLogger(__name__)


class NotificationHost:
    def __init__(self, key: MonitorKey, kube: Kube, stored: Any, group: asyncio.TaskGroup) -> None:
        self.key, self._kube, self._outbox, self._group = key, kube, stored, group
        self.notifier: Notifier | None = None

    def attach(self, monitor: Monitor) -> None:
        """Follow the current monitor: a notifier for its spec, or none."""
        self.stop()
        if monitor.spec.notifications is None:
            return
        self.notifier = attach_notifier(monitor, self._outbox, self._store, self._secrets(monitor))
        self._group.create_task(self.notifier.run())

    def failing(self) -> dict[str, str] | None:
        """None without notifications, else the targets that keep failing (empty when all deliver)."""
        return None if self.notifier is None else self.notifier.failing()

    def stop(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None

    async def _store(self, outbox: dict[str, Any]) -> None:
        await self._kube.patch_status(self.key.namespace, self.key.name, {"notifications": outbox})
        self._outbox = outbox

    def _secrets(self, monitor: Monitor) -> Any:
        notifications = monitor.spec.notifications
        assert notifications is not None

        async def load() -> NotifySecrets:
            secret = login = None
            try:
                if notifications.webhook and notifications.webhook.secret:
                    name, key = notifications.webhook.secret
                    body = await self._kube.read_secret(self.key.namespace, name)
                    require_opt_in(self.key.namespace, name, body, "notifications.webhook.secret")
                    secret = body.text(key)
                if notifications.email and notifications.email.credentials_secret:
                    name, user_key, password_key = notifications.email.credentials_secret
                    body = await self._kube.read_secret(self.key.namespace, name)
                    require_opt_in(self.key.namespace, name, body, "notifications.email.credentialsSecret")
                    user, password = body.text(user_key), body.text(password_key)
                    if user and password:
                        login = (user, password)
            except CollectionError as exc:  # deliver what can be delivered; the log says what is missing
                log.warning("monitor %s: notification secrets: %s", self.key, exc.message)
            return NotifySecrets(webhook_secret=secret, smtp_login=login)

        return load
