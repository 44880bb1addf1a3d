"""The product against the older Keycloak line the test bed also runs (KEYCLOAK_COMPAT_VERSION,
25.0.6 by default): users on Keycloak 22 to 26.1 get the same numbers as on 26.x.

What that line answers differently (asserted below, where the product relies on it):
- /events and /admin-events reject a millisecond `dateFrom` with 400 (a day only), ignore
  `direction=asc` (always newest first), and `dateTo=D` ends at D's midnight (D excluded;
  26.1.4 includes D);
- the events of one millisecond come in an order that depends on the query's `first` and `max`
  (the same query repeats its order), so pages do not repeat a millisecond the way the read holds it;
- their events carry no `id` (nor do 26.1.4's; 26.7's do), so identical failed logins of one user in one
  millisecond are indistinguishable but for their number;
- a password grant with offline_access makes an online session too (26.1 and 26.7: offline only).
"""

import asyncio
import json
import logging
import time
from collections import Counter

import pytest

from keycloak_monitor.config import MonitorKey, parse_spec
from keycloak_monitor.events import EventLimits
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.monitor import Monitor
from tests.proxy import FaultProxy
from tests.realms import PASSWORD, failed_logins, make_realm, stored_events
from tests.test_collect_keycloak import admin_credentials, value
from tests.test_events_keycloak import ERRORS
from tests.testbed.keycloak import KeycloakAdmin, KeycloakAdminError, KeycloakServer

pytestmark = pytest.mark.keycloak


def old_monitor(url: str, realm: str, store: MetricsStore, spec: dict | None = None, **kwargs: object) -> Monitor:
    data = {"url": url, "realm": realm, "interval": "120s", "timeout": "60s", **(spec or {})}  # a busy machine
    return Monitor(MonitorKey("test", "old"), parse_spec(data), store, **kwargs)  # type: ignore[arg-type]


async def test_sessions_and_users_are_exact_on_the_older_line(old_keycloak: KeycloakServer, old_admin: KeycloakAdmin):
    realm = make_realm(old_admin, "old-sessions")
    old_admin.login(realm.name, "web", "user0", PASSWORD)
    old_admin.login(realm.name, "web", "user0", PASSWORD)  # a second session of the same user
    old_admin.login(realm.name, "app", "user1", PASSWORD)
    old_admin.login(realm.name, "app", "user2", PASSWORD, offline=True)
    app = old_admin.client_uuid(realm.name, "app")
    online_app = {s["username"] for s in old_admin.get(f"/{realm.name}/clients/{app}/user-sessions")}
    assert online_app == {"user1", "user2"}  # the offline grant made an online session too (26.x: not)

    store = MetricsStore(False)
    per_user = {"perUser": {"enabled": True, "limit": 10}}
    monitor = old_monitor(old_keycloak.base_url, realm.name, store, per_user)
    outcome = await monitor.collect(admin_credentials(old_keycloak))
    assert outcome.ok, outcome.error
    assert value(store, 'keycloak_active_sessions{client_id="web"}') == 2
    assert value(store, 'keycloak_active_sessions{client_id="app"}') == 2
    assert value(store, 'keycloak_offline_sessions{client_id="app"}') == 1
    assert value(store, 'keycloak_offline_sessions{client_id="web"}') == 0
    assert value(store, 'keycloak_active_sessions{client_id="account"}') == 0
    assert value(store, "keycloak_user_sessions") == 4
    assert value(store, "keycloak_connected_users") == 3
    assert value(store, "keycloak_users") == 3
    lines = store.render().decode().splitlines()
    durations = {line.split('username="')[1].split('"')[0] for line in lines if "_session_duration_seconds{" in line}
    logins = {line.split('username="')[1].split('"')[0] for line in lines if "_last_login_timestamp_seconds{" in line}
    assert durations == logins == {"user0", "user1", "user2"}, (durations, logins)
    await monitor.close()


def identical_groups(events: list[dict]) -> int:
    """How many events have an exact twin (same millisecond, same content)."""
    return sum(n for n in Counter(json.dumps(e, sort_keys=True) for e in events).values() if n > 1)


async def test_events_are_counted_exactly_once_through_newest_first_pages_and_a_restart(
    old_keycloak: KeycloakServer, old_admin: KeycloakAdmin, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, "keycloak_monitor.events_api")
    realm = make_realm(old_admin, "old-events")
    name = realm.name
    stored: list[dict] = []

    async def persist(data: dict) -> None:
        stored.append(data)

    limits = EventLimits(page_size=20, persist_every=0)  # several pages per read
    store = MetricsStore(False)
    creds = admin_credentials(old_keycloak)
    first = old_monitor(old_keycloak.base_url, name, store, persist_events=persist, event_limits=limits)
    assert (await first.collect(creds)).ok  # counting starts here: the realm's setup is not counted

    made = 0
    for _ in range(5):  # until two failed logins are exact twins, which only their number tells apart
        failed_logins(old_admin, name, 100, concurrency=24, users=1)
        made += 100
        errors = stored_events(old_admin, name, type="LOGIN_ERROR")
        if identical_groups(errors):
            break
    assert identical_groups(errors) and len(errors) == made
    assert not any("id" in e for e in errors)
    with pytest.raises(KeycloakAdminError) as refused:
        old_admin.get(f"/{name}/events", dateFrom=errors[0]["time"])
    assert refused.value.status == 400  # a day only
    asc = [e["time"] for e in old_admin.get(f"/{name}/events", direction="asc", max=50)]
    assert asc == sorted(asc, reverse=True)  # direction ignored
    today = time.strftime("%Y-%m-%d", time.localtime(errors[0]["time"] / 1000))  # the server's zone is ours
    assert old_admin.get(f"/{name}/events", dateTo=today) == []  # dateTo=D ends at D's midnight

    for username in ("user0", "user1"):
        old_admin.login(name, "web", username, PASSWORD)
    for i in range(3):
        old_admin.create_user(name, f"later{i}", PASSWORD)
    assert (await first.collect(creds)).ok
    sources = first.state.events.sources
    assert sources["user"].ascending is False and sources["admin"].ascending is False  # the newest-first path
    assert f"realm '{name}': /events takes a day as dateFrom" in caplog.text  # said once, for the user
    assert value(store, ERRORS) == made
    assert value(store, 'keycloak_realm_user_events_total{client_id="web",event="LOGIN"}') == 2
    created = 'keycloak_realm_admin_events_total{operation="CREATE",resource_type="USER"}'
    assert value(store, created) == 3
    assert (await first.collect(creds)).ok  # the window read again: nothing counted twice
    assert value(store, ERRORS) == made
    await first.close()

    failed_logins(old_admin, name, 40)  # while no monitor runs
    restarted = MetricsStore(False)
    second = old_monitor(
        old_keycloak.base_url, name, restarted, stored_events=stored[-1], persist_events=persist, event_limits=limits
    )
    for _ in range(2):
        assert (await second.collect(creds)).ok
    assert value(restarted, ERRORS) == made + 40 == len(stored_events(old_admin, name, type="LOGIN_ERROR"))
    assert value(restarted, created) == 3
    await second.close()


async def test_events_stored_while_newest_first_pages_are_read_are_counted_once(
    old_keycloak: KeycloakServer, old_admin: KeycloakAdmin
):
    name = make_realm(old_admin, "old-arrivals").name
    creds = admin_credentials(old_keycloak)
    store = MetricsStore(False)
    async with FaultProxy(old_keycloak.base_url) as proxy:
        monitor = old_monitor(proxy.url, name, store, event_limits=EventLimits(page_size=40))
        assert (await monitor.collect(creds)).ok
        failed_logins(old_admin, name, 200)
        proxy.delay("/events?", 0.3)  # ten pages over three seconds ...

        def arrive() -> None:  # ... while more are stored, pushing the unread ones down
            time.sleep(0.5)
            failed_logins(old_admin, name, 60, concurrency=4)

        outcome, _ = await asyncio.gather(monitor.collect(creds), asyncio.to_thread(arrive))
        assert outcome.ok, outcome.error
        assert 200 <= value(store, ERRORS) <= 260  # never more than were made
        proxy.clear()
        assert (await monitor.collect(creds)).ok
        assert value(store, ERRORS) == 260 == len(stored_events(old_admin, name, type="LOGIN_ERROR"))
        await monitor.close()
