"""The durable outbox: events waiting for delivery and the ids already delivered, as plain
data stored in the monitor's status (operator) or a state file (standalone).

An event enters once (its id is remembered after delivery, in a bounded list), leaves a
target's list only when that target took it, and the whole outbox is stored before any
delivery starts and after each one, so a restart neither loses nor repeats a notification
(a crash between a delivery and its store would repeat it; the webhook's Idempotency-Key and
the mail's Message-ID let the receiving side see it is the same).
"""

from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_PENDING = 1000
REMEMBERED = 2000


@dataclass
class Entry:
    key: str
    kind: str
    event: dict[str, Any]
    channels: list[str]  # targets that have not taken it yet


class OutboxFull(Exception):
    """More events wait than the outbox holds; the caller must not accept more."""


class Outbox:
    def __init__(self, stored: Any = None, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.pending: OrderedDict[str, Entry] = OrderedDict()
        self.delivered: deque[str] = deque(maxlen=REMEMBERED)
        if isinstance(stored, Mapping):
            for item in stored.get("pending") or ():
                try:
                    entry = Entry(str(item["key"]), str(item["kind"]), dict(item["event"]), list(item["channels"]))
                except (KeyError, TypeError, ValueError):
                    continue  # a hand-edited entry: skip it rather than stop notifying
                self.pending[entry.key] = entry
            self.delivered.extend(str(k) for k in stored.get("delivered") or ())

    def room(self) -> int:
        return self.max_pending - len(self.pending)

    def add(self, kind: str, events: Sequence[tuple[str, Mapping[str, Any]]], channels: Sequence[str]) -> int:
        """Queue events not seen before; returns how many were queued. OutboxFull leaves it unchanged."""
        fresh = [(k, e) for k, e in events if k not in self.pending and k not in self.delivered]
        if len(fresh) > self.room():
            raise OutboxFull(f"{len(self.pending)} notifications already wait")
        for key, event in fresh:
            self.pending[key] = Entry(key, kind, dict(event), list(channels))
        return len(fresh)

    def done(self, key: str, channel: str) -> None:
        entry = self.pending.get(key)
        if entry is None or channel not in entry.channels:
            return
        entry.channels.remove(channel)
        if not entry.channels:
            del self.pending[key]
            self.delivered.append(key)

    def to_status(self) -> dict[str, Any]:
        return {
            "pending": [
                {"key": e.key, "kind": e.kind, "event": e.event, "channels": list(e.channels)}
                for e in self.pending.values()
            ],
            "delivered": list(self.delivered),
        }
