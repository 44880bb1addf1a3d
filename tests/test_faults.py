"""What a user sees when Keycloak misbehaves in ways a real server cannot be told to."""

import asyncio
import logging

import httpx
import pytest

from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.monitor import Monitor

from .fault_injection import ScriptedKeycloak, body, once, raise_

PASSWORD = "s3cr3t-never-logged"
CREDS = Credentials(username="monitor", password=PASSWORD)
# What Keycloak answers for an exception it did not foresee (its handler maps some to 400).
UNKNOWN_ERROR = '{"error": "unknown_error", "error_description": "For more on this error consult the server log."}'


def make_monitor(kc: ScriptedKeycloak, store: MetricsStore | None = None, **spec: object) -> Monitor:
    data = {"url": "http://kc.test", "realm": "demo", "interval": "5s", "timeout": "1s", **spec}
    return Monitor(MonitorKey("ns", "m"), parse_spec(data), store or MetricsStore(False), transport=kc.transport())


def series(store: MetricsStore) -> str:
    return store.render().decode()


@pytest.mark.parametrize(
    ("suffix", "fault", "reason"),
    [
        ("/users/count", raise_(httpx.ReadTimeout), "timeout"),
        ("/users/count", raise_(httpx.ConnectError), "connect"),
        ("/users/count", raise_(httpx.RemoteProtocolError), "connect"),
        ("/users/count", body("oops", 503), "server_error"),
        ("/users/count", body(UNKNOWN_ERROR, 400), "server_error"),  # Keycloak's own failure
        ("/users/count", body('{"error": "invalid_request"}', 400), "invalid_response"),
        ("/users/count", body("<html>not json"), "invalid_response"),
        ("/client-session-stats", body('[{"id": "c1", "active": "many"}]'), "invalid_response"),
        ("/protocol/openid-connect/token", body('{"no_token": 1}'), "invalid_response"),
    ],
)
async def test_each_failure_is_classified_and_leaves_only_health_series(suffix, fault, reason, caplog):
    kc = ScriptedKeycloak(faults={suffix: fault})
    store = MetricsStore(False)
    monitor = make_monitor(kc, store)
    with caplog.at_level(logging.DEBUG):
        outcome = await monitor.collect(CREDS)
    assert outcome.error is not None and outcome.error.reason.value == reason
    text = series(store)
    assert 'keycloak_monitor_up{namespace="ns",monitor="m",realm="demo"} 0.0' in text
    assert (
        f'keycloak_monitor_collection_errors_total{{namespace="ns",monitor="m",realm="demo",reason="{reason}"}} 1.0'
        in text
    )
    assert "keycloak_active_sessions" not in text and "keycloak_users{" not in text  # absent, not zero
    assert PASSWORD not in caplog.text and PASSWORD not in str(outcome.error)
    await monitor.close()
    assert series(store) == ""  # a removed monitor leaves nothing behind


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (body('{"not": "a list"}'), "invalid_response"),
        (body("oops", 503), "server_error"),
        (raise_(httpx.ReadTimeout), "timeout"),
    ],
)
async def test_a_failed_session_listing_leaves_the_cheap_counters_up(fault, reason):
    kc = ScriptedKeycloak(faults={"/user-sessions": fault})
    store = MetricsStore(False)
    monitor = make_monitor(kc, store)
    outcome = await monitor.collect(CREDS)
    assert outcome.ok, outcome.error
    text = series(store)
    assert 'keycloak_monitor_up{namespace="ns",monitor="m",realm="demo"} 1.0' in text
    assert 'keycloak_monitor_part_up{namespace="ns",monitor="m",realm="demo",part="session_listing"} 0.0' in text
    assert "keycloak_active_sessions{" in text and "keycloak_users{" in text
    # The listing's series vanish: never a stale or a false zero.
    assert "keycloak_user_sessions{" not in text and "keycloak_connected_users{" not in text
    assert "keycloak_session_age_seconds_bucket{" not in text
    kc.faults.clear()
    assert (await monitor.collect(CREDS)).ok
    text = series(store)
    assert 'part="session_listing"} 1.0' in text and "keycloak_user_sessions{" in text
    await monitor.close()


async def test_recovery_after_a_failure_brings_the_series_back():
    kc = ScriptedKeycloak(faults={"/users/count": once(body("down", 502))})
    store = MetricsStore(False)
    monitor = make_monitor(kc, store)
    assert not (await monitor.collect(CREDS)).ok
    assert (await monitor.collect(CREDS)).ok
    text = series(store)
    assert 'keycloak_monitor_up{namespace="ns",monitor="m",realm="demo"} 1.0' in text
    assert 'keycloak_users{namespace="ns",monitor="m",realm="demo"} 5.0' in text
    assert 'reason="server_error"} 1.0' in text
    await monitor.close()


async def test_a_rejected_token_is_renewed_once_and_the_request_retried():
    kc = ScriptedKeycloak(faults={"/users/count": once(body('{"error": "expired"}', 401))})
    monitor = make_monitor(kc)
    outcome = await monitor.collect(CREDS)
    assert outcome.ok, outcome.error
    assert kc.tokens_issued == 2  # the first token, then one renewal after the 401
    await monitor.close()


async def test_a_collection_slower_than_its_interval_is_cut_short():
    kc = ScriptedKeycloak()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/users/count"):
            await asyncio.sleep(10)  # a server that hangs, inside the per-request timeout
        return kc.handler(request)

    spec = parse_spec({"url": "http://kc.test", "realm": "demo", "interval": "5s", "timeout": "4s"})
    monitor = Monitor(MonitorKey("ns", "m"), spec, MetricsStore(False), transport=httpx.MockTransport(handler))
    outcome = await monitor.collect(CREDS)
    assert outcome.error is not None and outcome.error.reason.value == "timeout"
    assert outcome.duration < 6
    await monitor.close()


async def test_session_listing_pages_through_every_session():
    kc = ScriptedKeycloak(sessions=2500)  # three pages of 1000
    store = MetricsStore(False)
    monitor = make_monitor(kc, store)
    outcome = await monitor.collect(CREDS)
    assert outcome.snapshot is not None
    assert outcome.snapshot.connected_users == 2500
    assert sum(1 for p in kc.seen if p.endswith("/user-sessions")) == 3
    assert 'endpoint="/clients/{id}/user-sessions",code="200"} 3.0' in series(store)
    await monitor.close()


async def test_a_session_page_that_fails_inside_keycloak_is_read_again():
    """Keycloak before 26 sorts its live sessions for each page, and the sort fails now and
    then while they are refreshed: the page is asked again and the listing stays whole."""
    kc = ScriptedKeycloak(sessions=2500, faults={"/user-sessions": once(body(UNKNOWN_ERROR, 400))})
    store = MetricsStore(False)
    monitor = make_monitor(kc, store)
    outcome = await monitor.collect(CREDS)
    assert outcome.snapshot is not None and outcome.snapshot.connected_users == 2500
    assert sum(1 for p in kc.seen if p.endswith("/user-sessions")) == 4  # three pages, one twice
    assert 'part="session_listing"} 1.0' in series(store)
    await monitor.close()
