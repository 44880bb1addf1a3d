"""What one more monitor of the same Keycloak costs, with pools shared per Keycloak and with
a pool of its own each (as before): Python heap (tracemalloc), event-loop time, Keycloak
sessions, over 200 monitors of one realm and account, HTTPS with a CA bundle.

    .venv/bin/python -m bench.pools [monitors=200]
"""

import asyncio
import sys
import time
import tracemalloc
from dataclasses import dataclass

from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.http_pool import HttpPools
from keycloak_monitor.monitor import Monitor
from tests.realms import PASSWORD, make_realm
from tests.test_shared_pools import VIEW_ROLES
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer, ensure_distribution


@dataclass
class Cost:
    heap_per_monitor: float  # bytes kept after the first collection
    loop_per_monitor: float  # seconds of CPU in the loop, creation and first collection
    longest_block: float  # seconds the loop went without running a 1 ms heartbeat
    sessions: int  # Keycloak sessions of the account while the monitors run


async def heartbeat(longest: list[float]) -> None:
    while True:
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        longest[0] = max(longest[0], time.perf_counter() - started - 0.001)


async def measure(
    keycloak: KeycloakServer, admin: KeycloakAdmin, realm: str, user: str, count: int, shared: bool
) -> Cost:
    spec = parse_spec(
        {"url": keycloak.https_url, "realm": realm, "authRealm": realm, "interval": "300s", "timeout": "240s"}
    )
    ca, credentials = keycloak.ca_file.read_text(), Credentials(username="watcher", password=PASSWORD)
    store, pools = MetricsStore(False), HttpPools()
    longest = [0.0]
    beat = asyncio.create_task(heartbeat(longest))
    tracemalloc.start()
    heap, cpu = tracemalloc.get_traced_memory()[0], time.process_time()
    monitors = [
        Monitor(MonitorKey("bench", f"m{i}"), spec, store, pools=pools if shared else None) for i in range(count)
    ]
    outcomes = await asyncio.gather(*(m.collect(credentials, ca) for m in monitors))
    cpu, heap = time.process_time() - cpu, tracemalloc.get_traced_memory()[0] - heap
    tracemalloc.stop()
    beat.cancel()
    failed = [o.error for o in outcomes if not o.ok]
    if failed:
        sys.exit(f"FAILED: {len(failed)} collections, e.g. {failed[0]}")
    sessions = len(admin.get(f"/{realm}/users/{user}/sessions"))
    await asyncio.gather(*(m.close() for m in monitors))
    return Cost(heap / count, cpu / count, longest[0], sessions)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with (
        KeycloakServer(ensure_distribution()) as keycloak,
        KeycloakAdmin(keycloak.base_url, keycloak.admin_user, keycloak.admin_password) as admin,
    ):
        realm = make_realm(admin, "pools", users=3)
        user = admin.create_user(realm.name, "watcher", PASSWORD)
        admin.grant_user_realm_management_roles(realm.name, user, VIEW_ROLES)
        for label, shared in (("own pool each (before)", False), ("shared per Keycloak", True)):
            cost = asyncio.run(measure(keycloak, admin, realm.name, user, count, shared))
            print(
                f"{count} monitors, {label}: heap {cost.heap_per_monitor / 1024:.0f} KiB/monitor, "
                f"loop CPU {cost.loop_per_monitor * 1000:.1f} ms/monitor, longest block "
                f"{cost.longest_block * 1000:.0f} ms, Keycloak sessions {cost.sessions}"
            )


if __name__ == "__main__":
    main()
