"""The session listing stays exact while sessions begin and end between its pages."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from keycloak_monitor.admin_client import AdminClient
from keycloak_monitor.anchored_pages import list_anchored
from keycloak_monitor.config import Credentials, parse_spec
from keycloak_monitor.sessions import (
    OnlineSessions,
    SessionStat,
    _refresh_order,
    list_online_sessions,
    parse_session_stats,
    summarize,
)
from tests.realms import PASSWORD, make_realm
from tests.session_churn import SessionTruth, churning, login_all
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer

ORIGINAL = [f"s{i:02d}" for i in range(30)]  # Keycloak 26 lists a client's sessions by id


class ShiftingRealm:
    """Thirty sessions of one client; once page 0 is answered, `change` alters the list
    before any later page is answered (sessions begin, end or are refreshed between two
    page reads). Listed by id (Keycloak 26), or by last refresh (volatile sessions)."""

    def __init__(self, change: Callable[[list[str]], None], refreshed: Callable[[str, int], int] | None = None):
        self.ids = list(ORIGINAL)
        self.refreshed = refreshed  # (id, position) -> its last refresh; None: listed by id
        self.change: Callable[[list[str]], None] | None = change
        self.first_page_answered = asyncio.Event()
        self.pages: list[tuple[int, int]] = []  # (first, max) of each page read, in order

    async def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        if path.endswith("/client-session-stats"):
            return httpx.Response(200, json=[{"id": "c1", "clientId": "web", "active": str(len(self.ids))}])
        first, size = int(request.url.params["first"]), int(request.url.params["max"])
        if first > 0:
            await self.first_page_answered.wait()
            if self.change is not None:
                self.change(self.ids)
                self.change = None
        self.pages.append((first, size))
        if first == 0:
            self.first_page_answered.set()
        page = self.ids[first : first + size]
        body = [
            {"id": i, "userId": f"user-of-{i}", "username": i, "start": 0, "lastAccess": self._refreshed(i, first + n)}
            for n, i in enumerate(page)
        ]
        return httpx.Response(200, json=body)

    def _refreshed(self, session: str, position: int) -> int:
        # By id, the refresh times are in no order; by refresh, they grow along the list.
        return -position if self.refreshed is None else self.refreshed(session, position)


def by_position(session: str, position: int) -> int:
    return position


async def list_shifting(realm: ShiftingRealm, page_size: int = 10, overlap: int = 2) -> OnlineSessions:
    spec = parse_spec({"url": "http://kc.test", "realm": "demo", "interval": "5s", "timeout": "2s"})
    api = AdminClient(spec, lambda endpoint, code: None, transport=httpx.MockTransport(realm.handler))
    await api.use_credentials(Credentials(username="monitor", password="pw"))
    try:
        stats = [SessionStat("c1", "web", len(ORIGINAL), 0)]
        return await list_online_sessions(api, stats, page_size=page_size, overlap=overlap)
    finally:
        await api.aclose()


def end_three(ids: list[str]) -> None:
    del ids[1:4]  # plain offsets would now skip s10, s11, s12


def begin_three(ids: list[str]) -> None:
    ids[1:1] = ["s00a", "s00b", "s00c"]  # plain offsets would now read s07, s08, s09 twice


def refresh_one(ids: list[str]) -> None:
    ids.append(ids.pop(15))  # by last refresh, a refreshed session moves to the end


@pytest.mark.parametrize("refreshed", [None, by_position], ids=["by-id", "by-refresh"])
async def test_sessions_ended_before_a_page_boundary_do_not_hide_the_next_ones(refreshed):
    realm = ShiftingRealm(end_three, refreshed)
    online = await list_shifting(realm)
    # s01..s03 were listed before they ended; every session is counted, once.
    assert sorted(online.sessions) == ORIGINAL
    assert online.discrepancy == 0  # 30 lies between the counters read before (30) and after (27)
    # Page 1 had shifted back by three, past its overlap of two: it was read again, wider.
    page_1 = [first for first, _ in realm.pages if 0 < first < 10]
    assert len(page_1) == 2 and page_1[1] < page_1[0] <= 8


@pytest.mark.parametrize("refreshed", [None, by_position], ids=["by-id", "by-refresh"])
async def test_sessions_begun_before_a_page_boundary_are_not_counted_twice(refreshed):
    realm = ShiftingRealm(begin_three, refreshed)
    online = await list_shifting(realm)
    assert sorted(online.sessions) == ORIGINAL  # s07..s09 were read twice, counted once
    assert summarize(online, 0.0, 0).user_sessions == 30
    assert online.discrepancy == 0


async def test_a_session_refreshed_past_the_pages_read_is_still_listed():
    """Listed by last refresh, pages are read one after another: a session moved from a page
    not yet read to the end is found there."""
    realm = ShiftingRealm(refresh_one, by_position)
    online = await list_shifting(realm)
    assert sorted(online.sessions) == ORIGINAL
    assert [first for first, _ in realm.pages] == sorted(first for first, _ in realm.pages)  # in turn


def reorder_tie(ids: list[str]) -> None:
    ids[5:15] = reversed(ids[5:15])  # s05..s14 share a second: the server may list them in any order


def tie_of(session: str, position: int) -> int:
    number = int(session[1:])
    return 1 if number < 5 else 2 if number < 15 else number


async def test_sessions_refreshed_in_the_same_second_are_listed_whatever_their_order():
    """Listed by last refresh, ten sessions share a second across the page boundary and come
    back in another order: the next page is read from before their second."""
    realm = ShiftingRealm(reorder_tie, tie_of)
    online = await list_shifting(realm)
    assert sorted(online.sessions) == ORIGINAL  # plain pages, or anchors by id alone, miss s12..s14


async def test_a_tie_longer_than_a_page_is_read_whole_however_the_server_orders_it():
    """Listed by last refresh, twelve sessions begun in one burst share one second, and the
    server orders that tie anew at each read (Keycloak 25 did under churn): here, always
    with s11 just before the place asked for, or last. Each page is read from the top of
    the tie, so s11 is found; reading on from each boundary would never see it."""
    ids = [f"s{i:02d}" for i in range(12)]
    reads: list[tuple[int, int]] = []

    async def fetch(first: int, size: int) -> tuple[list[tuple[str, str]], list[int]]:
        reads.append((first, size))
        order = [i for i in ids if i != "s11"]
        order.insert(first - 1 if first else len(order), "s11")
        page = order[first : first + size]
        return [(i, i) for i in page], [1] * len(page)

    listing = await list_anchored(fetch, page_size=4, overlap=1)
    assert sorted(listing.items) == ids
    assert all(first == 0 for first, _ in reads) and listing.unanchored == 0


async def test_a_session_refreshed_while_its_page_is_answered_keeps_the_pages_in_turn():
    """Keycloak before 26 sorts its sessions by last refresh, then writes each one out: a
    session refreshed in between shows a later time than its place (s03 below). The page
    is still taken for refresh order, so pages are read one after another: read side by
    side, the last page could be answered before a session moves past it (s12), unseen."""
    times = {f"s{i:02d}": i for i in range(28)}
    moved = False

    async def fetch(first: int, size: int) -> tuple[list[tuple[str, str]], list[Any] | None]:
        nonlocal moved
        await asyncio.sleep((28 - first) / 1000)  # a later page is answered sooner
        order = sorted(times, key=lambda i: times[i])
        shown = {**times, "s03": 100} if first == 0 else times
        page = order[first : first + size]
        if first + size >= len(order) and not moved:
            times["s12"], moved = 99, True  # refreshed: to the end, once the end was read
        body = [{"id": i, "userId": i, "lastAccess": shown[i]} for i in page]
        return [(i, i) for i in page], _refresh_order(body)

    listing = await list_anchored(fetch, page_size=10, overlap=2, expected=28)
    assert sorted(listing.items) == ORIGINAL[:28]


@pytest.mark.keycloak
@pytest.mark.parametrize("servers", [("keycloak", "kc_admin"), ("old_keycloak", "old_admin")], ids=["26", "compat"])
async def test_a_listing_under_churn_holds_every_session_that_lived_through_it(
    servers: tuple[str, str], request: pytest.FixtureRequest
):
    """150 sessions listed 25 at a time while two threads log users in, out and refresh
    their tokens: each listing holds every session alive from its start to its end, and
    none that never lived during it; its counts follow. Keycloak 26 lists sessions by id,
    the older line (volatile sessions) by last refresh."""
    keycloak: KeycloakServer = request.getfixturevalue(servers[0])
    kc_admin: KeycloakAdmin = request.getfixturevalue(servers[1])
    realm = make_realm(kc_admin, "listing", users=0, clients=("web",))
    users = [f"u{i}" for i in range(60)]
    kc_admin.create_users_bulk(realm.name, [(u, PASSWORD) for u in users])
    truth = SessionTruth()
    login_all(kc_admin, realm.name, [users[i % len(users)] for i in range(150)], truth)
    spec = parse_spec({"url": keycloak.base_url, "realm": realm.name, "interval": "60s", "timeout": "30s"})
    api = AdminClient(spec, lambda endpoint, code: None)
    await api.use_credentials(Credentials(username=keycloak.admin_user, password=keycloak.admin_password))

    async def listing() -> tuple[OnlineSessions, float, float]:
        stats = parse_session_stats(await api.get("/client-session-stats"))
        start = time.monotonic()
        online = await list_online_sessions(api, stats, page_size=25, overlap=3)
        return online, start, time.monotonic()

    try:
        with churning(kc_admin, realm.name, users, truth, threads=2):
            for _ in range(3):
                online, start, end = await listing()
                stable, possible = truth.stable(start, end), truth.possible(start, end)
                assert stable <= set(online.sessions) <= possible
                summary = summarize(online, time.time(), 0)
                assert len(stable) <= summary.user_sessions <= len(possible)
                users_of = lambda sessions: {truth.users[s] for s in sessions}  # noqa: E731
                assert summary.connected_users == len(users_of(online.sessions))
                assert len(users_of(stable)) <= summary.connected_users <= len(users_of(possible))
        assert len(truth.ended) > 0 and len(truth.began) > 150  # the realm did churn
        online, start, end = await listing()  # once still: exact, and the counters agree
        assert set(online.sessions) == truth.stable(start, end) == truth.possible(start, end)
        assert online.discrepancy == 0
    finally:
        await api.aclose()
