"""Events pushed to the receiver, as seed 001's emitter and Phase Two's keycloak-events send them:
counted exactly once into the same counters as polling, and refused whole when wrong."""

import base64
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.realms import Realm, make_realm
from tests.seed_emitter import admin_event, flat_admin_event, flat_user_event, user_event, wrapped
from tests.standalone_process import StandaloneProcess

pytestmark = pytest.mark.keycloak

EMITTER_USER, EMITTER_PASSWORD = "emitter", "bridge-Secret-1"


def basic(user: str = EMITTER_USER, password: str = EMITTER_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def labels(realm: str, **extra: str) -> str:
    pairs = {"namespace": "standalone", "monitor": "pushed", "realm": realm, **extra}
    return ",".join(f'{k}="{v}"' for k, v in pairs.items())


def user_series(realm: str, event: str, error: str = "", client_id: str = "web") -> str:
    return f"keycloak_realm_user_events_total{{{labels(realm, client_id=client_id, event=event, error=error)}}}"


def admin_series(realm: str, operation: str, resource: str) -> str:
    return f"keycloak_realm_admin_events_total{{{labels(realm, operation=operation, resource_type=resource)}}}"


@pytest.fixture(scope="module")
def realm(kc_admin) -> Realm:
    return make_realm(kc_admin, "push", users=1)


@pytest.fixture(scope="module")
def receiver(keycloak, realm, tmp_path_factory) -> Iterator[StandaloneProcess]:
    monitor: dict[str, Any] = {
        "name": "pushed",
        "url": keycloak.base_url,
        "realm": realm.name,
        "interval": "5s",
        "timeout": "4s",
        "events": {"source": "push"},
        "credentials": {"username": keycloak.admin_user, "passwordEnv": "KC_TEST_PASSWORD"},
        "pushCredentials": {"username": EMITTER_USER, "passwordEnv": "EMITTER_PASSWORD"},
    }
    env = {"KC_TEST_PASSWORD": keycloak.admin_password, "EMITTER_PASSWORD": EMITTER_PASSWORD}
    process = StandaloneProcess(tmp_path_factory.mktemp("push"), [monitor], env)
    process.start(f"keycloak_users{{{labels(realm.name)}}}")
    yield process
    process.stop()


def push(receiver: StandaloneProcess, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **(basic() if headers is None else headers)}
    return httpx.post(f"{receiver.url}/push/standalone/pushed", content=body, headers=headers, timeout=10)


def test_seed_emitter_events_delivered_three_times_are_counted_once(receiver, realm, kc_admin) -> None:
    realm_id = kc_admin.get(f"/{realm.name}")["id"]  # the emitter names the realm by its id
    login = user_event(realm_id, "LOGIN", client_id="web")
    failed = user_event(realm_id, "LOGIN_ERROR", client_id="web", error="invalid_user_credentials")
    created = admin_event(realm_id, "CREATE", "USER")
    updated = admin_event(realm_id, "UPDATE", "CLIENT")
    bodies = [
        json.dumps(login).encode(),
        wrapped("Event", flat_user_event(failed)),
        json.dumps(created).encode(),
        wrapped("AdminEvent", flat_admin_event(updated)),
    ]
    answers = [push(receiver, body).json() for _ in range(3) for body in bodies]
    assert [a["counted"] for a in answers] == [1, 1, 1, 1] + [0] * 8
    assert all(a["duplicates"] == 1 for a in answers[4:])

    assert receiver.value(user_series(realm.name, "LOGIN")) == 1.0
    assert receiver.value(user_series(realm.name, "LOGIN_ERROR", "invalid_user_credentials")) == 1.0
    assert receiver.value(admin_series(realm.name, "CREATE", "USER")) == 1.0
    assert receiver.value(admin_series(realm.name, "UPDATE", "CLIENT")) == 1.0


def test_bad_pushes_are_refused_whole_and_counted_by_reason(receiver, realm) -> None:
    def counted() -> str:
        return "\n".join(
            line for line in receiver.metrics().splitlines() if line.startswith("keycloak_realm_user_events_total")
        )

    before = counted()
    event = user_event(realm.name, "LOGOUT", client_id="web")
    body = json.dumps(event).encode()
    assert push(receiver, body, basic(password="wrong")).status_code == 401
    assert push(receiver, body, {}).status_code == 401
    assert push(receiver, b'{"type": "LOGIN", "time": ', basic()).status_code == 400
    assert push(receiver, b'{"type": "Event", "obj": "bm90IGEgZmxhdGJ1ZmZlcg=="}').status_code == 400
    assert push(receiver, json.dumps({**event, "realmId": "another"}).encode()).status_code == 422
    stale = {**event, "uid": event["uid"] + 1, "time": int(time.time() * 1000) - 2 * 24 * 3600 * 1000}
    assert push(receiver, json.dumps(stale).encode()).status_code == 409
    assert push(receiver, b" " * (512 * 1024)).status_code == 413
    unknown = httpx.post(f"{receiver.url}/push/standalone/nobody", content=body, headers=basic(), timeout=10)
    assert unknown.status_code == 404
    assert counted() == before  # nothing of the refused pushes was counted

    results = {
        result: receiver.value(f"keycloak_monitor_push_requests_total{{{labels(realm.name, result=result)}}}")
        for result in ("unauthorized", "malformed", "unknown_realm", "replay", "too_large")
    }
    assert results == {"unauthorized": 2.0, "malformed": 2.0, "unknown_realm": 1.0, "replay": 1.0, "too_large": 1.0}

    assert push(receiver, body).json()["counted"] == 1  # the same event, sent properly, counts


def test_acknowledged_pushes_survive_a_kill_and_are_not_counted_again(receiver, realm) -> None:
    """A 200 means stored: after SIGKILL and a restart the count is still there, and the
    sender's re-send of the same event (its buffer after a lost answer) is not counted again."""
    event = user_event(realm.name, "UPDATE_PROFILE", client_id="web")
    body = json.dumps(event).encode()
    assert push(receiver, body).json()["counted"] == 1
    series = user_series(realm.name, "UPDATE_PROFILE")
    assert receiver.value(series) == 1.0

    receiver.stop(signal.SIGKILL)
    receiver.start(f"keycloak_users{{{labels(realm.name)}}}")
    assert receiver.value(series) == 1.0
    assert push(receiver, body).json() == {"counted": 0, "duplicates": 1, "ignored": 0}
    assert receiver.value(series) == 1.0
