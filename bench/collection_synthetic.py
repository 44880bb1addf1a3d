"""Collection at sizes the real test bed cannot hold: 1k, 10k and 50k online sessions over 20
clients (a tenth as many offline), from the synthetic Admin API (bench/synthetic_keycloak.py),
with and without sessions.details. Events are off: this measures the session path.

Each size runs in a fresh process, so its peak memory is its own; the server runs in another,
so its CPU never counts as ours. Per steady cycle (the token cached): requests against the
minimum (the fixed calls: client-session-stats, one page of /clients, users/count; plus, with
details, client-session-stats again after the listing for the discrepancy gauge and one page
of 1000 per started thousand sessions of each client with sessions), CPU
per session, and the peak resident memory the collections added.

    python -m bench.collection_synthetic [--smoke]
"""

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict

from bench.report import Result, profile
from bench.synthetic_keycloak import ADMIN_PASSWORD, ADMIN_USER, RealmData, RealmShape, SyntheticProcess
from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.monitor import Monitor
from keycloak_monitor.sessions import CLIENT_PAGE_SIZE, SESSION_PAGE_SIZE

CLIENTS = 20
FIXED_CALLS = 2  # client-session-stats, users/count; /clients pages come on top
# With details, client-session-stats once more after the listing: the counters on both sides
# of it bound keycloak_monitor_session_listing_discrepancy.
LISTING_CHECK_CALLS = 1


def shape(sessions: int) -> RealmShape:
    return RealmShape(sessions=sessions, clients=CLIENTS, offline=sessions // 10)


def minimum_requests(sessions: int, details: bool) -> int:
    data = RealmData(shape(sessions), 0)
    calls = FIXED_CALLS + -(-len(data.client_ids) // CLIENT_PAGE_SIZE)
    if details:
        calls += LISTING_CHECK_CALLS
        calls += sum(-(-len(listing) // SESSION_PAGE_SIZE) for listing in data.online if listing)
    return calls


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def high_water_bytes() -> int:
    """This process's peak resident memory: VmHWM starts afresh at exec, where ru_maxrss
    keeps the parent's peak from before it."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def monitor_for(url: str, details: bool) -> Monitor:
    spec = {
        "url": url,
        "realm": "bench",
        "interval": "120s",
        "timeout": "100s",
        "sessions": {"details": details},
        "events": {"user": False, "admin": False},
    }
    return Monitor(MonitorKey("bench", "synthetic"), parse_spec(spec), MetricsStore(include_process_metrics=False))


async def one(sessions: int, details: bool, cycles: int) -> dict[str, object]:
    """Measured in this process: `cycles` collections after a first one that fetches the token."""
    credentials = Credentials(username=ADMIN_USER, password=ADMIN_PASSWORD)
    with SyntheticProcess(shape(sessions)) as keycloak:
        monitor = monitor_for(keycloak.url, details)
        before = rss_bytes()
        first = await monitor.collect(credentials)
        assert first.ok, first.error
        keycloak.reset()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(cycles):
            outcome = await monitor.collect(credentials)
            assert outcome.ok, outcome.error
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        counted = keycloak.requests()
        requests = counted["total"]
        peak = high_water_bytes()
        await monitor.close()
    snapshot = outcome.snapshot
    assert snapshot is not None
    return {
        "sessions": sessions,
        "details": details,
        "requests_per_cycle": requests / cycles,
        "requests_by_endpoint": {k: v / cycles for k, v in counted["endpoints"].items()},
        "minimum": minimum_requests(sessions, details),
        "cpu_s_per_cycle": cpu / cycles,
        "wall_s_per_cycle": wall / cycles,
        "rss_before_mib": before / 2**20,
        "peak_rss_mib": peak / 2**20,
        "user_sessions": snapshot.user_sessions,
        "active_total": sum(c.active for c in snapshot.clients),
    }


def measure(sessions: int, details: bool, cycles: int) -> dict[str, object]:
    """`one` in a fresh process."""
    command = [
        sys.executable,
        "-m",
        "bench.collection_synthetic",
        "--one",
        str(sessions),
        str(int(details)),
        str(cycles),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def profiled_cycle(sessions: int, details: bool) -> str:
    async def cycles() -> None:
        credentials = Credentials(username=ADMIN_USER, password=ADMIN_PASSWORD)
        with SyntheticProcess(shape(sessions)) as keycloak:
            monitor = monitor_for(keycloak.url, details)
            await monitor.collect(credentials)
            await monitor.collect(credentials)
            await monitor.close()

    return profile(lambda: asyncio.run(cycles()))


def run(smoke: bool = False) -> Result:
    result = Result("collection_synthetic", "Collection at 1k, 10k and 50k sessions (synthetic Admin API, 20 clients)")
    sizes, cycles = ([100, 300], 1) if smoke else ([1_000, 10_000, 50_000], 3)
    result.details["shape"] = {k: v for k, v in asdict(shape(0)).items() if k != "sessions"}
    missed: tuple[int, bool] | None = None
    for sessions in sizes:
        for details in (True, False):
            row = measure(sessions, details, cycles)
            label = f"{sessions:,} sessions, details {'on' if details else 'off'}"
            result.details[label] = row
            ratio = float(row["requests_per_cycle"]) / float(row["minimum"])
            figure = result.add(
                f"{label}: requests per cycle vs minimum",
                ratio,
                "x",
                1.0,
                note=f"{row['requests_per_cycle']:g} requests, minimum {row['minimum']}: "
                + ", ".join(f"{n:g} {endpoint}" for endpoint, n in dict(row["requests_by_endpoint"]).items()),
            )
            cpu, wall = float(row["cpu_s_per_cycle"]), float(row["wall_s_per_cycle"])
            result.add(
                f"{label}: CPU per session",
                cpu / sessions * 1e6,
                "µs",
                note=f"{cpu * 1e3:.0f} ms CPU, {wall * 1e3:.0f} ms wall per cycle",
            )
            peak, before = float(row["peak_rss_mib"]), float(row["rss_before_mib"])
            result.add(
                f"{label}: peak memory added",
                peak - before,
                "MiB",
                note=f"peak resident {peak:.0f} MiB, {before:.0f} MiB before the first collection",
            )
            if figure.met is False and missed is None:
                missed = (sessions, details)
    if missed is not None:
        result.profile = profiled_cycle(*missed)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.collection_synthetic")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--one", nargs=3, type=int, metavar=("SESSIONS", "DETAILS", "CYCLES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sessions, details, cycles = args.one
        print(json.dumps(asyncio.run(one(sessions, bool(details), cycles))))
        return
    from bench.report import table

    print(table([run(args.smoke)]))


if __name__ == "__main__":
    main()
