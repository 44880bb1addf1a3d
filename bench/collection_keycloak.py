"""Collection cost on a real Keycloak: 3,030 online sessions over 3 clients (1,010 each, two per
user, so 1,515 connected users) plus 300 offline sessions, in one realm.

In each round, in turns:
- ours: one collection by a Monitor (sessions.details on, events off), after a first one
  that fetched the token; its wall time, CPU time and requests;
- a plain httpx script making the minimal requests for the same numbers (the same three
  counters, then every page of 1000 sessions of each client, 4 connections as ours), with
  its token fetched once too: target ours ≤ 1.2x its wall time;
- the seed exporter's request pattern (sequential, as it did it: a token, the stats, the
  clients, one listing per client capped at 500, the 25 last LOGIN events and one user
  look-up per event): its requests, its time, and how far its numbers are from the truth.

    python -m bench.collection_keycloak [--smoke]
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.report import Result, median, profile_async
from keycloak_monitor.config import Credentials, MonitorKey, parse_spec
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.monitor import Monitor
from keycloak_monitor.sessions import SESSION_PAGE_SIZE
from tests.realms import PASSWORD, make_realm
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer, ensure_distribution

CLIENTS = ("web", "app", "api")
TARGET = 1.2
SEED_LISTING_CAP, SEED_LOGIN_EVENTS = 500, 25
IMPORT_CHUNK = 250  # users per partialImport: a busy Keycloak answers each well within a minute


@dataclass(frozen=True)
class Size:
    per_client: int  # online sessions of each client
    offline: int
    rounds: int

    @property
    def users(self) -> int:
        return self.per_client * len(CLIENTS) // 2


FULL, SMOKE = Size(1_010, 300, 9), Size(10, 3, 1)


@dataclass(frozen=True)
class Admin:
    url: str
    username: str
    password: str


@dataclass(frozen=True)
class Numbers:
    """What a collection finds out about the realm."""

    user_sessions: int
    connected_users: int
    active: int  # online sessions summed over clients


def populate(admin: KeycloakAdmin, size: Size) -> str:
    """The realm: each user has two online sessions, on two different clients."""
    realm = make_realm(admin, "bench", users=0, clients=CLIENTS)
    names = [f"bench{i:05d}" for i in range(size.users)]
    for start in range(0, len(names), IMPORT_CHUNK):
        admin.create_users_bulk(realm.name, [(n, PASSWORD) for n in names[start : start + IMPORT_CHUNK]])
    half = size.per_client // 2
    owners = {
        "web": names[: size.per_client],
        "app": names[half : half + size.per_client],
        "api": names[:half] + names[size.per_client :],
    }
    for client, users in owners.items():
        admin.login_many(realm.name, client, [(u, PASSWORD) for u in users])
    admin.login_many(realm.name, "app", [(u, PASSWORD) for u in names[: size.offline]], offline=True)
    return realm.name


def monitor_for(url: str, realm: str) -> Monitor:
    spec = {
        "url": url,
        "realm": realm,
        "interval": "120s",
        "timeout": "100s",
        "events": {"user": False, "admin": False},
    }
    return Monitor(MonitorKey("bench", "keycloak"), parse_spec(spec), MetricsStore(include_process_metrics=False))


TOKEN_PATH = "/realms/master/protocol/openid-connect/token"


def token_form(admin: Admin) -> dict[str, str]:
    return {"grant_type": "password", "client_id": "admin-cli", "username": admin.username, "password": admin.password}


def bearer(response: httpx.Response) -> str:
    response.raise_for_status()
    return "Bearer " + str(response.json()["access_token"])


async def plain(http: httpx.AsyncClient, realm: str) -> tuple[Numbers, int]:
    """The minimal requests for the same numbers, with nothing around them."""
    base = f"/admin/realms/{realm}"

    async def get(path: str, **params: Any) -> Any:
        response = await http.get(base + path, params=params)
        response.raise_for_status()
        return response.json()

    stats, clients, users = await asyncio.gather(get("/client-session-stats"), get("/clients"), get("/users/count"))
    active = {entry["id"]: int(entry["active"]) for entry in stats}
    pages = [
        get(f"/clients/{uuid}/user-sessions", first=first, max=SESSION_PAGE_SIZE)
        for uuid, count in active.items()
        for first in range(0, count, SESSION_PAGE_SIZE)
    ]
    listed = await asyncio.gather(*pages)
    sessions = {s["id"]: s for page in listed for s in page}
    now = time.time()
    ages = sorted(now - s["start"] / 1000 for s in sessions.values())
    per_client = {c["clientId"]: active.get(c["id"], 0) for c in clients}
    assert isinstance(users, int) and len(ages) == len(sessions)
    numbers = Numbers(len(sessions), len({s["userId"] for s in sessions.values()}), sum(per_client.values()))
    return numbers, 3 + len(pages)


def seed_pattern(admin: Admin, realm: str) -> tuple[Numbers, int]:
    """The seed exporter's requests, one after the other as it made them."""
    requests = 0
    with httpx.Client(base_url=admin.url, timeout=60) as http:

        def get(path: str, **params: Any) -> Any:
            nonlocal requests
            requests += 1
            response = http.get(f"/admin/realms/{realm}{path}", params=params, headers=headers)
            response.raise_for_status()
            return response.json()

        headers = {"Authorization": bearer(http.post(TOKEN_PATH, data=token_form(admin)))}
        requests += 1
        stats = get("/client-session-stats")
        get("/clients")
        sessions: list[dict[str, Any]] = []
        for entry in stats:
            sessions += get(f"/clients/{entry['id']}/user-sessions", first=0, max=SEED_LISTING_CAP)
        for event in get("/events", type="LOGIN", max=SEED_LOGIN_EVENTS):
            if event.get("userId"):
                get(f"/users/{event['userId']}")
    active = sum(int(entry["active"]) for entry in stats)
    return Numbers(len({s["id"] for s in sessions}), len({s["userId"] for s in sessions}), active), requests


def requests_of(monitor: Monitor) -> int:
    return sum(monitor.health.api_requests.values())


async def measure(admin: Admin, realm: str, size: Size) -> Result:
    result = Result("collection_keycloak", "Collection on a real Keycloak: ours against a plain httpx script")
    credentials = Credentials(username=admin.username, password=admin.password)
    monitor = monitor_for(admin.url, realm)
    limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(base_url=admin.url, limits=limits, timeout=60) as http:
        http.headers["Authorization"] = bearer(await http.post(TOKEN_PATH, data=token_form(admin)))
        first = await monitor.collect(credentials)
        assert first.ok, first.error
        ours: list[tuple[float, float, int]] = []
        theirs: list[tuple[float, int]] = []
        seeds: list[tuple[float, int]] = []
        truth = seed = None

        async def run_ours() -> None:
            nonlocal truth
            before, cpu, wall = requests_of(monitor), time.process_time(), time.perf_counter()
            outcome = await monitor.collect(credentials)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert outcome.ok and outcome.snapshot is not None, outcome.error
            ours.append((wall, cpu, requests_of(monitor) - before))
            snap = outcome.snapshot
            truth = Numbers(snap.user_sessions or 0, snap.connected_users or 0, sum(c.active for c in snap.clients))

        async def run_plain() -> None:
            wall = time.perf_counter()
            numbers, requests = await plain(http, realm)
            theirs.append((time.perf_counter() - wall, requests))
            assert numbers == truth or truth is None, (numbers, truth)

        async def run_seed() -> None:
            nonlocal seed
            wall = time.perf_counter()
            seed, requests = seed_pattern(admin, realm)
            seeds.append((time.perf_counter() - wall, requests))

        turns: list[Callable[[], Awaitable[None]]] = [run_ours, run_plain, run_seed]
        for round_ in range(size.rounds):
            for turn in turns[round_ % 3 :] + turns[: round_ % 3]:  # each goes first in turn
                await turn()
        ours_wall, plain_wall = median([w for w, _, _ in ours]), median([w for w, _ in theirs])
        ratio = result.add(
            "wall time vs a plain httpx script",
            ours_wall / plain_wall,
            "x",
            TARGET,
            note=f"ours {ours_wall * 1e3:.0f} ms, plain {plain_wall * 1e3:.0f} ms (median of {size.rounds})",
        )
        assert truth is not None and seed is not None
        expected = Numbers(size.per_client * len(CLIENTS), size.users, size.per_client * len(CLIENTS))
        result.add(
            "our CPU per collection",
            median([c for _, c, _ in ours]) * 1e3,
            "ms",
            note=f"{truth.user_sessions:,} sessions, {truth.connected_users:,} users; "
            f"{ours[-1][2]} requests (plain {theirs[-1][1]})",
        )
        result.add("our error vs the truth (connected users)", abs(truth.connected_users - size.users) / size.users, "")
        seed_wall = median([w for w, _ in seeds])
        result.add("seed pattern: requests per cycle", seeds[-1][1], "", note=f"ours {ours[-1][2]}")
        result.add("seed pattern: wall time vs ours", seed_wall / ours_wall, "x", note=f"{seed_wall * 1e3:.0f} ms")
        result.add(
            "seed pattern: connected users vs the truth",
            seed.connected_users / expected.connected_users,
            "",
            note=f"{seed.connected_users:,} of {expected.connected_users:,}",
        )
        result.add(
            "seed pattern: sessions listed vs the truth",
            seed.user_sessions / expected.user_sessions,
            "",
            note=f"{seed.user_sessions:,} of {expected.user_sessions:,}; its session counters come from the stats",
        )
        result.details = {
            "size": vars(size),
            "truth": vars(expected),
            "ours": {"numbers": vars(truth), "runs": ours},
            "plain": {"runs": theirs},
            "seed": {"numbers": vars(seed), "runs": seeds},
        }
        if ratio.met is False:
            result.profile = await profile_async(lambda: monitor.collect(credentials))
    await monitor.close()
    return result


def run(smoke: bool = False, admin: Admin | None = None) -> Result:
    size = SMOKE if smoke else FULL
    if admin is not None:
        return asyncio.run(measure(admin, provision(admin, size), size))
    with KeycloakServer(ensure_distribution(), https=False) as keycloak:
        admin = Admin(keycloak.base_url, keycloak.admin_user, keycloak.admin_password)
        return asyncio.run(measure(admin, provision(admin, size), size))


def provision(admin: Admin, size: Size) -> str:
    with KeycloakAdmin(admin.url, admin.username, admin.password) as client:
        return populate(client, size)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.collection_keycloak")
    parser.add_argument("--smoke", action="store_true")
    from bench.report import table

    print(table([run(parser.parse_args().smoke)]))


if __name__ == "__main__":
    main()
