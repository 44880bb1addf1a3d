"""Event counters against a real Keycloak: exact through ties, backlogs, faults and hostile traffic."""

import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from keycloak_monitor.config import MonitorKey, parse_spec
from keycloak_monitor.event_labels import UNKNOWN_CLIENT
from keycloak_monitor.events import EventLimits
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.monitor import Monitor
from tests.proxy import FaultProxy
from tests.realms import PASSWORD, failed_logins, make_realm, stored_events
from tests.test_collect_keycloak import admin_credentials, value

pytestmark = pytest.mark.keycloak

ERRORS = 'keycloak_realm_user_events_total{client_id="web",event="LOGIN_ERROR",error="invalid_user_credentials"}'


def events_monitor(url: str, realm: str, store: MetricsStore, limits: EventLimits, **spec: object) -> Monitor:
    data = {"url": url, "realm": realm, "interval": "30s", "timeout": "10s", "events": {"admin": False}, **spec}
    return Monitor(MonitorKey("test", "ev"), parse_spec(data), store, event_limits=limits)


def user_series(store: MetricsStore) -> dict[str, float]:
    return {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in store.render().decode().splitlines()
        if line.startswith("keycloak_realm_user_events_total{")
    }


async def test_many_events_in_one_millisecond_over_many_pages_are_each_counted_once(keycloak, kc_admin):
    realm = make_realm(kc_admin, "ties", users=3)
    store = MetricsStore(False)
    monitor = events_monitor(keycloak.base_url, realm.name, store, EventLimits(page_size=7, pages_per_cycle=1000))
    creds = admin_credentials(keycloak)
    assert (await monitor.collect(creds)).ok  # counting starts here
    made = 0
    for _ in range(5):  # until concurrent grants really share a millisecond
        failed_logins(kc_admin, realm.name, 150, concurrency=24)
        made += 150
        per_ms = Counter(e["time"] for e in stored_events(kc_admin, realm.name, type="LOGIN_ERROR"))
        if max(per_ms.values()) >= 2:
            break
    assert max(per_ms.values()) >= 2, "no two events in the same millisecond"
    assert sum(per_ms.values()) == made
    outcome = await monitor.collect(creds)
    assert outcome.ok, outcome.error
    assert value(store, ERRORS) == made
    assert (await monitor.collect(creds)).ok  # the window read again: nothing counted twice
    assert value(store, ERRORS) == made
    await monitor.close()


async def test_a_backlog_is_caught_up_in_bounded_batches_while_sessions_are_served_every_cycle(keycloak, kc_admin):
    realm = make_realm(kc_admin, "backlog", users=3)
    kc_admin.login(realm.name, "web", "user0", PASSWORD)
    store = MetricsStore(False)
    stored: list[dict] = []

    async def persist(data: dict) -> None:
        stored.append(data)

    spec = parse_spec({"url": keycloak.base_url, "realm": realm.name, "interval": "30s", "timeout": "10s"})
    creds = admin_credentials(keycloak)
    first = Monitor(MonitorKey("test", "bl"), spec, store, persist_events=persist)
    assert (await first.collect(creds)).ok
    await first.close()  # the monitor is stopped while the backlog builds up

    backlog = 5000
    failed_logins(kc_admin, realm.name, backlog, concurrency=32)
    limits = EventLimits(page_size=500, pages_per_cycle=3, persist_every=0)
    monitor = Monitor(
        MonitorKey("test", "bl"), spec, store, stored_events=stored[-1], persist_events=persist, event_limits=limits
    )
    seen, cycles = [], 0
    while not seen or seen[-1] < backlog:
        cycles += 1
        assert cycles <= 10, seen
        outcome = await monitor.collect(creds)
        assert outcome.ok, outcome.error
        assert value(store, 'keycloak_active_sessions{client_id="web"}') == 1  # sessions in every cycle
        assert value(store, "keycloak_users") == 3
        seen.append(value(store, ERRORS))
    assert seen == sorted(seen) and len(seen) >= 3  # several bounded steps, never down
    assert seen[-1] == backlog == len(stored_events(kc_admin, realm.name, type="LOGIN_ERROR"))
    lag = value(store, 'keycloak_monitor_event_lag_seconds{stream="user"}')
    assert lag is not None and lag < 60
    await monitor.close()


async def test_a_request_failing_while_events_are_slow_leaves_counts_exact(keycloak, kc_admin):
    realm = make_realm(kc_admin, "fault", users=3)
    store = MetricsStore(False)
    creds = admin_credentials(keycloak)
    async with FaultProxy(keycloak.base_url) as proxy:
        monitor = events_monitor(proxy.url, realm.name, store, EventLimits(page_size=20, pages_per_cycle=1000))
        assert (await monitor.collect(creds)).ok
        failed_logins(kc_admin, realm.name, 60)
        proxy.delay("/events?", 1.0)
        proxy.fail("/users/count", status=503)
        outcome = await monitor.collect(creds)  # fails while an /events page is in flight
        assert outcome.error is not None and outcome.error.reason.value == "server_error"
        assert any("/events?" in target for target in proxy.seen)
        proxy.clear()
        failed_logins(kc_admin, realm.name, 5)
        for _ in range(2):
            assert (await monitor.collect(creds)).ok
        assert value(store, ERRORS) == 65
        await monitor.close()


def authorization_request(base_url: str, realm: str, client_id: str) -> None:
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": "https://app.example/cb",
        "scope": "openid",
    }
    httpx.get(f"{base_url}/realms/{realm}/protocol/openid-connect/auth", params=params, timeout=30)


async def test_random_client_ids_from_the_internet_make_no_new_series(keycloak, kc_admin):
    realm = make_realm(kc_admin, "hostile", users=1)
    store = MetricsStore(False)
    monitor = events_monitor(keycloak.base_url, realm.name, store, EventLimits(pages_per_cycle=1000))
    creds = admin_credentials(keycloak)
    assert (await monitor.collect(creds)).ok
    before = len(user_series(store))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: authorization_request(keycloak.base_url, realm.name, secrets.token_hex(8)), range(500)))
    errors = stored_events(kc_admin, realm.name, type="LOGIN_ERROR")
    assert len({e.get("clientId") for e in errors}) >= 500  # Keycloak did store every random id
    assert (await monitor.collect(creds)).ok
    series = user_series(store)
    assert len(series) <= before + 2
    unknown = sum(v for k, v in series.items() if f'client_id="{UNKNOWN_CLIENT}"' in k)
    assert unknown == len(errors)
    await monitor.close()


async def test_admin_events_are_counted_once_by_operation_and_resource(keycloak, kc_admin):
    realm = make_realm(kc_admin, "admin-events", users=1)
    store = MetricsStore(False)
    spec = parse_spec({"url": keycloak.base_url, "realm": realm.name, "interval": "30s", "timeout": "10s"})
    monitor = Monitor(MonitorKey("test", "adm"), spec, store, event_limits=EventLimits(page_size=2))
    creds = admin_credentials(keycloak)
    assert (await monitor.collect(creds)).ok  # the realm's setup happened before: not counted
    for i in range(5):
        kc_admin.create_user(realm.name, f"new{i}", PASSWORD)
    kc_admin.create_client(realm.name, "later")
    for _ in range(2):
        assert (await monitor.collect(creds)).ok
    created = 'keycloak_realm_admin_events_total{operation="CREATE",resource_type="USER"}'
    assert value(store, created) == 5
    assert value(store, 'keycloak_realm_admin_events_total{operation="CREATE",resource_type="CLIENT"}') == 1
    await monitor.close()
