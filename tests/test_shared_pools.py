"""Many monitors of one Keycloak: one pool, one token per account, a bound on requests in
flight for the whole process; counted at a loopback proxy in front of the real Keycloak."""

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from random import Random

import pytest

from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.errors import Reason
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.http_pool import HttpPools
from keycloak_monitor.monitor import Monitor, Outcome
from tests.proxy import FaultProxy
from tests.realms import PASSWORD, Realm, make_realm
from tests.testbed.keycloak import KeycloakAdmin

pytestmark = pytest.mark.keycloak

VIEW_ROLES = ("view-realm", "view-users", "view-clients", "view-events")
TOKEN_PATH = "/protocol/openid-connect/token"


def monitor_account(kc_admin: KeycloakAdmin, realm: Realm) -> str:
    """A user of the observed realm allowed to read it: its sessions are the monitors' logins."""
    user_id = kc_admin.create_user(realm.name, "watcher", PASSWORD)
    kc_admin.grant_user_realm_management_roles(realm.name, user_id, VIEW_ROLES)
    return user_id


def monitors(
    url: str, realm: str, count: int, pools: HttpPools, store: MetricsStore, timeout: str = "20s"
) -> list[Monitor]:
    spec = parse_spec({"url": url, "realm": realm, "authRealm": realm, "interval": "30s", "timeout": timeout})
    return [Monitor(MonitorKey("pool", f"m{i}"), spec, store, pools=pools) for i in range(count)]


async def collect_all(group: Sequence[Monitor], credentials: Credentials | Sequence[Credentials]) -> list[Outcome]:
    each = [credentials] * len(group) if isinstance(credentials, Credentials) else credentials
    return await asyncio.gather(*(m.collect(c) for m, c in zip(group, each, strict=True)))


def token_requests(proxy: FaultProxy) -> int:
    return sum(TOKEN_PATH in target for target in proxy.seen)


def sessions_of(kc_admin: KeycloakAdmin, realm: str, user_id: str) -> int:
    return len(kc_admin.get(f"/{realm}/users/{user_id}/sessions"))


async def test_monitors_of_one_account_share_one_pool_one_login_and_a_revoked_token(keycloak, kc_admin):
    realm = make_realm(kc_admin, "shared")
    watcher = monitor_account(kc_admin, realm)
    credentials = Credentials(username="watcher", password=PASSWORD)
    pools, store = HttpPools(), MetricsStore(False)
    async with FaultProxy(keycloak.base_url) as proxy:
        group = monitors(proxy.url, realm.name, 5, pools, store)
        for _ in range(2):
            outcomes = await collect_all(group, credentials)
            assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert len(pools) == 1
        assert token_requests(proxy) == 1  # one login for 5 monitors x 2 collections
        assert sessions_of(kc_admin, realm.name, watcher) == 1  # one Keycloak session, not 5

        # Revoked: each monitor's next request answers 401; the first renewal serves them all
        # (a refresh the ended session refuses, then one login).
        kc_admin.request("POST", f"/{realm.name}/users/{watcher}/logout")
        outcomes = await collect_all(group, credentials)
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert token_requests(proxy) == 3
        assert sessions_of(kc_admin, realm.name, watcher) == 1

        await asyncio.gather(*(m.close() for m in group[:-1]))
        assert len(pools) == 1 and sessions_of(kc_admin, realm.name, watcher) == 1  # one monitor still uses them
        await group[-1].close()
        assert len(pools) == 0  # its connections closed with the last monitor
        assert sessions_of(kc_admin, realm.name, watcher) == 0  # and its Keycloak session ended


async def test_requests_in_flight_to_one_keycloak_stay_within_the_bound(keycloak, kc_admin):
    realm = make_realm(kc_admin, "bound")
    monitor_account(kc_admin, realm)
    pools, store = HttpPools(max_requests=2), MetricsStore(False)
    async with FaultProxy(keycloak.base_url) as proxy:
        proxy.delay("/admin/realms/", 0.1)  # requests overlap: 6 monitors could hold 24 at once
        group = monitors(proxy.url, realm.name, 6, pools, store)
        outcomes = await collect_all(group, Credentials(username="watcher", password=PASSWORD))
        assert all(o.ok and o.snapshot is not None and o.snapshot.users == 4 for o in outcomes), outcomes
        assert proxy.most_in_flight == 2
        await asyncio.gather(*(m.close() for m in group))
    assert len(pools) == 0


async def test_monitors_started_together_each_collect_within_their_budget(keycloak, kc_admin):
    """Sixteen monitors of one Keycloak started at once, two request slots, 0.15 s a request:
    sharing the slots among all sixteen, each would need about 12 s and every one would
    outrun its 5 s budget, together, again each interval. Admitted a few at a time, each
    takes about 1.5 s and all succeed."""
    realm = make_realm(kc_admin, "admission")
    monitor_account(kc_admin, realm)
    pools, store = HttpPools(max_requests=2), MetricsStore(False)
    async with FaultProxy(keycloak.base_url) as proxy:
        proxy.delay("/admin/realms/", 0.15)
        group = monitors(proxy.url, realm.name, 16, pools, store, timeout="5s")
        outcomes = await collect_all(group, Credentials(username="watcher", password=PASSWORD))
        assert [o.error for o in outcomes if not o.ok] == []
        assert all(o.snapshot is not None and o.snapshot.users == 4 for o in outcomes)
        await asyncio.gather(*(m.close() for m in group))
    assert len(pools) == 0


async def test_a_wrong_password_never_shares_nor_spoils_the_right_ones_token(keycloak, kc_admin):
    realm = make_realm(kc_admin, "apart")
    watcher = monitor_account(kc_admin, realm)
    right, wrong = Credentials(username="watcher", password=PASSWORD), Credentials(username="watcher", password="x")
    pools, store = HttpPools(), MetricsStore(False)
    async with FaultProxy(keycloak.base_url) as proxy:
        good, bad = monitors(proxy.url, realm.name, 2, pools, store)
        for round_ in (1, 2):
            outcomes = await collect_all((good, bad), (right, wrong))
            assert outcomes[0].ok, outcomes[0].error
            assert outcomes[1].error is not None and outcomes[1].error.reason is Reason.AUTH
            assert token_requests(proxy) == 1 + round_  # the right login once, the wrong one every time
        # The wrong password fixed (a rotated Secret): it joins the right one's token.
        assert (await bad.collect(right)).ok
        assert token_requests(proxy) == 3
        assert sessions_of(kc_admin, realm.name, watcher) == 1
        await good.close()
        await bad.close()
    assert len(pools) == 0


async def test_another_ca_moves_a_monitor_to_another_pool_and_closes_the_old_one(keycloak, kc_admin):
    realm = make_realm(kc_admin, "trust")
    monitor_account(kc_admin, realm)
    credentials = Credentials(username="watcher", password=PASSWORD)
    pools, store = HttpPools(), MetricsStore(False)
    spec = parse_spec({"url": keycloak.https_url, "realm": realm.name, "authRealm": realm.name})
    first, second = (Monitor(MonitorKey("pool", name), spec, store, pools=pools) for name in ("a", "b"))
    ca = keycloak.ca_file.read_text()
    assert all(o.ok for o in await asyncio.gather(first.collect(credentials, ca), second.collect(credentials, ca)))
    shared = first.api._pool
    assert second.api._pool is shared and len(pools) == 1

    # The system store does not trust Keycloak's certificate: that monitor alone fails.
    failed = await second.collect(credentials, None)
    assert failed.error is not None and failed.error.reason is Reason.CONNECT
    assert len(pools) == 2 and (await first.collect(credentials, ca)).ok
    await first.close()
    assert shared.http.is_closed and len(pools) == 1
    await second.close()
    assert len(pools) == 0


async def test_collections_cancelled_mid_request_never_wedge_a_keycloaks_connections(keycloak, kc_admin):
    """Collections are cancelled in the middle of requests (their budget, a sibling's failure).
    httpcore 1.0.9 keeps a connection slot for good when a request is cancelled just as the pool
    hands it a new connection (encode/httpcore#1093); once every slot is kept, every request to
    that Keycloak waits forever. Cancelling a collection must never reach the pool: after
    thousands of requests cancelled at random points, a collection still gets through."""
    realm = make_realm(kc_admin, "cancelled")
    monitor_account(kc_admin, realm)
    credentials = Credentials(username="watcher", password=PASSWORD)
    pools, store = HttpPools(max_requests=1), MetricsStore(False)  # one slot kept is a wedge
    random = Random(7)
    async with FaultProxy(keycloak.base_url) as proxy:
        (monitor,) = monitors(proxy.url, realm.name, 1, pools, store)
        assert (await monitor.collect(credentials)).ok
        proxy.delay("/users/count", 0.02)

        async def impatient() -> None:
            with suppress(TimeoutError):
                async with asyncio.timeout(random.uniform(0.0, 0.03)):
                    await monitor.api.get("/users/count")

        for _ in range(300):  # the old pool was wedged in every one of five runs
            async with asyncio.TaskGroup() as group:
                for _ in range(4):
                    group.create_task(impatient())
        proxy.clear()
        async with asyncio.timeout(60):  # a guard against a hang, not a speed target
            outcome = await monitor.collect(credentials)
        assert outcome.ok, outcome.error
        await monitor.close()
