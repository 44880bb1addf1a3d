"""Event counting as pure state changes: each event once, whatever order pages come in."""

import pytest

from keycloak_monitor.config import parse_spec
from keycloak_monitor.event_labels import OTHER, OVERFLOW, UNKNOWN_CLIENT, admin_key, user_key
from keycloak_monitor.event_state import EventsState, StreamState, count_events, starting_state
from keycloak_monitor.events import EventLedger, EventLimits, NotCounting, PersistFailed

CLIENTS = frozenset({"web", "app"})


def ev(n: int, at: int, client: str = "web", kind: str = "LOGIN", error: str | None = None) -> dict:
    event = {"id": f"e{n}", "time": at, "type": kind, "clientId": client}
    if error:
        event["error"] = error
    return event


def key(event: dict) -> tuple[str, ...]:
    return user_key(event, CLIENTS)


def count(state: StreamState, events: list[dict], **options: int) -> StreamState:
    return count_events(state, events, key, **options)[0]


def total(state: StreamState) -> int:
    return sum(state.totals.values())


def test_events_of_one_millisecond_split_across_reads_are_each_counted_once():
    state = StreamState(since=0.0)
    tie = [ev(i, 1000) for i in range(10)]
    state = count(state, tie[:6])
    state = count(state, tie[3:])  # the next page starts at that millisecond again, in another order
    state = count(state, [*reversed(tie), ev(10, 1001)])
    assert total(state) == 11
    assert state.cursor == 1001


def test_a_late_commit_inside_the_overlap_is_counted_once():
    state = count(StreamState(since=0.0), [ev(1, 10_000), ev(2, 20_000)], overlap_ms=30_000)
    # Stamped at 15 s, committed after the 20 s event was read: the re-read window has it.
    late = ev(3, 15_000)
    state = count(state, [ev(1, 10_000), late, ev(2, 20_000)], overlap_ms=30_000)
    state = count(state, [ev(1, 10_000), late, ev(2, 20_000)], overlap_ms=30_000)
    assert total(state) == 3


def test_an_event_older_than_the_window_is_never_counted():
    state = count(StreamState(since=0.0), [ev(1, 100_000)], overlap_ms=30_000)
    assert state.floor == 70_000
    state = count(state, [ev(2, 60_000)], overlap_ms=30_000)
    assert total(state) == 1


def test_the_window_of_remembered_ids_is_bounded_by_whole_milliseconds():
    events = [ev(i, 1000 + i // 10) for i in range(100)]  # 10 per millisecond
    state = count(StreamState(since=0.0), events, max_ids=25)
    assert len(state.recent) <= 25
    assert state.floor == 1008  # the newest two milliseconds fit whole (20 ids), the third would not
    # Reading the window again counts nothing: everything at or after the floor is remembered.
    again = count(state, events, max_ids=25)
    assert total(again) == 100


def test_the_cursor_millisecond_is_kept_whole_even_past_the_bound():
    events = [ev(i, 5000) for i in range(40)]
    state = count(StreamState(since=0.0), events, max_ids=25)
    assert state.floor == 5000 and len(state.recent) == 40
    assert total(count(state, events, max_ids=25)) == 40


def test_label_sets_past_the_cap_are_folded_not_dropped():
    events = [ev(i, 1000 + i, kind=f"TYPE_{i}") for i in range(20)]
    state = count(StreamState(since=0.0), events, cap=5)
    assert len(state.totals) == 6
    assert state.totals[(OVERFLOW,) * 3] == 15
    assert total(state) == 20


def test_hostile_label_values_are_folded():
    assert user_key(ev(1, 1, client="random-4711", error="whatever"), CLIENTS) == (UNKNOWN_CLIENT, "LOGIN", OTHER)
    assert user_key(ev(1, 1, kind="login<script>"), CLIENTS)[1] == OTHER
    assert user_key({"type": "LOGIN_ERROR", "error": "invalid_user_credentials"}, CLIENTS) == (
        "",
        "LOGIN_ERROR",
        "invalid_user_credentials",
    )
    assert admin_key({"operationType": "CREATE", "resourceType": "USER"}) == ("CREATE", "USER")
    assert admin_key({"operationType": "x" * 300, "resourceType": "lower"}) == (OTHER, OTHER)


def test_state_survives_its_status_form():
    state = count(
        starting_state([ev(0, 900)], now=1.7e9), [ev(1, 1000), ev(2, 1000), ev(3, 1001, error="user_not_found")]
    )
    stored = EventsState("http://kc", "r", {"user": state}).to_status()
    back = EventsState.resume(stored, "http://kc", "r", now=0.0).streams["user"]
    assert (back.cursor, back.floor, dict(back.recent), dict(back.totals)) == (
        state.cursor,
        state.floor,
        dict(state.recent),
        dict(state.totals),
    )
    assert back.since == pytest.approx(1.7e9)
    # Another realm, or url: counting starts afresh.
    assert EventsState.resume(stored, "http://kc", "other", now=0.0).streams == {}


def test_the_cursor_of_earlier_versions_is_resumed_without_totals():
    legacy = {"url": "http://kc", "realm": "r", "user": {"time": 1000, "ids": ["e1"]}}
    state = EventsState.resume(legacy, "http://kc", "r", now=5.0).streams["user"]
    assert (state.cursor, state.since, dict(state.recent), dict(state.totals)) == (1000, 5.0, {"e1": 1000}, {})
    assert total(count(state, [ev(1, 1000), ev(2, 1000)])) == 1


def ledger(persist, stored=None, persist_every: float = 0.0) -> EventLedger:
    spec = parse_spec({"url": "http://kc", "realm": "r", "events": {"admin": False}})
    started = stored or EventsState("http://kc", "r", {"user": StreamState(since=1.0)}).to_status()
    return EventLedger(spec, None, stored=started, persist=persist, limits=EventLimits(persist_every=persist_every))  # type: ignore[arg-type]


async def test_counts_are_published_only_once_stored_and_a_failed_store_keeps_the_old_ones():
    stored: list[dict] = []
    failing = [True]

    async def persist(data: dict) -> None:
        if failing[0]:
            raise OSError("disk full")
        stored.append(data)

    book = ledger(persist)
    with pytest.raises(PersistFailed):
        await book.ingest("user", [ev(1, 1000)])
    assert book.counts("user", 2.0).totals == {}  # nothing published that is not stored
    failing[0] = False
    assert len(await book.ingest("user", [ev(1, 1000), ev(2, 1000)])) == 2  # nothing was lost by the failure
    assert sum(book.counts("user", 2.0).totals.values()) == 2
    # Labelled with the client list of the last collection: none yet here.
    assert stored[-1]["user"]["totals"] == [{"labels": [UNKNOWN_CLIENT, "LOGIN", ""], "count": 2}]


async def test_polled_counts_are_stored_at_most_every_persist_interval_and_published_after():
    stored: list[dict] = []

    async def persist(data: dict) -> None:
        stored.append(data)

    book = ledger(persist, persist_every=3600)
    await book._count("user", [ev(1, 1000)])  # the first store is due at once
    await book._count("user", [ev(2, 1000)])  # the next one waits
    assert len(stored) == 1
    assert sum(book.counts("user", 2.0).totals.values()) == 1


async def test_pushed_events_are_counted_once_together_with_polled_ones():
    book = ledger(None)
    await book._count("user", [ev(1, 1000)])  # polled
    assert [e["id"] for e in await book.ingest("user", [ev(1, 1000), ev(2, 1000), ev(2, 1000)])] == ["e2"]
    assert await book.ingest("user", [ev(2, 1000)]) == []
    assert book.too_old("user", "e3", 1000 - 31_000)  # before the window: could have been forgotten
    with pytest.raises(NotCounting):
        await book.ingest("admin", [ev(9, 1000)])
