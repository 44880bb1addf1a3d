"""One monitor's notifier: queues chosen events in the outbox, delivers them with retries.

Deliveries run in one loop per monitor, oldest event first, each target on its own: a target
that fails is retried with exponential backoff (1 s doubling to 5 min) without holding back the
other. After FAILING_AFTER failures in a row a target counts as failing (`failing()`), which the
operator shows as the NotificationsDelivered condition, until it takes a notification again.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..config import MonitorKey, MonitorSpec, NotificationsSpec
from ..health import Health
from ..targets import TargetPolicy, guarded_transport
from .message import email_message, webhook_document
from .outbox import Outbox
from .senders import DeliveryError, send_email, send_webhook

log = logging.getLogger(__name__)

FAILING_AFTER = 3
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 300.0

Store = Callable[[dict[str, Any]], Awaitable[None]]  # stores the outbox; raises when it could not


@dataclass(frozen=True)
class NotifySecrets:
    webhook_secret: str | None = field(default=None, repr=False)
    smtp_login: tuple[str, str] | None = field(default=None, repr=False)


@dataclass
class _Channel:
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""


class Notifier:
    def __init__(
        self,
        key: MonitorKey,
        spec: MonitorSpec,
        stored: Any,
        store: Store,
        secrets: Callable[[], Awaitable[NotifySecrets]],
        health: Health,
        changed: Callable[[], None] = lambda: None,
        targets: TargetPolicy | None = None,
    ) -> None:
        assert spec.notifications is not None
        self.key, self.spec, self.notifications = key, spec, spec.notifications
        self.outbox = Outbox(stored)
        self._store, self._secrets, self._health, self._changed = store, secrets, health, changed
        self.channels = {name: _Channel() for name in self._names(spec.notifications)}
        self._wake = asyncio.Event()
        self._stopped = False
        self._lock = asyncio.Lock()
        # Webhooks obey the operator's target rules like Keycloak URLs do.
        self._targets = targets or TargetPolicy()
        self._http = httpx.AsyncClient(timeout=10.0, transport=guarded_transport(self._targets))

    @staticmethod
    def _names(spec: NotificationsSpec) -> list[str]:
        return [name for name, target in (("webhook", spec.webhook), ("email", spec.email)) if target is not None]

    async def enqueue(self, kind: str, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Queue the chosen ones among freshly counted events and store the outbox before returning
        (OutboxFull or the store's error otherwise, with nothing queued)."""
        chosen = [(k, e) for k, e in events if self.notifications.wants(kind, e)]
        if not chosen:
            return
        async with self._lock:
            before = self.outbox.to_status()
            if self.outbox.add(kind, chosen, list(self.channels)):
                try:
                    await self._store(self.outbox.to_status())
                except Exception:
                    self.outbox = Outbox(before)
                    raise
        self._wake.set()

    def failing(self) -> dict[str, str]:
        """Targets that failed FAILING_AFTER times in a row, with their last error."""
        return {n: c.last_error for n, c in self.channels.items() if c.failures >= FAILING_AFTER}

    async def run(self) -> None:
        """Deliver until stop() is called."""
        try:
            while not self._stopped:
                try:
                    await self.deliver_due()
                except Exception:  # a bug or an unreadable Secret: this round only, the outbox stays
                    log.exception("monitor %s: notification round failed", self.key)
                    await asyncio.sleep(FIRST_BACKOFF)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_wait())
                self._wake.clear()
        finally:
            await self._http.aclose()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _next_wait(self) -> float:
        if not self.outbox.pending:
            return MAX_BACKOFF
        return max(0.05, min(c.retry_at for c in self.channels.values()) - time.monotonic())

    async def deliver_due(self) -> None:
        secrets: NotifySecrets | None = None
        for entry in list(self.outbox.pending.values()):
            for name in list(entry.channels):
                channel = self.channels.get(name)
                if self._stopped or channel is None or time.monotonic() < channel.retry_at:
                    continue
                secrets = secrets or await self._secrets()
                try:
                    await self._deliver(name, entry.kind, entry.key, entry.event, secrets)
                except DeliveryError as exc:
                    self._failed(name, channel, str(exc))
                    continue
                channel.failures, channel.retry_at, channel.last_error = 0, 0.0, ""
                self._health.notifications[(name, "sent")] += 1
                async with self._lock:
                    self.outbox.done(entry.key, name)
                    try:
                        await self._store(self.outbox.to_status())
                    except Exception as exc:  # kept in memory; a restart before the next store repeats it
                        log.warning("monitor %s: notification outbox not stored: %s", self.key, exc)
                self._changed()

    def _failed(self, name: str, channel: _Channel, error: str) -> None:
        channel.failures += 1
        channel.last_error = error
        channel.retry_at = time.monotonic() + min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (channel.failures - 1))
        self._health.notifications[(name, "failed")] += 1
        (log.warning if channel.failures == FAILING_AFTER else log.info)(
            "monitor %s: %s notification failed (%d in a row): %s", self.key, name, channel.failures, error
        )
        self._changed()

    async def _deliver(self, name: str, kind: str, key: str, event: Mapping[str, Any], secrets: NotifySecrets) -> None:
        if name == "webhook":
            assert self.notifications.webhook is not None
            document = webhook_document(self.key, self.spec.realm, kind, key, event)
            await send_webhook(self._http, self.notifications.webhook, secrets.webhook_secret, document, key)
        else:
            target = self.notifications.email
            assert target is not None
            console = target.console_url or self.spec.url
            message = email_message(target, self.spec.realm, console, kind, key, event)
            await send_email(target, secrets.smtp_login, message, self._targets)
