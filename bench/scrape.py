"""Scrape cost with many monitors: a scrape concatenates pre-rendered bytes, so its time
should follow the size of the answer, not the number of monitors' computations.

    .venv/bin/python bench/scrape.py [monitors ...]

Prints, per monitor count: bytes per scrape, render time (median of 50), the time to
publish one monitor (render after a collection), and the process's resident memory.
"""

import resource
import statistics
import sys
import time

from keycloak_monitor.config import MonitorKey
from keycloak_monitor.exposition import MetricsStore, base_labels
from keycloak_monitor.health import Health
from keycloak_monitor.render import render_monitor
from keycloak_monitor.snapshot import AgeHistogram, ClientSessions, RealmSnapshot


def snapshot(clients: int = 12) -> RealmSnapshot:
    return RealmSnapshot(
        clients=tuple(ClientSessions(f"client-{i}", 40 * i, i) for i in range(clients)),
        user_sessions=900,
        connected_users=700,
        session_ages=AgeHistogram.of([float(i * 37 % 90000) for i in range(900)]),
        users=25_000,
        offline_enabled=True,
        user_events={
            (f"client-{i}", kind, ""): 10 * i for i in range(clients) for kind in ("LOGIN", "LOGOUT", "CODE_TO_TOKEN")
        },
        admin_events={("UPDATE", "USER"): 4, ("CREATE", "CLIENT"): 1},
    )


def measure(monitors: int) -> None:
    store = MetricsStore(include_process_metrics=False)
    snap = snapshot()
    started = time.perf_counter()
    for i in range(monitors):
        key = MonitorKey(f"ns-{i % 20}", f"monitor-{i}")
        health = Health()
        health.succeeded(0.3)
        store.publish(key, render_monitor(base_labels(key, f"realm-{i}"), health, snap))
    publish = (time.perf_counter() - started) / monitors
    times = []
    for _ in range(50):
        started = time.perf_counter()
        body = store.render()
        times.append(time.perf_counter() - started)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{monitors:5d} monitors: {len(body) / 1e6:7.2f} MB/scrape, render {statistics.median(times) * 1e3:7.2f} ms "
        f"({len(body) / statistics.median(times) / 1e9:5.2f} GB/s), publish {publish * 1e3:5.2f} ms/monitor, "
        f"max RSS {rss_mib:6.0f} MiB"
    )


if __name__ == "__main__":
    for count in [int(a) for a in sys.argv[1:]] or [1, 10, 100, 500]:
        measure(count)
