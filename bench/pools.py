"""What one more monitor of the same Keycloak costs: N monitors of one realm and account,
created and collected once, with pools, tokens and TLS contexts shared per Keycloak (now)
and with a pool of its own each (as before), without and with a caSecret CA bundle.

Per extra monitor: Python heap kept (tracemalloc; OpenSSL's own memory is not in it: about
40 KiB per context with a one-CA bundle, while the system store's 1 MiB is loaded once per
process either way), event-loop CPU (creation and first collection), the longest the loop
was blocked, and the Keycloak sessions the account holds while they run.

    python -m bench.pools [--smoke]
"""

import argparse
import asyncio
import time
import tracemalloc
from dataclasses import dataclass

from bench.collection_keycloak import Admin
from bench.report import Result
from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.http_pool import HttpPools
from keycloak_monitor.metrics_tls import self_signed_pem
from keycloak_monitor.monitor import Monitor
from tests.realms import PASSWORD, make_realm
from tests.test_shared_pools import VIEW_ROLES
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer, ensure_distribution

MONITORS, SMOKE_MONITORS = 200, 3


@dataclass(frozen=True)
class Cost:
    heap: float  # bytes kept per monitor after its first collection
    loop_cpu: float  # seconds of CPU per monitor, creation and first collection
    longest_block: float  # seconds the loop went without running a 1 ms heartbeat
    sessions: int  # Keycloak sessions of the account while the monitors run


async def heartbeat(longest: list[float]) -> None:
    while True:
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        longest[0] = max(longest[0], time.perf_counter() - started - 0.001)


async def collect_once(admin: Admin, realm: str, count: int, shared: bool, ca: str | None) -> list[Monitor]:
    spec = parse_spec({"url": admin.url, "realm": realm, "authRealm": realm, "interval": "300s", "timeout": "240s"})
    credentials = Credentials(username="watcher", password=PASSWORD)
    store, pools = MetricsStore(False), HttpPools()
    monitors = [
        Monitor(MonitorKey("bench", f"m{i}"), spec, store, pools=pools if shared else None) for i in range(count)
    ]
    outcomes = await asyncio.gather(*(m.collect(credentials, ca) for m in monitors))
    failed = [o.error for o in outcomes if not o.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} collections failed, e.g. {failed[0]}")
    return monitors


async def measure(admin: Admin, realm: str, user: str, count: int, shared: bool, ca: str | None) -> Cost:
    """Time without tracemalloc (it slows Python several times), then the heap with it."""
    longest = [0.0]
    beat = asyncio.create_task(heartbeat(longest))
    cpu = time.process_time()
    monitors = await collect_once(admin, realm, count, shared, ca)
    cpu = time.process_time() - cpu
    beat.cancel()
    with KeycloakAdmin(admin.url, admin.username, admin.password) as client:
        sessions = len(client.get(f"/{realm}/users/{user}/sessions"))
    await asyncio.gather(*(m.close() for m in monitors))

    tracemalloc.start()
    heap = tracemalloc.get_traced_memory()[0]
    monitors = await collect_once(admin, realm, count, shared, ca)
    heap = tracemalloc.get_traced_memory()[0] - heap
    tracemalloc.stop()
    await asyncio.gather(*(m.close() for m in monitors))
    return Cost(heap / count, cpu / count, longest[0], sessions)


def provision(admin: Admin) -> tuple[str, str]:
    with KeycloakAdmin(admin.url, admin.username, admin.password) as client:
        realm = make_realm(client, "pools", users=3)
        user = client.create_user(realm.name, "watcher", PASSWORD)
        client.grant_user_realm_management_roles(realm.name, user, VIEW_ROLES)
    return realm.name, user


def measure_all(admin: Admin, count: int) -> Result:
    realm, user = provision(admin)
    ca = self_signed_pem(["ca.example"])[0].decode()  # a caSecret's bundle: one CA
    result = Result("pools", f"One more monitor of the same Keycloak ({count} monitors, one account)")
    for trust, bundle in (("system trust", None), ("caSecret", ca)):
        own = asyncio.run(measure(admin, realm, user, count, False, bundle))
        shared = asyncio.run(measure(admin, realm, user, count, True, bundle))
        result.details[trust] = {"own pool each": own.__dict__, "shared": shared.__dict__}
        kib, ms = 1024, 1000
        result.add(
            f"heap per monitor, {trust}",
            shared.heap / kib,
            "KiB",
            note=f"{own.heap / kib:.0f} KiB with a pool each",
        )
        result.add(
            f"loop CPU per monitor, {trust}",
            shared.loop_cpu * ms,
            "ms",
            note=f"{own.loop_cpu * ms:.1f} ms with a pool each; longest block "
            f"{shared.longest_block * ms:.0f} ms (was {own.longest_block * ms:.0f} ms)",
        )
        result.add(
            f"Keycloak sessions of the account, {trust}",
            shared.sessions,
            target=1,
            note=f"{own.sessions} with a pool each",
        )
    return result


def run(smoke: bool = False, admin: Admin | None = None) -> Result:
    count = SMOKE_MONITORS if smoke else MONITORS
    if admin is not None:
        return measure_all(admin, count)
    with KeycloakServer(ensure_distribution(), https=False) as keycloak:
        return measure_all(Admin(keycloak.base_url, keycloak.admin_user, keycloak.admin_password), count)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pools")
    parser.add_argument("--smoke", action="store_true")
    from bench.report import table

    print(table([run(parser.parse_args().smoke)]))


if __name__ == "__main__":
    main()
