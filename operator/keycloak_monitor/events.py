"""Incremental reading of user and admin events, each counted exactly once.

Keycloak lists events newest first, in first/max pages, and filters only by day
(`dateFrom`). A cursor keeps the time of the newest event counted and the ids of the
events at exactly that millisecond; a poll pages from the newest event down to the cursor.
Events that arrive while paging shift the pages, which can show an event twice but never
hide one, so ids seen in the same poll are skipped as well. The cursor is plain data
(`to_status`/`from_status`) so the operator can keep it in the monitor's status and resume
after a restart without counting an event twice.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .admin_client import AdminClient
from .errors import CollectionError, Reason
from .push.seen import SeenIds

EVENT_PAGE_SIZE = 500
USER_EVENTS = "/events"
ADMIN_EVENTS = "/admin-events"


@dataclass(frozen=True)
class EventCursor:
    time: int  # epoch ms of the newest event already counted
    ids: frozenset[str]  # ids of the counted events at exactly that millisecond

    def to_status(self) -> dict[str, Any]:
        return {"time": self.time, "ids": sorted(self.ids)}

    @classmethod
    def from_status(cls, data: Any) -> "EventCursor | None":
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(time=int(data["time"]), ids=frozenset(str(i) for i in data.get("ids") or ()))
        except (KeyError, TypeError, ValueError):
            return None  # a hand-edited or foreign value: start afresh rather than fail


def event_id(event: Mapping[str, Any]) -> str:
    """Keycloak 22+ gives each event an id; older ones are identified by their content."""
    if event.get("id"):
        return str(event["id"])
    canonical = json.dumps(event, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


def _time(event: Any, template: str) -> int:
    if not isinstance(event, Mapping):
        raise CollectionError(Reason.INVALID_RESPONSE, f"{template}: entry is not an object")
    try:
        return int(event["time"])
    except (KeyError, TypeError, ValueError):
        raise CollectionError(Reason.INVALID_RESPONSE, f"{template}: event without a time") from None


def _day_before(ms: int) -> str:
    # dateFrom is a day in the server's time zone; a day earlier covers any zone.
    return (datetime.fromtimestamp(ms / 1000, UTC) - timedelta(days=1)).strftime("%Y-%m-%d")


async def _page(api: AdminClient, template: str, number: int, params: dict[str, Any]) -> list[Any]:
    body = await api.get(template, {**params, "first": number * EVENT_PAGE_SIZE, "max": EVENT_PAGE_SIZE})
    if not isinstance(body, list):
        raise CollectionError(Reason.INVALID_RESPONSE, f"{template} did not answer a list")
    return body


async def start_cursor(api: AdminClient, template: str) -> EventCursor:
    """Where counting starts for a new monitor: after the newest event stored now."""
    newest = await api.get(template, {"first": 0, "max": 1})
    if not isinstance(newest, list):
        raise CollectionError(Reason.INVALID_RESPONSE, f"{template} did not answer a list")
    if not newest:
        return EventCursor(time=0, ids=frozenset())
    # Ask for every event of that millisecond, so none of them is counted later.
    top = _time(newest[0], template)
    recent = await _page(api, template, 0, {"dateFrom": _day_before(top)})
    return EventCursor(time=top, ids=frozenset(event_id(e) for e in recent if _time(e, template) == top))


async def new_events(
    api: AdminClient, template: str, cursor: EventCursor
) -> tuple[list[Mapping[str, Any]], EventCursor]:
    """Events after the cursor (newest first) and the cursor that follows them."""
    params = {"dateFrom": _day_before(cursor.time)} if cursor.time else {}
    fresh: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    number = 0
    while True:
        page = await _page(api, template, number, params)
        reached_cursor = False
        for event in page:
            at = _time(event, template)
            if at < cursor.time:
                reached_cursor = True
                break
            key = event_id(event)
            if key in seen or (at == cursor.time and key in cursor.ids):
                continue
            seen.add(key)
            fresh.append(event)
        if reached_cursor or len(page) < EVENT_PAGE_SIZE:
            break
        number += 1
    return fresh, advance(cursor, fresh, template)


def advance(cursor: EventCursor, fresh: list[Mapping[str, Any]], template: str) -> EventCursor:
    if not fresh:
        return cursor
    top = max(_time(e, template) for e in fresh)
    at_top = {event_id(e) for e in fresh if _time(e, template) == top}
    if top == cursor.time:
        at_top |= cursor.ids
    return EventCursor(time=top, ids=frozenset(at_top))


def user_event_key(event: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(event.get("clientId") or ""), str(event.get("type") or ""), str(event.get("error") or ""))


def admin_event_key(event: Mapping[str, Any]) -> tuple[str, str]:
    return (str(event.get("operationType") or ""), str(event.get("resourceType") or ""))


@dataclass
class EventStream:
    """One kind of event (user or admin) for one monitor: its cursor and counters."""

    template: str
    cursor: EventCursor | None = None

    def __post_init__(self) -> None:
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.seen = SeenIds()  # ids counted, polled or pushed: with events.source both, each once

    async def poll(self, api: AdminClient) -> list[Mapping[str, Any]]:
        if self.cursor is None:
            self.cursor = await start_cursor(api, self.template)
            return []
        fresh, self.cursor = await new_events(api, self.template, self.cursor)
        fresh = [event for event in fresh if event_id(event) not in self.seen]
        for event in fresh:
            self.seen.add(event_id(event), _time(event, self.template))
        key = user_event_key if self.template == USER_EVENTS else admin_event_key
        self.counts.update(key(event) for event in fresh)
        return fresh
