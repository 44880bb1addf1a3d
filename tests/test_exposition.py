"""The shared endpoint: both exposition formats parse, gzip works, monitors come and go whole."""

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from keycloak_monitor.config import MonitorKey
from keycloak_monitor.exposition import MetricsStore, base_labels
from keycloak_monitor.health import Health
from keycloak_monitor.render import render_monitor
from keycloak_monitor.server import make_app, start_server
from keycloak_monitor.snapshot import AgeHistogram, ClientSessions, EventCounts, RealmSnapshot, UserValue

SNAPSHOT = RealmSnapshot(
    clients=(ClientSessions('we"b\\', 2, 1),),  # a client id that needs escaping
    user_sessions=2,
    connected_users=2,
    session_ages=AgeHistogram.of([30.0, 4000.0]),
    users=7,
    offline_enabled=True,
    user_events=EventCounts(
        totals={("web", "LOGIN", ""): 3}, created=1.6e9, zero=(("web", "LOGIN_ERROR", "invalid_user_credentials"),)
    ),
    admin_events=EventCounts(totals={("CREATE", "USER"): 1}, created=1.6e9),
    last_logins=(UserValue("u1", "alice", 1.7e9, "alice@example.org"),),
    include_email=True,
)


def store_with(*names: str) -> MetricsStore:
    store = MetricsStore(include_process_metrics=False)
    for name in names:
        health = Health()
        health.succeeded(0.2, at=1.7e9)
        store.publish(
            MonitorKey("ns", name), render_monitor(base_labels(MonitorKey("ns", name), "r"), health, SNAPSHOT)
        )
    return store


def test_text_format_parses_and_groups_each_family_once():
    families = {f.name: f for f in parse_text(store_with("a", "b").render().decode())}
    active = families["keycloak_active_sessions"]
    assert {s.labels["monitor"] for s in active.samples} == {"a", "b"}
    assert active.samples[0].labels["client_id"] == 'we"b\\'
    assert families["keycloak_realm_user_events"].type == "counter"
    ages = families["keycloak_session_age_seconds"]
    buckets = {s.labels["le"]: s.value for s in ages.samples if s.labels["monitor"] == "a"}
    assert buckets["60.0"] == 1 and buckets["+Inf"] == 2


def test_openmetrics_keeps_the_gauge_histogram_and_ends_with_eof():
    body = store_with("a", "b").render(om=True).decode()
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(body)}
    ages = families["keycloak_session_age_seconds"]
    assert ages.type == "gaugehistogram"
    gsum = [s.value for s in ages.samples if s.name.endswith("_gsum") and s.labels["monitor"] == "a"]
    assert gsum == [4030.0]
    assert families["keycloak_monitor_collection_errors"].type == "counter"


def test_event_counters_carry_their_creation_time_and_known_series_start_at_zero():
    families = {f.name: f for f in parse_openmetrics(store_with("a").render(om=True).decode())}
    samples = {
        (s.name, s.labels.get("event"), s.labels.get("error")): s.value
        for s in families["keycloak_realm_user_events"].samples
    }
    assert samples[("keycloak_realm_user_events_total", "LOGIN", "")] == 3
    assert samples[("keycloak_realm_user_events_created", "LOGIN", "")] == 1.6e9
    # Served before its first event, so rate() sees that first event.
    assert samples[("keycloak_realm_user_events_total", "LOGIN_ERROR", "invalid_user_credentials")] == 0
    text = {f.name: f for f in parse_text(store_with("a").render().decode())}
    assert not [s for s in text["keycloak_realm_user_events"].samples if s.name.endswith("_created")]


def test_removing_a_monitor_removes_all_its_series():
    store = store_with("a", "b")
    store.remove(MonitorKey("ns", "a"))
    body = store.render().decode()
    assert 'monitor="a"' not in body and 'monitor="b"' in body


async def test_the_endpoint_serves_both_formats_and_gzip():
    store = store_with("a")
    runner = await start_server(make_app(store), "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            plain = await http.get("/metrics", headers={"Accept-Encoding": "identity"})
            assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert plain.content == store.render()
            om = await http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
            assert om.headers["content-type"].startswith("application/openmetrics-text")
            raw = await http.get("/metrics", headers={"Accept-Encoding": "gzip"})
            assert raw.headers["content-encoding"] == "gzip"
            assert raw.content == store.render()  # httpx inflates it
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await runner.cleanup()
