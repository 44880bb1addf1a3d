"""Scrape cost: /metrics concatenates bytes each monitor rendered after its collection, so a
scrape should cost a fraction of prometheus_client formatting the same samples.

- 1, 50 and 500 monitors, up to 100k series: median and p99 of MetricsStore.render() against
  prometheus_client's generate_latest over the very same samples (parsed back from our
  answer, served by a registry collector), interleaved; target ≤ 0.2x.
- Scrapes during collections: /metrics over HTTP from another process while 50 monitors
  collect from the synthetic Keycloak every 10 s, against the same scrapes idle; and, for
  the record, while they collect back to back (the event loop saturated).
"""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bench.report import Result, median, percentile, profile, profile_async
from bench.synthetic_keycloak import ADMIN_PASSWORD, ADMIN_USER, RealmShape, SyntheticProcess
from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.exposition import MetricsStore, base_labels
from keycloak_monitor.health import Health
from keycloak_monitor.monitor import Monitor
from keycloak_monitor.render import render_monitor
from keycloak_monitor.server import make_app, start_server
from keycloak_monitor.snapshot import AgeHistogram, ClientSessions, EventCounts, RealmSnapshot
from tests.testbed.keycloak import free_port

TARGET_RATIO = 0.2
EVENT_RATE = 5.0  # new user and admin events per second in each realm while scrapes run
BUSY_TARGET = 1.25  # "not slower": the median scrape under load, within measurement noise


def snapshot(clients: int) -> RealmSnapshot:
    """A realm with `clients` clients, each with sessions and three kinds of events."""
    return RealmSnapshot(
        clients=tuple(ClientSessions(f"client-{i}", 40 * i, i) for i in range(clients)),
        user_sessions=900,
        connected_users=700,
        session_ages=AgeHistogram.of([float(i * 37 % 90000) for i in range(900)]),
        users=25_000,
        offline_enabled=True,
        user_events=EventCounts(
            {
                (f"client-{i}", kind, ""): 10 * i
                for i in range(clients)
                for kind in ("LOGIN", "LOGOUT", "CODE_TO_TOKEN")
            },
            created=1.7e9,
        ),
        admin_events=EventCounts({("UPDATE", "USER"): 4, ("CREATE", "CLIENT"): 1}, created=1.7e9),
    )


def series_of(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def fleet(monitors: int, series: int) -> MetricsStore:
    """`monitors` monitors sharing about `series` series between them."""
    health = Health()
    health.succeeded(0.3)
    fixed = sum(len(f.text.splitlines()) for f in render_monitor("", health, snapshot(0)).values())
    per_client = sum(len(f.text.splitlines()) for f in render_monitor("", health, snapshot(1)).values()) - fixed
    clients = max(1, round((series / monitors - fixed) / per_client))
    store = MetricsStore(include_process_metrics=False)
    snap = snapshot(clients)
    for i in range(monitors):
        key = MonitorKey(f"ns-{i % 20}", f"monitor-{i}")
        store.publish(key, render_monitor(base_labels(key, f"realm-{i}"), health, snap))
    return store


class Replay:
    """A prometheus_client collector answering fixed metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def baseline(body: bytes) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Replay(list(text_string_to_metric_families(body.decode()))))  # type: ignore[arg-type]
    return registry


def compare(result: Result, monitors: int, series: int, reps: int) -> None:
    store = fleet(monitors, series)
    body = store.render()
    registry = baseline(body)
    theirs_body = generate_latest(registry)
    ours, theirs = [], []
    for _ in range(reps):  # interleaved, so a busy moment of the machine hits both
        started = time.perf_counter()
        store.render()
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        generate_latest(registry)
        theirs.append(time.perf_counter() - started)
    label = f"{monitors} monitors, {series_of(body):,} series"
    result.details[label] = {
        "series": series_of(body),
        "series_generate_latest": series_of(theirs_body),
        "bytes": len(body),
        "reps": reps,
        "ours_ms": {"median": median(ours) * 1e3, "p99": percentile(ours, 0.99) * 1e3},
        "generate_latest_ms": {"median": median(theirs) * 1e3, "p99": percentile(theirs, 0.99) * 1e3},
    }
    result.add(f"scrape {label}: median vs generate_latest", median(ours) / median(theirs), "x", TARGET_RATIO)
    result.add(
        f"scrape {label}: p99 vs generate_latest",
        percentile(ours, 0.99) / percentile(theirs, 0.99),
        "x",
        TARGET_RATIO,
        note=f"ours {median(ours) * 1e3:.2f} ms median, {percentile(ours, 0.99) * 1e3:.2f} ms p99",
    )
    if result.missed and not result.profile:
        result.profile = profile(lambda: [store.render() for _ in range(reps)])


SCRAPER = """
import json, sys, time, httpx
url, count = sys.argv[1], int(sys.argv[2])
times = []
with httpx.Client() as client:
    for _ in range(count):
        started = time.perf_counter()
        client.get(url).raise_for_status()
        times.append(time.perf_counter() - started)
        time.sleep(0.02)
print(json.dumps(times))
"""


async def scrapes(url: str, count: int) -> list[float]:
    """Scrape latencies measured by another process, so the scraper never competes with us."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRAPER, url, str(count), stdout=subprocess.PIPE
    )
    out, _ = await process.communicate()
    return list(json.loads(out))


async def under_load(result: Result, monitors: int, sessions: int, count: int, interval: float) -> None:
    """Scrapes idle, then while every monitor collects on its interval (start times spread over
    it, as the operator's jitter does), then while they collect back to back (saturated)."""
    shape = RealmShape(sessions=sessions, clients=20, offline=sessions // 10, user_events=1000, event_rate=EVENT_RATE)
    with SyntheticProcess(shape) as keycloak:
        store = MetricsStore(include_process_metrics=True)
        port = free_port()
        runner = await start_server(make_app(store), "127.0.0.1", port)
        spec = {"url": keycloak.url, "interval": "60s", "timeout": "50s"}
        fleet_ = [
            Monitor(MonitorKey("bench", f"m{i}"), parse_spec({**spec, "realm": f"r{i}"}), store)
            for i in range(monitors)
        ]
        credentials = Credentials(username=ADMIN_USER, password=ADMIN_PASSWORD)
        collections = 0

        async def loop(n: int, pause: float) -> None:
            nonlocal collections
            if pause:
                await asyncio.sleep(interval * n / monitors)
            while True:
                started = time.monotonic()
                await fleet_[n].collect(credentials)
                collections += 1
                await asyncio.sleep(max(0.0, pause - (time.monotonic() - started)))

        async def during(pause: float, scrapes_: int) -> tuple[list[float], int, float]:
            """Scrape times, collections, and the share of one core this process used meanwhile."""
            nonlocal collections
            collections = 0
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(loop(n, pause)) for n in range(monitors)]
                if pause:
                    await asyncio.sleep(interval)  # every monitor in its rhythm
                cpu, wall = time.process_time(), time.perf_counter()
                times = await scrapes(url, scrapes_)
                busy = (time.process_time() - cpu) / (time.perf_counter() - wall)
                for task in tasks:
                    task.cancel()
            return times, collections, busy

        url = f"http://127.0.0.1:{port}/metrics"
        try:
            await asyncio.gather(*(m.collect(credentials) for m in fleet_))  # warm: tokens, event cursors
            idle = await scrapes(url, count)
            paced, paced_collections, paced_cpu = await during(interval, count)
            saturated, saturated_collections, saturated_cpu = await during(0.0, max(5, count // 5))
            result.details["under load"] = {
                "monitors": monitors,
                "sessions per realm": sessions,
                "interval_s": interval,
                "collections during the paced scrapes": paced_collections,
                "collections during the saturated scrapes": saturated_collections,
                "cpu share of a core, paced": paced_cpu,
                "cpu share of a core, saturated": saturated_cpu,
                **{
                    f"{name}_ms": {"median": median(times) * 1e3, "p99": percentile(times, 0.99) * 1e3}
                    for name, times in (("idle", idle), ("paced", paced), ("saturated", saturated))
                },
            }
            ratio = median(paced) / median(idle)
            note = (
                f"{monitors} monitors of {sessions:,} sessions and {EVENT_RATE:g} events/s, each every {interval:g}s: "
                f"{paced_collections} collections during {count} scrapes, the process using {paced_cpu:.0%} of a core"
            )
            figure = result.add("scrape during collections: median vs idle", ratio, "x", BUSY_TARGET, note)
            result.add("scrape during collections: p99 vs idle", percentile(paced, 0.99) / percentile(idle, 0.99), "x")
            result.add(
                "scrape during back-to-back collections: median vs idle",
                median(saturated) / median(idle),
                "x",
                note=f"the event loop saturated: {saturated_collections} collections during {len(saturated)} scrapes, "
                f"{saturated_cpu:.0%} of a core",
            )
            if figure.met is False:  # what keeps the event loop from the scrapes: one round of collections
                work = await profile_async(lambda: asyncio.gather(*(m.collect(credentials) for m in fleet_)))
                result.profile = (result.profile + "\n\n" if result.profile else "") + work
        finally:
            for monitor in fleet_:
                await monitor.close()
            await runner.cleanup()


def run(smoke: bool = False) -> Result:
    result = Result("scrape", "Scrape: /metrics against prometheus_client generate_latest over the same samples")
    sizes = [(1, 200, 5), (5, 1_000, 5)] if smoke else [(1, 2_000, 200), (50, 20_000, 60), (500, 100_000, 20)]
    for monitors, series, reps in sizes:
        compare(result, monitors, series, reps)
    if smoke:
        asyncio.run(under_load(result, monitors=2, sessions=200, count=5, interval=0.5))
    else:
        asyncio.run(under_load(result, monitors=50, sessions=2_000, count=100, interval=10.0))
    return result
