"""A synthetic Keycloak Admin API on loopback, for sizes the real test bed cannot hold (50k
sessions, hundreds of realms): the endpoints the collector reads, with Keycloak 26's shapes,
paging, ordering and errors (tests/test_synthetic_keycloak.py checks them against the real
server), counting every request it answers.

    python -m bench.synthetic_keycloak --sessions 50000 --clients 20 [--port 0]

prints `listening on http://127.0.0.1:PORT` once it serves. Every realm name is served from
the same generated data, so 500 monitors can watch 500 realms of one server. Sessions,
users and events are made on demand from their index, never held as JSON: a 50k-session
realm costs the server a few MiB. Besides Keycloak's paths it answers GET /_synthetic/requests
(counts by realm and endpoint) and POST /_synthetic/reset (zero them).

Shapes (Keycloak 26.7, see tests/testbed/keycloak.py): session listings ordered by session id,
100 per page by default, max=-1 for all; client-session-stats counts as strings, only clients
with sessions; events newest first (direction=asc reverses), dateFrom/dateTo as epoch ms or
yyyy-MM-dd (inclusive), 100 per page by default; users/count a bare number.
"""

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import secrets
import subprocess
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web

from tests.testbed.keycloak import _die_with_parent

ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-Pa55word"
BUILTIN_CLIENTS = ("account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console")
USER_EVENT_TYPES = ("LOGIN", "CODE_TO_TOKEN", "REFRESH_TOKEN", "LOGOUT", "LOGIN_ERROR")
ADMIN_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "ACTION")
DEFAULT_PAGE = 100
TOKEN_LIFESPAN, REFRESH_LIFESPAN = 60, 1800
JSON_TYPE = "application/json;charset=UTF-8"
DATE_ERROR = "Invalid value for '{}', expected format is yyyy-MM-dd or an Epoch timestamp"


@dataclass(frozen=True)
class RealmShape:
    """What every realm of the server holds."""

    sessions: int = 1000  # online sessions
    clients: int = 20  # clients with sessions, beside Keycloak's 6 built-in ones
    offline: int = 0  # offline sessions
    users: int = 0  # 0: one user per two sessions (at least one)
    shared_every: int = 10  # every n-th session also spans the next client (0: none)
    user_events: int = 0  # stored before the server starts, 50 ms apart
    admin_events: int = 0
    event_rate: float = 0.0  # user and admin events per second from the start on (at most 1000)

    @property
    def user_count(self) -> int:
        return self.users or max(1, self.sessions // 2)


def _client_uuid(n: int) -> str:
    return f"c1e00000-0000-4000-8000-{n:012x}"


def _user_uuid(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-00000000a5e7"


def _event_uuid(kind: int, n: int) -> str:
    return f"{n:08x}-e000-4000-{8000 + kind:04x}-000000000000"


class RealmData:
    """Index arithmetic over one realm's generated content."""

    def __init__(self, shape: RealmShape, started_ms: int) -> None:
        self.shape = shape
        self.started_ms = started_ms - started_ms % 1000  # Keycloak's session times are whole seconds
        names = [f"app-{n:02d}" for n in range(shape.clients)]
        # Built-in clients have no sessions; uuids 0..clients-1 are the session-bearing ones.
        self.client_ids = {_client_uuid(n): name for n, name in enumerate(names)}
        self.client_ids |= {_client_uuid(shape.clients + n): name for n, name in enumerate(BUILTIN_CLIENTS)}
        self.client_index = {uuid: n for n, uuid in enumerate(self.client_ids)}
        self.online = self._listings(shape.sessions)
        self.offline = self._listings(shape.offline)

    def _listings(self, count: int) -> list[array]:
        """Per client, the indices of its sessions in id order (ids grow with the index)."""
        listings = [array("i") for _ in range(max(1, self.shape.clients))]
        for i in range(count if self.shape.clients else 0):
            for client in self.session_clients(i):
                listings[client].append(i)  # in index order, so in id order
        return listings

    def session_clients(self, i: int) -> list[int]:
        """The clients of session i: its own, and for every n-th one a second, spread over the others."""
        clients, every = self.shape.clients, self.shape.shared_every
        if every and clients > 1 and i % every == 0:
            return [i % clients, (i + 1 + (i // every) % (clients - 1)) % clients]
        return [i % clients]

    def session(self, i: int, offline: bool) -> dict[str, Any]:
        user = i % self.shape.user_count
        start = self.started_ms - (i * 37 % 36_000) * 1000
        uuids = list(self.client_ids)
        return {
            "id": f"{'o' if offline else 's'}{i:023x}",
            "username": f"user{user}",
            "userId": _user_uuid(user),
            "ipAddress": "127.0.0.1",
            "start": start,
            "lastAccess": start + (i % 60) * 1000,
            "rememberMe": False,
            "clients": {uuids[c]: self.client_ids[uuids[c]] for c in self.session_clients(i)},
            "transientUser": False,
        }

    def client(self, uuid: str) -> dict[str, Any]:
        return {
            "id": uuid,
            "clientId": self.client_ids[uuid],
            "surrogateAuthRequired": False,
            "enabled": True,
            "alwaysDisplayInConsole": False,
            "clientAuthenticatorType": "client-secret",
            "redirectUris": [],
            "webOrigins": [],
            "notBefore": 0,
            "bearerOnly": False,
            "consentRequired": False,
            "standardFlowEnabled": False,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": True,
            "serviceAccountsEnabled": False,
            "publicClient": True,
            "frontchannelLogout": False,
            "protocol": "openid-connect",
            "attributes": {"realm_client": "false"},
            "authenticationFlowBindingOverrides": {},
            "fullScopeAllowed": True,
            "nodeReRegistrationTimeout": -1,
            "defaultClientScopes": ["web-origins", "acr", "profile", "roles", "basic", "email"],
            "optionalClientScopes": ["address", "phone", "organization", "offline_access", "microprofile-jwt"],
            "access": {"view": True, "configure": True, "manage": True},
        }

    def user(self, n: int) -> dict[str, Any]:
        return {
            "id": _user_uuid(n),
            "username": f"user{n}",
            "firstName": f"User{n}",
            "lastName": "Test",
            "email": f"user{n}@example.org",
            "emailVerified": True,
            "enabled": True,
            "createdTimestamp": self.started_ms - 86_400_000,
            "totp": False,
            "disableableCredentialTypes": [],
            "requiredActions": [],
            "notBefore": 0,
            "access": {
                "manageGroupMembership": True,
                "resetPassword": True,
                "view": True,
                "mapRoles": True,
                "impersonate": True,
                "manage": True,
            },
        }

    # ---- events: event j of a stream is at event_time(j); times strictly grow with j

    def stored_events(self, admin: bool) -> int:
        return self.shape.admin_events if admin else self.shape.user_events

    def event_count(self, admin: bool, now_ms: int) -> int:
        grown = int((now_ms - self.started_ms) * self.shape.event_rate / 1000) if self.shape.event_rate else 0
        return self.stored_events(admin) + max(0, grown)

    def event_time(self, admin: bool, j: int) -> int:
        stored = self.stored_events(admin)
        if j < stored:
            return self.started_ms - (stored - j) * 50
        return self.started_ms + int((j - stored) * 1000 / self.shape.event_rate)

    def user_event(self, realm_id: str, j: int) -> dict[str, Any]:
        kind = USER_EVENT_TYPES[j % len(USER_EVENT_TYPES)]
        user = j % self.shape.user_count
        event: dict[str, Any] = {
            "id": _event_uuid(0, j),
            "time": self.event_time(False, j),
            "type": kind,
            "realmId": realm_id,
            "clientId": f"app-{j % max(1, self.shape.clients):02d}",
            "userId": _user_uuid(user),
        }
        details = {"auth_method": "openid-connect", "grant_type": "password", "client_auth_method": "client-secret"}
        if kind == "LOGIN":
            event["sessionId"] = f"s{j:023x}"
            details |= {
                "token_id": f"onrtro:{_event_uuid(2, j)}",
                "refresh_token_type": "Refresh",
                "scope": "profile email",
                "refresh_token_id": _event_uuid(3, j),
            }
        event["ipAddress"] = "127.0.0.1"
        if kind == "LOGIN_ERROR":
            event["error"] = "invalid_user_credentials"
        event["details"] = {**details, "username": f"user{user}"}
        return event

    def admin_event(self, realm_id: str, j: int) -> dict[str, Any]:
        user = j % self.shape.user_count
        operation = ADMIN_OPERATIONS[j % len(ADMIN_OPERATIONS)]
        event = {
            "id": _event_uuid(1, j),
            "time": self.event_time(True, j),
            "realmId": realm_id,
            "authDetails": {
                "realmId": "master-realm-id",
                "clientId": _client_uuid(self.shape.clients + 2),
                "userId": _user_uuid(0),
                "ipAddress": "127.0.0.1",
            },
            "operationType": operation,
            "resourceType": "USER",
            "resourcePath": f"users/{_user_uuid(user)}",
        }
        if operation in ("CREATE", "UPDATE"):  # with adminEventsDetailsEnabled
            event["representation"] = json.dumps({"username": f"user{user}", "enabled": True}, separators=(",", ":"))
        return event


class BadRequest(Exception):
    pass


def _date(value: str, name: str, end: bool) -> int:
    """Epoch ms, or a yyyy-MM-dd day (UTC here) taken whole: its first or last millisecond."""
    if value.isdigit():
        return int(value)
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(DATE_ERROR.format(name)) from None
    if end:
        day += timedelta(days=1, milliseconds=-1)
    return int(day.timestamp() * 1000)


def _int(query: Any, name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        raise BadRequest(f"Invalid value for '{name}'") from None


@dataclass
class Tokens:
    access: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    refresh: dict[str, float] = field(default_factory=dict)

    def issue(self) -> dict[str, Any]:
        now = time.monotonic()
        for store in (self.access, self.refresh):  # drop expired ones: 500 monitors renew every minute
            for token in [t for t, expiry in store.items() if expiry < now]:
                del store[token]
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access[access], self.refresh[refresh] = now + TOKEN_LIFESPAN, now + REFRESH_LIFESPAN
        return {
            "access_token": access,
            "expires_in": TOKEN_LIFESPAN,
            "refresh_expires_in": REFRESH_LIFESPAN,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": secrets.token_urlsafe(18),
            "scope": "email profile",
        }

    def valid(self, store: dict[str, float], token: str) -> bool:
        return store.get(token, 0.0) > time.monotonic()


def _json(body: Any, status: int = 200, content_type: str = JSON_TYPE) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type=None,
        headers={"Content-Type": content_type},
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status, "application/json")


class SyntheticKeycloak:
    """The aiohttp application and its request counts."""

    def __init__(self, shape: RealmShape, *, latency: float = 0.0) -> None:
        self.shape, self.latency = shape, latency
        self.data = RealmData(shape, int(time.time() * 1000))
        self.tokens = Tokens()
        self.counts: Counter[tuple[str, str]] = Counter()  # (realm, endpoint template) -> requests
        self.app = web.Application(middlewares=[self._count_and_auth])
        admin = "/admin/realms/{realm}"
        self.app.add_routes(
            [
                web.post("/realms/{realm}/protocol/openid-connect/token", self.token),
                web.post("/realms/{realm}/protocol/openid-connect/logout", self.logout),
                web.get(admin + "/client-session-stats", self.session_stats),
                web.get(admin + "/clients", self.clients),
                web.get(admin + "/clients/{id}/user-sessions", self.user_sessions),
                web.get(admin + "/clients/{id}/offline-sessions", self.offline_sessions),
                web.get(admin + "/clients/{id}/session-count", self.session_count),
                web.get(admin + "/clients/{id}/offline-session-count", self.offline_session_count),
                web.get(admin + "/users/count", self.users_count),
                web.get(admin + "/users/{id}", self.user),
                web.get(admin + "/events", self.user_events),
                web.get(admin + "/admin-events", self.admin_events),
                web.get(admin + "/events/config", self.events_config),
                web.get("/_synthetic/requests", self.requests),
                web.post("/_synthetic/reset", self.reset),
            ]
        )

    @web.middleware
    async def _count_and_auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else request.path
        if template.startswith("/_synthetic"):
            return await handler(request)
        realm = request.match_info.get("realm", "")
        self.counts[(realm, template.replace("/admin/realms/{realm}", "").replace("/realms/{realm}", ""))] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if template.startswith("/admin/"):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not self.tokens.valid(self.tokens.access, token):
                return _error(401, "HTTP 401 Unauthorized")
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(400, str(exc))

    # ---- OpenID Connect

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "password" and (form.get("username"), form.get("password")) == (ADMIN_USER, ADMIN_PASSWORD):
            return _json(self.tokens.issue(), content_type="application/json")
        if grant == "refresh_token" and self.tokens.valid(self.tokens.refresh, str(form.get("refresh_token"))):
            return _json(self.tokens.issue(), content_type="application/json")
        if grant == "refresh_token":
            return _json({"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400)
        return _json({"error": "invalid_grant", "error_description": "Invalid user credentials"}, 400)

    async def logout(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.tokens.refresh.pop(str(form.get("refresh_token")), None) is None:
            return _json({"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400)
        return web.Response(status=204)

    # ---- sessions and clients

    async def session_stats(self, request: web.Request) -> web.Response:
        data, body = self.data, []
        for n, uuid in enumerate(itertools.islice(data.client_ids, self.shape.clients)):
            active, offline = len(data.online[n]), len(data.offline[n])
            if active or offline:
                body.append(
                    {"offline": str(offline), "clientId": data.client_ids[uuid], "active": str(active), "id": uuid}
                )
        return _json(body)

    async def clients(self, request: web.Request) -> web.Response:
        ordered = sorted(self.data.client_ids, key=self.data.client_ids.__getitem__)
        first = _int(request.query, "first", 0)
        wanted = _int(request.query, "max", -1)
        page = ordered[first:] if wanted < 0 else ordered[first : first + wanted]
        return _json([self.data.client(uuid) for uuid in page])

    def _listing(self, request: web.Request) -> array | None:
        n = self.data.client_index.get(request.match_info["id"])
        if n is None:
            return None
        offline = request.path.endswith("offline-sessions") or request.path.endswith("offline-session-count")
        listings = self.data.offline if offline else self.data.online
        return listings[n] if n < len(listings) and self.shape.clients else array("i")

    async def _sessions(self, request: web.Request, offline: bool) -> web.Response:
        listing = self._listing(request)
        if listing is None:
            return _error(404, "Could not find client")
        first = max(0, _int(request.query, "first", 0))
        wanted = _int(request.query, "max", DEFAULT_PAGE)
        page = listing[first:] if wanted < 0 else listing[first : first + wanted]
        return _json([self.data.session(i, offline) for i in page])

    async def user_sessions(self, request: web.Request) -> web.Response:
        return await self._sessions(request, offline=False)

    async def offline_sessions(self, request: web.Request) -> web.Response:
        return await self._sessions(request, offline=True)

    async def session_count(self, request: web.Request) -> web.Response:
        listing = self._listing(request)
        return _error(404, "Could not find client") if listing is None else _json({"count": len(listing)})

    offline_session_count = session_count

    # ---- users

    async def users_count(self, request: web.Request) -> web.Response:
        return _json(self.shape.user_count)

    async def user(self, request: web.Request) -> web.Response:
        user_id = request.match_info["id"]
        try:
            n = int(user_id.split("-", 1)[0], 16)
        except ValueError:
            n = -1
        if not 0 <= n < self.shape.user_count or _user_uuid(n) != user_id:
            return _error(404, "User not found")
        return _json(self.data.user(n))

    # ---- events

    def _events(self, request: web.Request, admin: bool) -> list[dict[str, Any]]:
        query, data = request.query, self.data
        now = int(time.time() * 1000)
        count = data.event_count(admin, now)
        since = _date(query["dateFrom"], "dateFrom", end=False) if "dateFrom" in query else None
        until = _date(query["dateTo"], "dateTo", end=True) if "dateTo" in query else None
        first, wanted = max(0, _int(query, "first", 0)), _int(query, "max", DEFAULT_PAGE)
        lo = 0 if since is None else bisect.bisect_left(range(count), since, key=lambda j: data.event_time(admin, j))
        hi = (
            count
            if until is None
            else bisect.bisect_right(range(count), until, key=lambda j: data.event_time(admin, j))
        )
        order: Iterator[int] = iter(range(lo, hi)) if query.get("direction") == "asc" else reversed(range(lo, hi))
        realm_id = f"{request.match_info['realm']}-id"
        make = data.admin_event if admin else data.user_event
        types = set(query.getall("type", []))
        client, user = query.get("client"), query.get("user")

        def wanted_event(event: dict[str, Any]) -> bool:
            return (
                (not types or event.get("type") in types)
                and (client is None or event.get("clientId") == client)
                and (user is None or event.get("userId") == user)
            )

        matching = (e for e in map(lambda j: make(realm_id, j), order) if admin or wanted_event(e))
        if wanted < 0:
            return list(itertools.islice(matching, first, None))
        return list(itertools.islice(matching, first, first + wanted))

    async def user_events(self, request: web.Request) -> web.Response:
        return _json(self._events(request, admin=False))

    async def admin_events(self, request: web.Request) -> web.Response:
        return _json(self._events(request, admin=True))

    async def events_config(self, request: web.Request) -> web.Response:
        return _json(
            {
                "eventsEnabled": True,
                "eventsListeners": ["jboss-logging"],
                "enabledEventTypes": list(USER_EVENT_TYPES),
                "adminEventsEnabled": True,
                "adminEventsDetailsEnabled": True,
            }
        )

    # ---- control

    async def requests(self, request: web.Request) -> web.Response:
        by_endpoint: Counter[str] = Counter()
        by_realm: Counter[str] = Counter()
        for (realm, endpoint), n in self.counts.items():
            by_endpoint[endpoint] += n
            by_realm[realm] += n
        return _json({"total": sum(self.counts.values()), "endpoints": by_endpoint, "realms": by_realm})

    async def reset(self, request: web.Request) -> web.Response:
        self.counts.clear()
        return web.Response(status=204)


@contextlib.asynccontextmanager
async def serve(
    shape: RealmShape, *, port: int = 0, latency: float = 0.0
) -> AsyncIterator[tuple[str, SyntheticKeycloak]]:
    """In this event loop: (base URL, server) while the block runs."""
    server = SyntheticKeycloak(shape, latency=latency)
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{bound}", server
    finally:
        await runner.cleanup()


class SyntheticProcess:
    """The server in a process of its own, so its CPU never counts as the collector's."""

    def __init__(self, shape: RealmShape, *, latency: float = 0.0) -> None:
        args = [f"--{name.replace('_', '-')}={value}" for name, value in vars(shape).items()]
        self.command = [sys.executable, "-m", "bench.synthetic_keycloak", *args, f"--latency={latency}"]
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> "SyntheticProcess":
        # Gone with us, even when we are killed: a server left behind would hold a core. (The
        # kernel ties this to the launching thread, so only the main thread asks for it.)
        main = threading.current_thread() is threading.main_thread()
        self._process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent if main else None
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("listening on "):
            self.__exit__()
            raise RuntimeError(f"`{' '.join(self.command)}` did not start: {line!r}")
        self.url = line.split()[-1]
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def requests(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/_synthetic/requests").json())

    def reset(self) -> None:
        httpx.post(self.url + "/_synthetic/reset").raise_for_status()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic_keycloak", description=__doc__.split("\n\n")[0])
    for name, default in vars(RealmShape()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = vars(parser.parse_args(argv))
    port, latency = args.pop("port"), args.pop("latency")

    async def run() -> None:
        async with serve(RealmShape(**args), port=port, latency=latency) as (url, _):
            print(f"listening on {url}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
