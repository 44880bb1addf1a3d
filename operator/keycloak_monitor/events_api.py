"""Reading user and admin events from Keycloak, oldest first, in bounded pages.

Keycloak 26.2+ filters `dateFrom` to the millisecond and sorts ascending on request
(`direction=asc`). Pages are then taken by time, not by offset: each page starts at the
time of the previous page's last event, again, because the order among events of one
millisecond is not stable from one query to the next and an offset could skip one. The
ids kept by the caller drop what is read twice.

Servers before 26.2 (22 to 26.1) only take a day as `dateFrom` (`dateTo=D` ends at D's
midnight on 25.0, includes D on 26.1) and answer newest first. There a catch-up (newest event down to the window start)
is read whole before anything is counted, since the oldest events come last; one bigger than
MAX_LEGACY_PAGES is read a day at a time instead (`dateTo`), and a single day bigger than that
is reported. Two things move between the pages of such a read, and the real 25.0.6 does both:
- events stored meanwhile push the next page's events down;
- the events of one millisecond come in an order that depends on the query's `first` and
  `max`, so a millisecond cut by a page end is not what the next page repeats.
So each page after the first starts a few events early (LEGACY_OVERLAP), and never after the
millisecond the read ends in, and is aligned with the read by the events' times (an order no
query changes), which gives how many were stored above. From that millisecond on the page
replaces the read: each millisecond is then taken whole from one query.

Before 26.2 events have no id (25.0.6 and 26.1.4 checked): twins (the same failed login of one
user, twice in one millisecond) differ only by their number. An event without id is named by a digest of its
content and, for the second twin on, its rank among them in one whole read of the window
(which holds every twin, as they share their millisecond), so each is counted once.
"""

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .admin_client import AdminClient
from .errors import CollectionError, Reason

USER_EVENTS = "/events"
ADMIN_EVENTS = "/admin-events"
PAGE_SIZE = 500
TIE_PAGE_SIZE = 10_000  # events of one millisecond, read in one request when a page is all ties
MAX_LEGACY_PAGES = 100
LEGACY_READ_ATTEMPTS = 3  # whole reads begun again when an event is committed inside one
LEGACY_OVERLAP = 50  # events each newest-first page re-reads of the previous one (at most half a page)
MAX_EMPTY_DAYS = 60  # quiet days skipped per cycle when a backlog is read a day at a time
DAY_MS = 86_400_000

Event = Mapping[str, Any]

log = logging.getLogger(__name__)


def event_id(event: Event) -> str:
    """Keycloak 26.2+ gives each event an id; without one (before) its content names it
    (with_ids tells twins apart)."""
    if event.get("id"):
        return str(event["id"])
    canonical = json.dumps(event, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


def with_ids(events: Sequence[Event]) -> list[Event]:
    """`events` (one whole read) with an id on each: twins without one get their rank after
    the digest, the first keeps the bare digest (what earlier versions of this code stored)."""
    rank: Counter[str] = Counter()
    named = []
    for event in events:
        if event.get("id"):
            named.append(event)
            continue
        digest = event_id(event)
        rank[digest] += 1
        named.append({**event, "id": digest if rank[digest] == 1 else f"{digest}-{rank[digest]}"})
    return named


def _runs(times: Sequence[int], lo: int, hi: int) -> list[tuple[int, int]]:
    """The millisecond runs of times[lo:hi], as (start, end) indices."""
    runs, begin = [], lo
    for i in range(lo + 1, hi + 1):
        if i == hi or times[i] != times[i - 1]:
            runs.append((begin, i))
            begin = i
    return runs


def _shift(read: tuple[list[int], list[str]], page: tuple[list[int], list[str]], at: int) -> int | None:
    """How many events were stored above the read since `page` (times and ids) was expected at
    read index `at`: the smallest shift under which the page's times equal the read's wherever
    both hold events, and each millisecond both hold whole has the same events in both, in any
    order. None when no shift fits."""
    (read_times, read_ids), (page_times, page_ids) = read, page
    for shift in range(at + len(page_times)):
        begin = at - shift  # the read index of the page's first event (negative: it starts above the read)
        lo, hi = max(0, begin), min(len(read_times), begin + len(page_times))
        if lo >= hi or page_times[lo - begin] != read_times[lo]:  # the cheap test first
            continue
        if page_times[lo - begin : hi - begin] != read_times[lo:hi]:
            continue
        inner = _runs(read_times, lo, hi)[1:-1]  # the first and last may be cut by either query's end
        if all(Counter(read_ids[a:b]) == Counter(page_ids[a - begin : b - begin]) for a, b in inner):
            return shift
    return None


class _Moved(Exception):
    """A page that fits the read under no shift: an event was committed inside what was read
    (Keycloak stamps an event's time before its transaction ends)."""


def event_time(event: Event) -> int:
    try:
        return int(event["time"])
    except (KeyError, TypeError, ValueError):
        raise CollectionError(Reason.INVALID_RESPONSE, "an event without a time") from None


async def _list(api: AdminClient, template: str, params: dict[str, Any]) -> list[Event]:
    body = await api.get(template, params)
    if not isinstance(body, list) or not all(isinstance(e, Mapping) for e in body):
        raise CollectionError(Reason.INVALID_RESPONSE, f"{template} did not answer a list of events")
    for event in body:
        event_time(event)
    return body


def _day(ms: int, shift: int) -> str:
    """A `dateFrom`/`dateTo` day: these are days in the server's time zone, so a day earlier
    (or later) than the UTC one covers any zone."""
    return (datetime.fromtimestamp(ms / 1000, UTC) + timedelta(days=shift)).strftime("%Y-%m-%d")


class EventSource:
    """One stream (user or admin events) of one realm."""

    def __init__(self, api: AdminClient, template: str, page_size: int = PAGE_SIZE) -> None:
        self.api, self.template, self.page_size = api, template, page_size
        self.ascending: bool | None = None  # found out on first use

    async def supports_ascending(self) -> bool:
        """Whether this server takes a millisecond dateFrom (26.2+, with direction=asc):
        older ones reject it with 400."""
        if self.ascending is None:
            try:
                await _list(self.api, self.template, {"dateFrom": 0, "direction": "asc", "first": 0, "max": 1})
                self.ascending = True
            except CollectionError as exc:
                if exc.reason is not Reason.INVALID_RESPONSE:
                    raise
                message = "realm '%s': %s takes a day as dateFrom (before 26.2): reading newest first"
                log.info(message, self.api.spec.realm, self.template)
                self.ascending = False
        return self.ascending

    async def newest(self) -> list[Event]:
        """Every event of the newest millisecond stored now (none in an empty realm)."""
        top = await _list(self.api, self.template, {"first": 0, "max": 1})
        if not top:
            return []
        at = event_time(top[0])
        if await self.supports_ascending():
            params: dict[str, Any] = {"dateFrom": at, "dateTo": at, "first": 0, "max": TIE_PAGE_SIZE}
            return await _list(self.api, self.template, params)
        recent = await _list(self.api, self.template, {"dateFrom": _day(at, -1), "first": 0, "max": self.page_size})
        return with_ids([e for e in recent if event_time(e) == at])

    async def forward(self, start: int) -> AsyncIterator[tuple[list[Event], bool]]:
        """Pages of events from `start` (epoch ms) on, oldest first (26.2+); each with
        whether it is the last one (nothing newer stored yet)."""
        since = start
        while True:
            params = {"dateFrom": since, "direction": "asc", "first": 0, "max": self.page_size}
            page = await _list(self.api, self.template, params)
            times = [event_time(e) for e in page]
            if times != sorted(times):
                self.ascending = False  # a server that ignores direction: use the other way next time
                raise CollectionError(Reason.INVALID_RESPONSE, f"{self.template} ignored direction=asc")
            last = len(page) < self.page_size
            yield page, last
            if last:
                return
            if times[0] == times[-1]:  # a whole page in one millisecond: take that millisecond at once
                tie = {"dateFrom": times[0], "dateTo": times[0], "direction": "asc", "first": 0, "max": TIE_PAGE_SIZE}
                yield await _list(self.api, self.template, tie), False
                since = times[0] + 1
            else:
                since = times[-1]

    async def backward(self, start: int, counted: int = 0) -> list[Event] | None:
        """Every event from `start` (epoch ms) on, newest first (servers before 26.2). When
        there are more than MAX_LEGACY_PAGES pages of them: every event from `start` to the
        end of a day (`dateTo`), in the first such window with an event after `counted` (the
        newest time counted; windows that end before are all counted), so a big backlog is
        caught up a day at a time. None when one day holds too many."""
        found = await self._newest_first(start, None)
        if found is not None or not start:
            return found
        day, now = max(start, counted), time.time() * 1000
        while day <= now and day - max(start, counted) <= MAX_EMPTY_DAYS * DAY_MS:
            found = await self._newest_first(start, day)
            if found is None or any(event_time(e) > counted for e in found):
                return found
            day += DAY_MS  # nothing new up to that day's end: the next one
        return None

    async def _newest_first(self, start: int, upto: int | None) -> list[Event] | None:
        """One whole read (see _read_newest_first), begun again when an event committed late
        lands inside what a read holds: in flight, its transaction ends within moments."""
        for attempt in range(1, LEGACY_READ_ATTEMPTS + 1):
            try:
                return await self._read_newest_first(start, upto)
            except _Moved:
                level = logging.WARNING if attempt == LEGACY_READ_ATTEMPTS else logging.INFO
                log.log(level, "%s changed inside a read (attempt %d): reading again", self.template, attempt)
        return None

    async def _read_newest_first(self, start: int, upto: int | None) -> list[Event] | None:
        params: dict[str, Any] = {"dateFrom": _day(start, -1)} if start else {}
        if upto is not None:  # a prefix from `start` whatever the zone and whether D is included
            params["dateTo"] = _day(upto, +1)
        read: list[Event] = []  # newest first, each event once
        times: list[int] = []
        ids: list[str] = []
        overlap = min(LEGACY_OVERLAP, self.page_size // 2)
        stored = 0  # events stored above the read since it began: the read's end moved down by as many
        for _ in range(MAX_LEGACY_PAGES):
            last_ms = len(times) - 1  # where the read's last millisecond begins: possibly cut
            while last_ms > 0 and times[last_ms - 1] == times[-1]:
                last_ms -= 1
            at = max(0, min(len(read) - overlap, last_ms - 1))  # an event before it pins the alignment
            size = len(read) - at + self.page_size
            page = await _list(self.api, self.template, {**params, "first": stored + at, "max": size})
            page_times, page_ids = [event_time(e) for e in page], [event_id(e) for e in page]
            if read and not page:  # nothing where the read goes on: events were deleted meanwhile
                break
            shift = _shift((times, ids), (page_times, page_ids), at) if read else 0
            if shift is None and min(page_times) >= times[0]:
                shift = at + len(page)  # all of it stored since: the read lies further down
            elif shift is None:
                raise _Moved
            else:  # from the read's last millisecond on, the page (one query) replaces the read
                cut = min(max(last_ms, 0), at - shift + len(page))
                skip = cut - (at - shift)
                read, times, ids = (
                    read[:cut] + page[skip:],
                    times[:cut] + page_times[skip:],
                    ids[:cut] + page_ids[skip:],
                )
            stored += shift
            if len(page) < size or (read and times[-1] < start):
                break
        else:
            return None
        return with_ids([e for e, when in zip(read, times, strict=True) if when >= start])
