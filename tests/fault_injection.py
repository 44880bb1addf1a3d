"""A scripted Admin API for the failures a real Keycloak cannot be made to produce on demand
(timeouts, 5xx, malformed bodies, dropped connections). Everything else is tested against
the real server."""

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

Fault = Callable[[httpx.Request], httpx.Response | None]


@dataclass
class ScriptedKeycloak:
    """A minimal, healthy realm; `faults` maps a path suffix to a failure to inject."""

    sessions: int = 2
    faults: dict[str, Fault] = field(default_factory=dict)
    tokens_issued: int = 0
    seen: list[str] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen.append(path)
        for suffix, fault in self.faults.items():
            if path.endswith(suffix):
                response = fault(request)
                if response is not None:
                    return response
        if path.endswith("/protocol/openid-connect/token"):
            self.tokens_issued += 1
            return httpx.Response(200, json={"access_token": f"tok{self.tokens_issued}", "expires_in": 60})
        if path.endswith("/client-session-stats"):
            return httpx.Response(
                200, json=[{"id": "c1", "clientId": "web", "active": str(self.sessions), "offline": "0"}]
            )
        if path.endswith("/clients"):
            return httpx.Response(200, json=[{"id": "c1", "clientId": "web"}])
        if path.endswith("/user-sessions"):
            first = int(request.url.params.get("first", 0))
            items = [
                {"id": f"s{i}", "userId": f"u{i}", "username": f"user{i}", "start": 0} for i in range(self.sessions)
            ]
            return httpx.Response(200, json=items[first : first + int(request.url.params.get("max", 100))])
        if path.endswith("/users/count"):
            return httpx.Response(200, json=5)
        if path.endswith("/events") or path.endswith("/admin-events"):
            return httpx.Response(200, json=[])
        if path.endswith("/events/config"):
            return httpx.Response(200, json={"eventsEnabled": True, "adminEventsEnabled": True})
        return httpx.Response(404, json={"error": "not found"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def body(text: str, status: int = 200) -> Fault:
    return lambda _: httpx.Response(status, content=text.encode(), headers={"Content-Type": "application/json"})


def raise_(exc: type[Exception]) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc("injected", request=request)  # type: ignore[call-arg]

    return fault


def once(fault: Fault) -> Fault:
    """Fail the first request only."""
    fired = []

    def wrapper(request: httpx.Request) -> httpx.Response | None:
        if fired:
            return None
        fired.append(True)
        return fault(request)

    return wrapper
