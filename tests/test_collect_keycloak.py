"""The collector against a real Keycloak: exact numbers, failures a user can act on."""

import asyncio
import logging

import pytest

from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.events import EventLimits
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.monitor import Monitor
from keycloak_monitor.snapshot import StatusWarning
from tests.realms import PASSWORD, make_realm
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer

pytestmark = pytest.mark.keycloak


def admin_credentials(keycloak: KeycloakServer) -> Credentials:
    return Credentials(username=keycloak.admin_user, password=keycloak.admin_password)


def monitor_for(keycloak: KeycloakServer, realm: str, store: MetricsStore, name: str = "m", **spec: object) -> Monitor:
    data = {"url": keycloak.base_url, "realm": realm, "interval": "10s", "timeout": "5s", **spec}
    return Monitor(MonitorKey("test", name), parse_spec(data), store)


def value(store: MetricsStore, sample: str) -> float | None:
    """The value of one exposed sample, given as `name{extra labels}`; None when absent."""
    for line in store.render().decode().splitlines():
        name_labels, _, number = line.rpartition(" ")
        name, _, labels = name_labels.partition("{")
        wanted_name, _, wanted_labels = sample.partition("{")
        if name == wanted_name and all(part in labels for part in wanted_labels.rstrip("}").split(",") if part):
            return float(number)
    return None


async def test_sessions_users_and_clients_are_exact_and_follow_logouts(keycloak, kc_admin: KeycloakAdmin):
    realm = make_realm(kc_admin, "exact")
    web0 = kc_admin.login(realm.name, "web", "user0", PASSWORD)
    web1 = kc_admin.login(realm.name, "web", "user1", PASSWORD)
    app2 = kc_admin.login(realm.name, "app", "user2", PASSWORD)
    kc_admin.login(realm.name, "app", "user0", PASSWORD, offline=True)  # offline only (Keycloak 26.7)

    store = MetricsStore(False)
    monitor = monitor_for(keycloak, realm.name, store)
    outcome = await monitor.collect(admin_credentials(keycloak))
    assert outcome.ok, outcome.error
    assert value(store, 'keycloak_active_sessions{client_id="web"}') == 2
    assert value(store, 'keycloak_active_sessions{client_id="app"}') == 1
    assert value(store, 'keycloak_offline_sessions{client_id="app"}') == 1
    assert value(store, 'keycloak_offline_sessions{client_id="web"}') == 0
    assert value(store, 'keycloak_active_sessions{client_id="account"}') == 0  # every client, with or without sessions
    assert value(store, "keycloak_user_sessions") == 3
    assert value(store, "keycloak_connected_users") == 3
    assert value(store, "keycloak_users") == 3
    assert value(store, 'keycloak_session_age_seconds_bucket{le="+Inf"}') == 3
    assert value(store, 'keycloak_session_age_seconds_bucket{le="60.0"}') == 3

    kc_admin.logout(realm.name, "app", app2["refresh_token"])  # app's last online session
    await monitor.collect(admin_credentials(keycloak))
    assert value(store, 'keycloak_active_sessions{client_id="app"}') == 0  # present, and zero
    assert value(store, 'keycloak_offline_sessions{client_id="app"}') == 1
    assert value(store, "keycloak_user_sessions") == 2
    assert value(store, "keycloak_connected_users") == 2

    kc_admin.logout(realm.name, "web", web0["refresh_token"])
    kc_admin.logout(realm.name, "web", web1["refresh_token"])
    await monitor.collect(admin_credentials(keycloak))
    assert value(store, 'keycloak_active_sessions{client_id="web"}') == 0
    assert value(store, "keycloak_connected_users") == 0
    await monitor.close()


async def test_connected_users_are_exact_past_the_seed_exporters_500_cap(keycloak, kc_admin: KeycloakAdmin):
    realm = make_realm(kc_admin, "big", users=0, clients=("web",))
    names = [(f"bulk{i:04d}", PASSWORD) for i in range(600)]
    kc_admin.create_users_bulk(realm.name, names)
    kc_admin.login_many(realm.name, "web", names)

    store = MetricsStore(False)
    monitor = monitor_for(keycloak, realm.name, store, interval="60s", timeout="30s")
    outcome = await monitor.collect(admin_credentials(keycloak))
    assert outcome.ok, outcome.error
    assert value(store, 'keycloak_active_sessions{client_id="web"}') == 600
    assert value(store, "keycloak_user_sessions") == 600
    assert value(store, "keycloak_connected_users") == 600
    assert value(store, "keycloak_users") == 600
    await monitor.close()


async def test_without_session_details_only_the_cheap_counters_are_read(keycloak, kc_admin: KeycloakAdmin):
    realm = make_realm(kc_admin, "cheap")
    for user in ("user0", "user1", "user2"):
        kc_admin.login(realm.name, "web", user, PASSWORD)
    kc_admin.login(realm.name, "app", "user0", PASSWORD)

    store = MetricsStore(False)
    spec = {"sessions": {"details": False}, "events": {"user": False, "admin": False}}
    monitor = monitor_for(keycloak, realm.name, store, **spec)
    outcome = await monitor.collect(admin_credentials(keycloak))
    assert outcome.ok, outcome.error
    assert value(store, 'keycloak_active_sessions{client_id="web"}') == 3
    assert value(store, 'keycloak_active_sessions{client_id="app"}') == 1
    assert value(store, "keycloak_users") == 3
    # Absent, not zero: a dashboard must not read "nobody is connected".
    for absent in ("keycloak_user_sessions", "keycloak_connected_users", "keycloak_session_age_seconds_bucket"):
        assert value(store, absent) is None
    endpoints = {
        line.split('endpoint="', 1)[1].split('"', 1)[0]
        for line in store.render().decode().splitlines()
        if line.startswith("keycloak_monitor_api_requests_total{")
    }
    assert "/client-session-stats" in endpoints and not any("user-sessions" in e for e in endpoints), endpoints
    await monitor.close()


async def test_wrong_password_is_an_auth_error_and_never_logged(keycloak, kc_admin, caplog):
    realm = make_realm(kc_admin, "auth", users=1)
    store = MetricsStore(False)
    monitor = monitor_for(keycloak, realm.name, store)
    wrong = "Wrong-Password-Do-Not-Log"
    with caplog.at_level(logging.DEBUG):
        outcome = await monitor.collect(Credentials(username=keycloak.admin_user, password=wrong))
    assert outcome.error is not None and outcome.error.reason.value == "auth"
    assert "rejected by realm 'master'" in outcome.error.message
    assert value(store, "keycloak_monitor_up") == 0
    assert value(store, 'keycloak_monitor_collection_errors_total{reason="auth"}') == 1
    assert value(store, "keycloak_users") is None
    assert wrong not in caplog.text and wrong not in outcome.error.message
    await monitor.close()


async def test_unknown_realm_is_not_found_with_the_realm_named(keycloak):
    store = MetricsStore(False)
    monitor = monitor_for(keycloak, "no-such-realm", store)
    outcome = await monitor.collect(admin_credentials(keycloak))
    assert outcome.error is not None and outcome.error.reason.value == "not_found"
    assert "realm 'no-such-realm' not found" in outcome.error.message
    assert value(store, 'keycloak_monitor_collection_errors_total{reason="not_found"}') == 1
    await monitor.close()


async def test_a_service_account_without_view_users_is_forbidden_with_the_role_named(keycloak, kc_admin):
    realm = make_realm(kc_admin, "sa", users=1)
    client = kc_admin.create_client(realm.name, "monitor", public=False, service_account=True)
    kc_admin.grant_realm_management_roles(realm.name, client.uuid, ["view-realm", "view-clients", "view-events"])
    store = MetricsStore(False)
    monitor = monitor_for(keycloak, realm.name, store, authRealm=realm.name)
    outcome = await monitor.collect(Credentials(client_id="monitor", client_secret=client.secret))
    assert outcome.error is not None and outcome.error.reason.value == "forbidden"
    assert "view-users" in outcome.error.message
    await monitor.close()


async def test_collections_keep_succeeding_across_token_expiries(keycloak, kc_admin):
    realm = make_realm(kc_admin, "short", users=1)
    kc_admin.update_realm(realm.name, accessTokenLifespan=2)
    client = kc_admin.create_client(realm.name, "monitor", public=False, service_account=True)
    kc_admin.grant_realm_management_roles(
        realm.name, client.uuid, ["view-realm", "view-clients", "view-users", "view-events"]
    )
    store = MetricsStore(False)
    monitor = monitor_for(keycloak, realm.name, store, authRealm=realm.name)
    credentials = Credentials(client_id="monitor", client_secret=client.secret)
    for _ in range(4):
        outcome = await monitor.collect(credentials)
        assert outcome.ok, outcome.error
        await asyncio.sleep(2.5)  # past the token's lifetime
    assert value(store, 'keycloak_monitor_collection_errors_total{reason="auth"}') == 0
    token_requests = value(store, 'keycloak_monitor_api_requests_total{endpoint="token",code="200"}')
    assert token_requests is not None and token_requests >= 3  # renewed, not reused past expiry
    await monitor.close()


async def test_two_monitors_share_the_endpoint_and_one_failing_leaves_the_other_alone(keycloak, kc_admin):
    first, second = make_realm(kc_admin, "two-a", users=2), make_realm(kc_admin, "two-b", users=1)
    kc_admin.login(first.name, "web", "user0", PASSWORD)
    store = MetricsStore(False)
    good = monitor_for(keycloak, first.name, store, name="good")
    bad = monitor_for(keycloak, second.name, store, name="bad")
    assert (await good.collect(admin_credentials(keycloak))).ok
    assert (await bad.collect(admin_credentials(keycloak))).ok
    assert value(store, f'keycloak_users{{monitor="good",realm="{first.name}"}}') == 2
    assert value(store, f'keycloak_users{{monitor="bad",realm="{second.name}"}}') == 1

    kc_admin.delete_realm(second.name)
    assert not (await bad.collect(admin_credentials(keycloak))).ok
    assert value(store, 'keycloak_users{monitor="bad"}') is None
    assert value(store, 'keycloak_monitor_up{monitor="bad"}') == 0
    assert value(store, f'keycloak_users{{monitor="good",realm="{first.name}"}}') == 2
    assert value(store, 'keycloak_active_sessions{monitor="good",client_id="web"}') == 1
    await good.close()
    await bad.close()
    assert store.render() == b""


async def test_events_are_counted_once_and_a_resumed_cursor_skips_nothing(keycloak, kc_admin):
    realm = make_realm(kc_admin, "events", users=1)
    store = MetricsStore(False)
    stored: list[dict] = []

    async def persist(data: dict) -> None:
        stored.append(data)

    spec = parse_spec({"url": keycloak.base_url, "realm": realm.name, "interval": "10s", "timeout": "5s"})
    monitor = Monitor(
        MonitorKey("test", "m"), spec, store, persist_events=persist, event_limits=EventLimits(persist_every=0)
    )
    creds = admin_credentials(keycloak)
    kc_admin.failed_login(realm.name, "web", "user0")  # before the monitor: not counted
    assert (await monitor.collect(creds)).ok
    for _ in range(3):
        kc_admin.failed_login(realm.name, "web", "user0")
    kc_admin.login(realm.name, "web", "user0", PASSWORD)
    assert (await monitor.collect(creds)).ok
    assert (await monitor.collect(creds)).ok  # nothing new: nothing counted twice
    errors = 'keycloak_realm_user_events_total{client_id="web",event="LOGIN_ERROR",error="invalid_user_credentials"}'
    assert value(store, errors) == 3
    assert value(store, 'keycloak_realm_user_events_total{client_id="web",event="LOGIN",error=""}') == 1

    # A restarted process resumes from what it stored: the counters continue.
    await monitor.close()
    kc_admin.failed_login(realm.name, "web", "user0")
    kc_admin.failed_login(realm.name, "web", "user0")
    restarted = Monitor(MonitorKey("test", "m"), monitor.spec, store, stored_events=stored[-1])
    assert (await restarted.collect(creds)).ok
    assert value(store, errors) == 5
    await restarted.close()


async def test_per_user_series_are_opt_in_and_capped(keycloak, kc_admin):
    realm = make_realm(kc_admin, "peruser", users=3)
    for user in realm.users:
        kc_admin.login(realm.name, "web", user, PASSWORD)
    store = MetricsStore(False)
    plain = monitor_for(keycloak, realm.name, store, name="plain")
    assert (await plain.collect(admin_credentials(keycloak))).ok
    text = store.render().decode()
    assert "keycloak_session_duration_seconds" not in text and "user0" not in text

    capped = monitor_for(
        keycloak, realm.name, store, name="capped", perUser={"enabled": True, "limit": 2, "includeEmail": True}
    )
    assert (await capped.collect(admin_credentials(keycloak))).ok
    lines = store.render().decode().splitlines()
    durations = [line for line in lines if line.startswith("keycloak_session_duration_seconds{")]
    logins = [line for line in lines if line.startswith("keycloak_last_login_timestamp_seconds{")]
    assert len(durations) == 2 and len(logins) == 2
    assert all("@example.org" in line for line in logins)
    await plain.close()
    await capped.close()


async def test_tls_is_verified_unless_a_ca_is_given_or_verification_is_switched_off(keycloak, kc_admin):
    realm = make_realm(kc_admin, "tls", users=1)
    store = MetricsStore(False)
    url = keycloak.https_url
    strict = monitor_for(keycloak, realm.name, store, name="strict", url=url)
    outcome = await strict.collect(admin_credentials(keycloak))
    assert outcome.error is not None and outcome.error.reason.value == "connect"
    assert "TLS verification" in outcome.error.message

    with_ca = monitor_for(keycloak, realm.name, store, name="with-ca", url=url, tls={"caFile": str(keycloak.ca_file)})
    assert (await with_ca.collect(admin_credentials(keycloak))).ok
    insecure = monitor_for(keycloak, realm.name, store, name="insecure", url=url, tls={"insecureSkipVerify": True})
    assert (await insecure.collect(admin_credentials(keycloak))).ok
    ca_data = keycloak.ca_file.read_text()
    from_secret = monitor_for(keycloak, realm.name, store, name="from-secret", url=url)
    assert (await from_secret.collect(admin_credentials(keycloak), ca_data)).ok  # as the operator passes a caSecret
    for monitor in (strict, with_ca, insecure, from_secret):
        await monitor.close()


async def test_a_realm_that_does_not_save_events_is_reported(keycloak, kc_admin):
    realm = make_realm(kc_admin, "quiet", users=1)
    kc_admin.enable_events(realm.name, user=False, admin=True)
    store = MetricsStore(False)
    monitor = monitor_for(keycloak, realm.name, store)
    outcome = await monitor.collect(admin_credentials(keycloak))
    assert outcome.snapshot is not None
    assert outcome.snapshot.warnings == (
        StatusWarning("EventsDisabled", f"realm '{realm.name}' does not save user events (Realm settings > Events)"),
    )
    await monitor.close()
