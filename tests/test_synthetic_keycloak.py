"""The benchmarks' synthetic Admin API (bench/synthetic_keycloak.py) answers as the real
Keycloak does: same keys and value types, same paging, ordering and errors. Both are asked
the same questions side by side, so a change in Keycloak's answers fails here before it
makes the 50k-session benchmark measure something Keycloak does not do."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench.synthetic_keycloak import ADMIN_PASSWORD, ADMIN_USER, RealmShape, serve
from tests.realms import PASSWORD, failed_logins, make_realm
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer

pytestmark = pytest.mark.keycloak

BUSY_SESSIONS = 105  # more than the default page of 100


@dataclass
class Side:
    """One server, as the collector sees it: a busy client (over a page of sessions) and a
    client with an offline session."""

    name: str
    http: httpx.AsyncClient
    realm: str
    busy: str  # client uuid
    offline: str
    user_id: str
    admin: tuple[str, str]  # username, password

    async def token(self, username: str, password: str) -> httpx.Response:
        data = {"grant_type": "password", "client_id": "admin-cli", "username": username, "password": password}
        return await self.http.post("/realms/master/protocol/openid-connect/token", data=data)

    async def login(self) -> None:
        response = await self.token(*self.admin)
        self.http.headers["Authorization"] = "Bearer " + response.json()["access_token"]

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(f"/admin/realms/{self.realm}{path}", params=params)

    async def body(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status_code == 200, (self.name, path, response.text)
        return response.json()


@pytest.fixture(scope="module")
async def sides(keycloak: KeycloakServer, kc_admin: KeycloakAdmin) -> AsyncIterator[tuple[Side, Side]]:
    realm = make_realm(kc_admin, "shapes")
    kc_admin.login_many(realm.name, "web", [("user0", PASSWORD), ("user1", PASSWORD)] * (BUSY_SESSIONS // 2 + 1))
    kc_admin.login(realm.name, "app", "user2", PASSWORD, offline=True)
    failed_logins(kc_admin, realm.name, 105)
    real = Side(
        "real",
        httpx.AsyncClient(base_url=keycloak.base_url),
        realm.name,
        kc_admin.client_uuid(realm.name, "web"),
        kc_admin.client_uuid(realm.name, "app"),
        realm.users["user0"],
        (keycloak.admin_user, keycloak.admin_password),
    )
    await real.login()
    shape = RealmShape(sessions=2 * BUSY_SESSIONS, clients=2, offline=2, user_events=300, admin_events=30)
    async with serve(shape) as (url, server):
        busy, offline = list(server.data.client_ids)[:2]
        user = server.data.user(0)["id"]
        synthetic = Side(
            "synthetic", httpx.AsyncClient(base_url=url), "any-realm", busy, offline, user, (ADMIN_USER, ADMIN_PASSWORD)
        )
        await synthetic.login()
        yield real, synthetic
        await synthetic.http.aclose()
    await real.http.aclose()


def shape_of(value: Any) -> Any:
    """Keys and value types, recursively; a list by the shape of its first item, a map keyed
    by ids (a session's clients) by its value types."""
    if isinstance(value, dict):
        return {("<id>" if len(key) == 36 and key.count("-") == 4 else key): shape_of(v) for key, v in value.items()}
    if isinstance(value, list):
        return [shape_of(value[0])] if value else []
    return type(value).__name__


async def same_shape(sides: tuple[Side, Side], path: str, **params: Any) -> tuple[Any, Any]:
    real, synthetic = [await side.body(path, **params) for side in sides]
    assert shape_of(synthetic) == shape_of(real), path
    return real, synthetic


async def test_session_stats_and_counts(sides):
    for side in sides:
        stats = await side.body("/client-session-stats")
        by_id = {entry["id"]: entry for entry in stats}
        assert set(by_id) == {side.busy, side.offline}, side.name  # only clients with sessions
        for uuid, entry in by_id.items():
            assert isinstance(entry["active"], str) and isinstance(entry["offline"], str), side.name
            assert (await side.body(f"/clients/{uuid}/session-count"))["count"] == int(entry["active"])
            assert (await side.body(f"/clients/{uuid}/offline-session-count"))["count"] == int(entry["offline"])
        assert int(by_id[side.busy]["active"]) > BUSY_SESSIONS - 1
    await same_shape(sides, "/client-session-stats")


async def test_session_listings_page_by_id(sides):
    for side in sides:
        path = f"/clients/{side.busy}/user-sessions"
        everything = await side.body(path, max=-1)
        assert len(everything) > 100
        assert len(await side.body(path)) == 100, side.name  # the default page
        pages = [await side.body(path, first=first, max=50) for first in range(0, len(everything) + 50, 50)]
        assert [s["id"] for page in pages for s in page] == [s["id"] for s in everything], side.name
        assert [s["id"] for s in everything] == sorted(s["id"] for s in everything), side.name
        assert await side.body(path, first=len(everything), max=10) == []
    real, synthetic = sides
    assert shape_of(await synthetic.body(f"/clients/{synthetic.busy}/user-sessions", max=1)) == shape_of(
        await real.body(f"/clients/{real.busy}/user-sessions", max=1)
    )
    assert shape_of(await synthetic.body(f"/clients/{synthetic.offline}/offline-sessions")) == shape_of(
        await real.body(f"/clients/{real.offline}/offline-sessions")
    )


async def test_clients_users_and_config(sides):
    for side in sides:
        clients = await side.body("/clients")
        assert {"admin-cli", "realm-management"} <= {c["clientId"] for c in clients}
        assert [c["clientId"] for c in clients] == sorted(c["clientId"] for c in clients), side.name
        assert await side.body("/clients", first=1, max=2) == clients[1:3], side.name
        assert isinstance(await side.body("/users/count"), int)
    real, synthetic = sides
    real_client = next(c for c in await real.body("/clients") if c["id"] == real.busy)
    synthetic_client = next(c for c in await synthetic.body("/clients") if c["id"] == synthetic.busy)
    assert shape_of(synthetic_client) == shape_of(real_client)
    assert shape_of(await synthetic.body(f"/users/{synthetic.user_id}")) == shape_of(
        await real.body(f"/users/{real.user_id}")
    )
    await same_shape(sides, "/events/config")


async def test_events_order_paging_and_dates(sides):
    for side in sides:
        newest_first = await side.body("/events", max=-1)
        times = [e["time"] for e in newest_first]
        assert times == sorted(times, reverse=True) and len(times) > 200, side.name
        assert len(await side.body("/events")) == 100, side.name  # the default page
        ascending = await side.body("/events", direction="asc", first=0, max=10)
        assert [e["time"] for e in ascending] == sorted(times)[:10], side.name
        middle = times[len(times) // 2]
        since = await side.body("/events", dateFrom=middle, direction="asc", max=-1)
        assert [e["time"] for e in since] == sorted(t for t in times if t >= middle), side.name
        until = await side.body("/events", dateFrom=middle, dateTo=middle, max=-1)
        assert {e["time"] for e in until} == {middle}, side.name
        logins = await side.body("/events", type="LOGIN", max=5)
        assert logins and {e["type"] for e in logins} == {"LOGIN"}, side.name
        admin = await side.body("/admin-events", max=-1)
        assert [e["time"] for e in admin] == sorted((e["time"] for e in admin), reverse=True), side.name
    real, synthetic = sides
    for kind in ("LOGIN", "LOGIN_ERROR"):
        assert shape_of(await synthetic.body("/events", type=kind, max=1)) == shape_of(
            await real.body("/events", type=kind, max=1)
        ), kind
    real_create = next(e for e in await real.body("/admin-events", max=-1) if e["operationType"] == "CREATE")
    synthetic_create = next(e for e in await synthetic.body("/admin-events") if e["operationType"] == "CREATE")
    assert shape_of(synthetic_create) == shape_of(real_create)


async def test_errors_and_tokens(sides):
    answers = []
    for side in sides:
        token = await side.token(*side.admin)
        wrong = await side.token("nobody", "wrong")
        unknown_client = await side.get("/clients/no-such-client/user-sessions")
        unknown_user = await side.get("/users/no-such-user")
        bad_date = await side.get("/events", dateFrom="yesterday")
        anonymous = await side.http.get(f"/admin/realms/{side.realm}/users/count", headers={"Authorization": ""})
        answers.append(
            [
                shape_of(token.json()),
                (token.status_code, wrong.status_code, wrong.json()),
                (unknown_client.status_code, unknown_client.json()),
                (unknown_user.status_code, unknown_user.json()),
                (bad_date.status_code, bad_date.json()),
                (anonymous.status_code, anonymous.json()),
            ]
        )
    real, synthetic = answers
    assert synthetic == real
