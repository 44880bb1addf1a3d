"""What a monitor knows about one event stream, as an immutable value and pure functions.

A stream's state holds the counts (totals per label set) together with the position they
were counted up to, so both always change in one step:

- `cursor`: time (epoch ms) of the newest polled event counted;
- `floor`: the start of the window of remembered ids. Every counted event at or after the
  floor has its id in `recent`; events before the floor are never counted, since they
  cannot be told apart from counted ones whose ids were forgotten.

The floor trails the cursor by an overlap (OVERLAP_MS): Keycloak stamps an event's time
before its transaction commits, so an event can appear after newer ones were read. Every
read starts at the floor and skips remembered ids, which counts such a late event once.
The window holds at most MAX_REMEMBERED_IDS ids: past that the floor moves up (by whole
milliseconds, never past the cursor), shortening the overlap. A late event older than the
floor is then not counted; that is the bound of "exactly once".
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .event_labels import OVERFLOW
from .events_api import event_id, event_time

OVERLAP_MS = 30_000
MAX_REMEMBERED_IDS = 1_000
DEFAULT_SERIES_CAP = 500

Key = tuple[str, ...]
KeyOf = Callable[[Mapping[str, Any]], Key]


@dataclass(frozen=True)
class StreamState:
    since: float  # epoch seconds when counting began: the counters' OpenMetrics _created
    cursor: int = 0
    floor: int = 0
    recent: Mapping[str, int] = field(default_factory=dict)  # event id -> time (ms)
    totals: Mapping[Key, int] = field(default_factory=dict)
    caught_up_at: float | None = None  # wall time of the last read that found no more events (not stored)

    def to_status(self) -> dict[str, Any]:
        by_time: dict[int, list[str]] = {}
        for key, at in self.recent.items():
            by_time.setdefault(at, []).append(key)
        return {
            "since": _rfc3339(self.since),
            "cursor": {
                "time": self.cursor,
                "windowStart": self.floor,
                "seen": [{"time": at, "ids": sorted(ids)} for at, ids in sorted(by_time.items())],
            },
            "totals": [{"labels": list(key), "count": count} for key, count in sorted(self.totals.items())],
        }

    @classmethod
    def from_status(cls, data: Any, arity: int) -> "StreamState | None":
        """The stored state, or None when it is missing or malformed (counting starts afresh
        rather than failing)."""
        if not isinstance(data, Mapping):
            return None
        try:
            cursor = data["cursor"]
            recent = {str(i): int(group["time"]) for group in cursor.get("seen") or () for i in group["ids"]}
            totals: dict[Key, int] = {}
            for entry in data.get("totals") or ():
                labels = tuple(str(v) for v in entry["labels"])
                if len(labels) != arity:
                    return None
                totals[labels] = int(entry["count"])
            return cls(
                since=_parse_rfc3339(str(data["since"])),
                cursor=int(cursor["time"]),
                floor=int(cursor.get("windowStart", cursor["time"])),
                recent=recent,
                totals=totals,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    @classmethod
    def from_legacy_cursor(cls, data: Any, now: float) -> "StreamState | None":
        """The `eventCursor` of earlier versions: a position without totals."""
        if not isinstance(data, Mapping):
            return None
        try:
            at = int(data["time"])
            return cls(since=now, cursor=at, floor=at, recent={str(i): at for i in data.get("ids") or ()})
        except (KeyError, TypeError, ValueError):
            return None


def starting_state(newest: Sequence[Mapping[str, Any]], now: float) -> StreamState:
    """Counting starts after the newest events stored now (`newest`: every event of the
    newest millisecond, or nothing for an empty realm)."""
    if not newest:
        return StreamState(since=now)
    top = max(event_time(e) for e in newest)
    return StreamState(since=now, cursor=top, floor=top, recent={event_id(e): top for e in newest})


def fold(key: Key, totals: Mapping[Key, int], cap: int) -> Key:
    """A new label set past the cap is counted in the overflow series, never dropped."""
    if key in totals or len(totals) < cap:
        return key
    return (OVERFLOW,) * len(key)


def count_events(
    state: StreamState,
    events: Iterable[Mapping[str, Any]],
    key_of: KeyOf,
    *,
    polled: bool = True,
    cap: int = DEFAULT_SERIES_CAP,
    overlap_ms: int = OVERLAP_MS,
    max_ids: int = MAX_REMEMBERED_IDS,
) -> tuple[StreamState, list[Mapping[str, Any]]]:
    """The state after `events`, and the events counted now (each id at most once).

    Polled events move the cursor; pushed ones (`polled=False`) are only remembered, since
    a push can arrive ahead of events not yet read, which the next poll must still count."""
    recent = dict(state.recent)
    totals = dict(state.totals)
    newest = state.cursor
    counted = []
    for event in events:
        at, key = event_time(event), event_id(event)
        if polled:
            newest = max(newest, at)
        if at < state.floor or key in recent:
            continue
        recent[key] = at
        series = fold(key_of(event), totals, cap)
        totals[series] = totals.get(series, 0) + 1
        counted.append(event)
    floor = _bounded_floor(recent, max(state.floor, newest - overlap_ms), newest, max_ids)
    recent = {key: at for key, at in recent.items() if at >= floor}
    return replace(state, cursor=newest, floor=floor, recent=recent, totals=totals), counted


def _bounded_floor(recent: Mapping[str, int], floor: int, newest: int, max_ids: int) -> int:
    inside = sorted((at for at in recent.values() if at >= floor), reverse=True)
    if len(inside) <= max_ids:
        return floor
    # Keep the newest milliseconds that fit whole; the cursor's millisecond always stays.
    return min(inside[max_ids] + 1, newest)


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


STREAMS = ("user", "admin")


@dataclass(frozen=True)
class EventsState:
    """Both streams of one monitor, with the Keycloak they were counted on."""

    url: str
    realm: str
    streams: Mapping[str, StreamState] = field(default_factory=dict)  # "user"/"admin" -> state

    def with_stream(self, name: str, stream: StreamState) -> "EventsState":
        return replace(self, streams={**self.streams, name: stream})

    def to_status(self) -> dict[str, Any]:
        """`status.events`; a stream not counted is null, which a merge patch removes."""
        data: dict[str, Any] = {"url": self.url, "realm": self.realm}
        for name in STREAMS:
            stream = self.streams.get(name)
            data[name] = stream.to_status() if stream else None
        return data

    @classmethod
    def resume(cls, stored: Any, url: str, realm: str, now: float) -> "EventsState":
        """The stored state when it was taken on this same realm (else a fresh one).
        Accepts `status.events` and the `eventCursor` of earlier versions."""
        fresh = cls(url, realm)
        if not isinstance(stored, Mapping) or (stored.get("url"), stored.get("realm")) != (url, realm):
            return fresh
        streams = {}
        for name, arity in (("user", 3), ("admin", 2)):
            data = stored.get(name)
            state = StreamState.from_status(data, arity) or StreamState.from_legacy_cursor(data, now)
            if state is not None:
                streams[name] = state
        return cls(url, realm, streams)
