"""What a real Keycloak cannot be made to show on demand, with a scripted /events:

- Keycloak 22 to 26.1 answer events newest first and filter by day only: the events are
  still counted exactly once (400 for a millisecond dateFrom, `direction` ignored, as those
  versions answer; test_compat_keycloak runs the same against a real 25.0.6), also when a
  backlog is read a day at a time;
- a monitor further behind than the realm keeps events says so (Keycloak deletes expired
  events on its own schedule, not on a test's)."""

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from keycloak_monitor import events_api
from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.events import EventLimits
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.monitor import Monitor

from .fault_injection import ScriptedKeycloak

NOW_MS = 1_790_000_000_000
ERRORS = (
    'keycloak_realm_user_events_total{namespace="ns",monitor="m",realm="demo",'
    'client_id="web",event="LOGIN_ERROR",error="invalid_user_credentials"}'
)


DAY_MS = 86_400_000


def _day_start(day: str) -> int:
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


class OldEvents:
    """/events as Keycloak before 26.2 serves it (or 26.2+ with `modern`)."""

    def __init__(
        self,
        modern: bool = False,
        ids: bool = True,
        reorder: bool = False,
        meanwhile: Callable[["OldEvents", int], None] | None = None,
    ) -> None:
        self.modern, self.ids = modern, ids
        self.reorder = reorder  # order one millisecond's events differently in each query, as 25.0.6 does
        self.meanwhile = meanwhile  # what happens to the events before a page from `first` is answered
        self.events: list[dict] = []
        self.asked: list[str] = []
        self.stored_per_page = 0  # events stored before each page after the first

    def add(self, count: int, at: int, per_ms: int = 7, users: int = 1) -> None:
        start = len(self.events)
        self.events += [
            {
                **({"id": f"e{start + i}"} if self.ids else {}),  # none before Keycloak 26: twins
                "time": at + i // per_ms,
                "userId": f"u{i % users}",
                "type": "LOGIN_ERROR",
                "clientId": "web",
                "error": "invalid_user_credentials",
            }
            for i in range(count)
        ]  # seven events per millisecond

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params, query = request.url.params, str(request.url.query)
        self.asked.append(query)
        if self.meanwhile is not None:
            self.meanwhile(self, int(params.get("first", 0)))
        if self.modern:
            since, upto = int(params.get("dateFrom", 0)), int(params.get("dateTo", 2**62))
            found = sorted((e for e in self.events if since <= e["time"] <= upto), key=lambda e: e["time"])
            if params.get("direction") != "asc":
                found.reverse()
            first, size = int(params.get("first", 0)), int(params.get("max", 100))
            return httpx.Response(200, json=found[first : first + size])

        if self.stored_per_page and params.get("first", "0") != "0":
            self.add(self.stored_per_page, max(e["time"] for e in self.events) + 1)
        day = params.get("dateFrom")
        if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            return httpx.Response(400, json={"error": "Invalid value for 'Date(From)', expected format is yyyy-MM-dd"})
        since = _day_start(day) if day else 0
        upto = _day_start(params["dateTo"]) if "dateTo" in params else 2**62  # dateTo=D ends at D's midnight
        found = [e for e in self.events if since <= e["time"] < upto]
        if self.reorder:  # within a millisecond, an order that depends on the query
            found.sort(key=lambda e: hashlib.sha256((query + json.dumps(e, sort_keys=True)).encode()).digest())
        found.sort(key=lambda e: -e["time"])  # newest first
        first, size = int(params.get("first", 0)), int(params.get("max", 100))
        return httpx.Response(200, json=found[first : first + size])


def scripted_monitor(events: OldEvents, store: MetricsStore, limits: EventLimits) -> Monitor:
    """A monitor of user events only, against a scripted Keycloak serving `events`."""
    kc = ScriptedKeycloak(faults={"/events": events})
    spec = parse_spec(
        {"url": "http://kc.test", "realm": "demo", "interval": "30s", "timeout": "10s", "events": {"admin": False}}
    )
    return Monitor(MonitorKey("ns", "m"), spec, store, transport=kc.transport(), event_limits=limits)


CREDENTIALS = Credentials(username="monitor", password="x")


async def test_events_of_an_older_keycloak_are_counted_once_through_newest_first_pages():
    old = OldEvents()
    old.add(10, NOW_MS - 60_000)  # before the monitor: not counted
    store = MetricsStore(False)
    monitor = scripted_monitor(old, store, EventLimits(page_size=50))
    creds = CREDENTIALS
    assert (await monitor.collect(creds)).ok
    old.add(333, NOW_MS)
    assert (await monitor.collect(creds)).ok
    old.add(100, NOW_MS + 48)  # sharing milliseconds with the previous ones
    assert (await monitor.collect(creds)).ok
    assert (await monitor.collect(creds)).ok
    assert f"{ERRORS} 433.0" in store.render().decode()
    assert not any("direction" in q and "dateFrom=0" not in q for q in old.asked[1:])  # found out once
    await monitor.close()


async def test_twins_without_ids_are_each_counted_while_a_flood_pushes_the_pages_down():
    old = OldEvents(ids=False)
    store = MetricsStore(False)
    monitor = scripted_monitor(old, store, EventLimits(page_size=40))
    creds = CREDENTIALS
    old.add(3, NOW_MS - 60_000)  # before the monitor: not counted
    assert (await monitor.collect(creds)).ok
    old.add(200, NOW_MS)
    old.stored_per_page = 12  # each page pushed down by more than the 20 it re-reads, in all by far more
    assert (await monitor.collect(creds)).ok
    old.stored_per_page = 0
    for _ in range(2):
        assert (await monitor.collect(creds)).ok
    assert _value(store.render().decode(), ERRORS) == len(old.events) - 3 > 200
    await monitor.close()


async def test_a_burst_of_more_than_a_page_stored_mid_read_is_followed():
    """Between two newest-first pages more events are stored than a page holds: the page asked
    next lies wholly inside what was read, and the read must still move on."""

    def burst(old: OldEvents, first: int) -> None:
        if first >= 100 and len(old.events) == 300:
            old.add(60, NOW_MS + 1000, per_ms=1)

    old = OldEvents(ids=False, meanwhile=burst)
    store = MetricsStore(False)
    monitor = scripted_monitor(old, store, EventLimits(page_size=40))
    assert (await monitor.collect(CREDENTIALS)).ok
    old.add(300, NOW_MS, per_ms=1)
    asked = len(old.asked)
    assert (await monitor.collect(CREDENTIALS)).ok
    assert _value(store.render().decode(), ERRORS) == 300  # the burst is newer than the read
    assert len(old.asked) - asked <= 360 // 20 + 4  # 20 new a page, not the same page again and again
    assert (await monitor.collect(CREDENTIALS)).ok
    assert _value(store.render().decode(), ERRORS) == 360
    await monitor.close()


async def test_pages_that_order_each_millisecond_differently_count_every_event_once():
    """Keycloak 25.0.6 orders the events of one millisecond differently for each `first` and `max`
    (seen on the real server): a millisecond cut by a page end is not what the next page repeats,
    while more events are stored between pages."""
    old = OldEvents(ids=False, reorder=True)
    store = MetricsStore(False)
    monitor = scripted_monitor(old, store, EventLimits(page_size=40))
    assert (await monitor.collect(CREDENTIALS)).ok
    old.add(300, NOW_MS, per_ms=6, users=4)  # twins too: six events of four users in each millisecond
    old.stored_per_page = 9
    asked = len(old.asked)
    assert (await monitor.collect(CREDENTIALS)).ok
    old.stored_per_page = 0
    first = _value(store.render().decode(), ERRORS)
    assert 300 <= first < len(old.events), first  # the read went on, and no event is counted twice
    assert len(old.asked) - asked <= 2 * len(old.events) // 20, old.asked[asked:]
    assert (await monitor.collect(CREDENTIALS)).ok
    assert _value(store.render().decode(), ERRORS) == len(old.events)
    await monitor.close()


async def test_an_event_committed_late_inside_a_read_is_counted_once():
    """Keycloak stamps an event's time before its transaction ends: one committed while a
    newest-first read is under way can land inside what the read holds, where no shift of
    the pages explains it. The read begins again, and every event is counted once."""

    def late_commit(old: OldEvents, first: int) -> None:
        if first >= 20 and len(old.events) == 300:
            old.events.append({**old.events[269], "userId": "late"})  # stamped among the ones read

    old = OldEvents(ids=False, reorder=True, meanwhile=late_commit)
    store = MetricsStore(False)
    monitor = scripted_monitor(old, store, EventLimits(page_size=40))
    assert (await monitor.collect(CREDENTIALS)).ok
    old.add(300, NOW_MS, per_ms=1)
    assert (await monitor.collect(CREDENTIALS)).ok
    assert _value(store.render().decode(), ERRORS) == 301
    assert (await monitor.collect(CREDENTIALS)).ok
    assert _value(store.render().decode(), ERRORS) == 301
    await monitor.close()


async def test_events_cleared_in_the_middle_of_a_read_keep_what_was_read():
    """An administrator clears the realm's events (or they expire) while a read is under way:
    what was read is counted, nothing twice, and the next cycles go on."""

    def clear(old: OldEvents, first: int) -> None:
        if first >= 60 and len(old.events) == 200:
            old.events.clear()

    old = OldEvents(reorder=True, meanwhile=clear)
    store = MetricsStore(False)
    monitor = scripted_monitor(old, store, EventLimits(page_size=40))
    assert (await monitor.collect(CREDENTIALS)).ok
    old.add(200, NOW_MS, users=3)
    assert (await monitor.collect(CREDENTIALS)).ok
    read = _value(store.render().decode(), ERRORS)
    assert 40 <= read < 200, read  # the first pages, each event once
    old.add(5, NOW_MS + 60_000)
    assert (await monitor.collect(CREDENTIALS)).ok
    assert _value(store.render().decode(), ERRORS) == read + 5
    await monitor.close()


async def test_a_backlog_too_big_for_one_read_on_an_older_keycloak_is_caught_up_a_day_at_a_time(monkeypatch):
    monkeypatch.setattr(events_api, "MAX_LEGACY_PAGES", 3)  # 30 events at most in one read
    old = OldEvents()
    store = MetricsStore(False)
    monitor = scripted_monitor(old, store, EventLimits(page_size=10))
    creds = CREDENTIALS
    old.add(1, NOW_MS)
    assert (await monitor.collect(creds)).ok  # counting starts after that one
    for day in range(1, 7):
        old.add(8, NOW_MS + day * DAY_MS, per_ms=2)  # 48 events over six days
    seen = []
    for _ in range(10):
        outcome = await monitor.collect(creds)
        assert outcome.snapshot is not None and outcome.snapshot.warnings == ()
        seen.append(_value(store.render().decode(), ERRORS))
        if seen[-1] == 48:
            break
    assert seen[-1] == 48 and len(seen) > 1 and seen == sorted(seen), seen
    await monitor.close()


def _value(text: str, series: str) -> float:
    return next((float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(series)), 0.0)


async def test_a_monitor_further_behind_than_the_realm_keeps_events_says_so():
    backlog = OldEvents(modern=True)
    config = {"eventsEnabled": True, "adminEventsEnabled": True, "eventsExpiration": 60}
    kc = ScriptedKeycloak(faults={"/events": backlog, "/events/config": lambda _: httpx.Response(200, json=config)})
    spec = parse_spec(
        {"url": "http://kc.test", "realm": "demo", "interval": "30s", "timeout": "10s", "events": {"admin": False}}
    )
    store = MetricsStore(False)
    limits = EventLimits(page_size=10, pages_per_cycle=1)
    monitor = Monitor(MonitorKey("ns", "m"), spec, store, transport=kc.transport(), event_limits=limits)
    creds = Credentials(username="monitor", password="x")
    assert (await monitor.collect(creds)).ok
    old = int(time.time() * 1000) - 300_000  # five minutes ago: Keycloak keeps them one
    backlog.add(50, old)
    outcome = await monitor.collect(creds)  # ten of fifty read
    assert outcome.snapshot is not None
    assert [w.reason for w in outcome.snapshot.warnings] == ["EventsExpiredUnread"]
    text = store.render().decode()
    assert (
        'keycloak_monitor_event_lag_exceeds_expiration{namespace="ns",monitor="m",realm="demo",stream="user"} 1.0'
        in text
    )
    for _ in range(15):  # ten a cycle, each page starting again at the last millisecond read
        outcome = await monitor.collect(creds)
        assert outcome.snapshot is not None
        if not outcome.snapshot.warnings:
            break
    assert outcome.snapshot.warnings == ()  # caught up: the warning goes
    assert f"{ERRORS} 50.0" in store.render().decode()
    await monitor.close()
