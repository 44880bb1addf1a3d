"""Back-pressure and storage failures at the push endpoint, which a real sender cannot provoke on
demand: a store that stalls or fails stands in for a slow or broken apiserver/disk."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from keycloak_monitor.config import MonitorKey, parse_spec
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.monitor import Monitor
from keycloak_monitor.push.auth import PushCredentials
from keycloak_monitor.push.receiver import PushRegistry, add_push_routes
from keycloak_monitor.push.target import PushTarget
from keycloak_monitor.server import start_server
from tests.operator_process import free_port
from tests.seed_emitter import user_event

KEY = MonitorKey("standalone", "slow")
AUTH = {"Authorization": "Basic " + base64.b64encode(b"emitter:pw").decode()}


class Store:
    """Stores when allowed: `gate` holds each store, `fail` makes it raise."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False
        self.entered = asyncio.Event()

    async def __call__(self, _: dict) -> None:
        self.entered.set()
        await self.gate.wait()
        if self.fail:
            raise OSError("disk full")


@pytest.fixture
async def setup() -> AsyncIterator[tuple[str, Monitor, Store]]:
    spec = parse_spec({"url": "http://127.0.0.1:9", "realm": "r", "events": {"source": "push"}})
    store = Store()
    monitor = Monitor(KEY, spec, MetricsStore(include_process_metrics=False), persist_events=store)

    async def credentials() -> PushCredentials:
        return PushCredentials(password="pw")

    registry = PushRegistry()
    registry.add(KEY, PushTarget(lambda: monitor, credentials, max_pending=1))
    app = web.Application()
    add_push_routes(app, registry)
    port = free_port()
    runner = await start_server(app, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}/push/standalone/slow", monitor, store
    await runner.cleanup()
    await monitor.close()


def login_count(monitor: Monitor) -> int:
    counts = monitor.state.events.counts("user", 0.0)
    assert counts is not None
    return sum(n for (_, event, _), n in counts.totals.items() if event == "LOGIN")


async def test_a_full_queue_answers_503_with_retry_after_and_keeps_nothing(setup) -> None:
    url, monitor, store = setup
    store.gate.clear()  # the first push waits for its store
    async with httpx.AsyncClient(timeout=10) as http:
        first = asyncio.ensure_future(http.post(url, content=json.dumps(user_event("r")).encode(), headers=AUTH))
        await store.entered.wait()
        second = await http.post(url, content=json.dumps(user_event("r")).encode(), headers=AUTH)
        assert second.status_code == 503 and second.headers["Retry-After"] == "5"
        assert second.json()["error"] == "overloaded"
        store.gate.set()
        assert (await first).json()["counted"] == 1
    assert login_count(monitor) == 1  # the refused one was not counted; its sender sends it again
    assert monitor.health.push_requests == {"counted": 1, "overloaded": 1}


async def test_a_failed_store_answers_503_and_the_retry_counts_once(setup) -> None:
    url, monitor, store = setup
    body = json.dumps(user_event("r")).encode()
    store.fail = True
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(url, content=body, headers=AUTH)
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        assert login_count(monitor) == 0
        store.fail = False
        assert (await http.post(url, content=body, headers=AUTH)).json() == {
            "counted": 1,
            "duplicates": 0,
            "ignored": 0,
        }
        assert (await http.post(url, content=body, headers=AUTH)).json()["duplicates"] == 1
    assert login_count(monitor) == 1
