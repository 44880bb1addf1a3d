"""The session listing of a real Keycloak under churn: sessions skipped or read twice by
plain offset pages, and by the anchored pages the monitor reads (anchored_pages.py); and
the memory a listing holds.

    .venv/bin/python -m bench.session_listing [sessions=2000] [listings=10] [page=100] [volatile] [compat]

Four threads log users in, out and refresh tokens while the listings run (tests/session_churn.py).
A listing must hold every session alive from its start to its end, and none that never
lived during it. `volatile` starts Keycloak without persistent sessions
(KC_FEATURES_DISABLED=persistent-user-sessions); `compat` the oldest Keycloak the tests run
(KEYCLOAK_COMPAT_VERSION, 25.0.6: volatile sessions by default).
"""

import asyncio
import os
import sys
import time
import tracemalloc
from typing import Any

from keycloak_monitor.admin_client import AdminClient
from keycloak_monitor.config import Credentials, parse_spec
from keycloak_monitor.sessions import list_online_sessions, parse_session_stats
from tests.realms import PASSWORD, make_realm
from tests.session_churn import SessionTruth, churning, login_all
from tests.testbed.keycloak import KEYCLOAK_COMPAT_VERSION, KeycloakAdmin, KeycloakServer, ensure_distribution


class Reads:
    """Observes the listing's requests; the ids of every page read, to count repeats."""

    def __init__(self, api: AdminClient) -> None:
        self.ids: list[str] = []
        self.pages = 0
        self._get = api.get

        async def get(template: str, params: dict[str, Any] | None = None, **ids: str) -> Any:
            body = await self._get(template, params, **ids)
            if template.endswith("/user-sessions"):
                self.ids.extend(session["id"] for session in body)
                self.pages += 1
            return body

        api.get = get  # type: ignore[method-assign]


async def measure(api: AdminClient, truth: SessionTruth, page: int, overlap: int, listings: int) -> None:
    skipped = phantom = repeats = pages = off = 0
    worst = 0
    for _ in range(listings):
        stats = parse_session_stats(await api.get("/client-session-stats"))
        reads = Reads(api)
        start = time.monotonic()
        online = await list_online_sessions(api, stats, page, overlap)
        end = time.monotonic()
        del api.get  # back to the class's method
        listed = set(online.sessions)
        skipped += len(truth.stable(start, end) - listed)
        phantom += len(listed - truth.possible(start, end))
        repeats += len(reads.ids) - len(set(reads.ids))
        pages += reads.pages
        off += online.discrepancy > 0
        worst = max(worst, online.discrepancy)
    mode = f"overlap {overlap}" if overlap else "plain offsets"
    print(
        f"{mode:>14}: {listings} listings, {skipped} sessions skipped, {phantom} listed but never alive, "
        f"{repeats} ids read twice (counted once), {pages} pages; discrepancy > 0 in {off} (max {worst})",
        flush=True,
    )


async def memory(api: AdminClient) -> None:
    stats = parse_session_stats(await api.get("/client-session-stats"))
    tracemalloc.start()
    online = await list_online_sessions(api, stats)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    count = len(online.sessions)
    print(
        f"memory: {count} sessions, held after the listing {held / 2**20:.2f} MiB ({held / count:.0f} B/session), "
        f"peak {peak / 2**20:.2f} MiB ({peak / count:.0f} B/session)",
        flush=True,
    )


async def run(keycloak: KeycloakServer, admin: KeycloakAdmin, sessions: int, listings: int, page: int) -> None:
    features = {
        f["name"]: f["enabled"]
        for f in admin._http.get("/admin/serverinfo", headers=admin._headers()).json()["features"]
    }
    print(f"Keycloak persistent-user-sessions: {features.get('PERSISTENT_USER_SESSIONS')}", flush=True)
    realm = make_realm(admin, "listing", users=0, clients=("web",))
    users = [f"u{i}" for i in range(max(10, sessions // 4))]
    for batch in range(0, len(users), 200):  # one import of thousands outlasts the client's timeout
        admin.create_users_bulk(realm.name, [(u, PASSWORD) for u in users[batch : batch + 200]])
    truth = SessionTruth()
    login_all(admin, realm.name, [users[i % len(users)] for i in range(sessions)], truth)
    spec = parse_spec({"url": keycloak.base_url, "realm": realm.name, "interval": "120s", "timeout": "100s"})
    api = AdminClient(spec, lambda endpoint, code: None)
    await api.use_credentials(Credentials(username=keycloak.admin_user, password=keycloak.admin_password))
    try:
        await memory(api)
        with churning(admin, realm.name, users, truth):
            await measure(api, truth, page, 0, listings)
            await measure(api, truth, page, max(1, page // 20), listings)
    finally:
        await api.aclose()
    print(f"churn: {len(truth.began) - sessions} logins, {len(truth.ended)} logouts during the listings")


def main() -> None:
    numbers = [int(a) for a in sys.argv[1:] if a.isdigit()]
    sessions, listings, page = (*numbers, *(2000, 10, 100)[len(numbers) :])[:3]
    if "volatile" in sys.argv:
        os.environ["KC_FEATURES_DISABLED"] = "persistent-user-sessions"
    with (
        KeycloakServer(ensure_distribution(*[KEYCLOAK_COMPAT_VERSION] * ("compat" in sys.argv))) as keycloak,
        KeycloakAdmin(keycloak.base_url, keycloak.admin_user, keycloak.admin_password) as admin,
    ):
        asyncio.run(run(keycloak, admin, sessions, listings, page))


if __name__ == "__main__":
    main()
