"""What the operator costs the apiserver, counted by the apiserver itself (apiserver_request_total
on its /metrics): on a live realm, a cycle reads no Secret and writes no status; the Secrets
come from a watch, yet a rotation applies at the next cycle."""

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.realms import PASSWORD, Realm, make_realm
from tests.test_operator import INTERVAL, Kubectl, admin_secret, kube, operator, run_id, sample, wait_for  # noqa: F401
from tests.testbed.keycloak import KeycloakAdmin

pytestmark = [pytest.mark.kube, pytest.mark.keycloak]

MONITORS = 3
CYCLES = 6  # measured, after every monitor is Ready
EVENT_STORE_EVERY = 30  # seconds: event totals are written at most this often (events.py)


def requests(cluster, resource: str, verb: str, subresource: str = "") -> float:
    """Requests the apiserver served on `resource`, every answer code and client together."""
    total = 0.0
    for line in cluster.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        head, _, value = line.rpartition(" ")
        if head.startswith("apiserver_request_total{") and all(
            f'{k}="{v}"' in head for k, v in {"resource": resource, "subresource": subresource, "verb": verb}.items()
        ):
            total += float(value)
    return total


@dataclass
class Live:
    namespace: str
    names: list[str]
    realm: Realm


@pytest.fixture(scope="module")
def live(kube: Kubectl, operator, keycloak, kc_admin: KeycloakAdmin) -> Iterator[Live]:  # noqa: F811
    """MONITORS monitors, each with its own Secret, on one realm where a user logs in every
    second: sessions and event totals move every cycle."""
    realm = make_realm(kc_admin, "live", users=2)
    ns = kube.namespace("requests")
    names = [f"live-{i}" for i in range(MONITORS)]
    for name in names:
        admin_secret(kube, keycloak, ns, f"kc-{name}")
        kube.apply(kube.monitor_doc(ns, name, keycloak.base_url, realm.name, f"kc-{name}", events={"admin": False}))
    stop = threading.Event()

    def log_in() -> None:
        while not stop.wait(1.0):
            kc_admin.login(realm.name, "web", "user0", PASSWORD)

    churn = threading.Thread(target=log_in, daemon=True)
    churn.start()
    try:
        for name in names:
            wait_for(f"{name} Ready", lambda name=name: kube.ready(ns, name) == ("True", "Collected"), 60)
        yield Live(ns, names, realm)
    finally:
        stop.set()
        churn.join()


def cycles_and_sessions(operator, live: Live) -> list[tuple[float, float]]:  # noqa: F811
    """Per monitor: collections done so far, and the realm's user sessions it last saw."""
    text = operator.metrics()
    found = []
    for name in live.names:
        labels = {"namespace": live.namespace, "monitor": name}
        cycles = sample(text, "keycloak_monitor_collection_duration_seconds_count", **labels)
        sessions = sample(text, "keycloak_user_sessions", **labels)
        found.append((cycles or 0, sessions or 0))
    return found


def grown(start: list[tuple[float, float]], end: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(e[0] - s[0], e[1] - s[1]) for s, e in zip(start, end, strict=True)]


def test_a_live_realm_costs_no_secret_read_and_no_status_write_per_cycle(cluster, operator, live):  # noqa: F811
    gets = requests(cluster, "secrets", "GET")
    follows = requests(cluster, "secrets", "LIST") + requests(cluster, "secrets", "WATCH")
    patches = requests(cluster, "keycloakmonitors", "PATCH", "status")
    start = cycles_and_sessions(operator, live)
    wait_for(
        f"{CYCLES} more cycles of every monitor",
        lambda: min(cycles for cycles, _ in grown(start, cycles_and_sessions(operator, live))) >= CYCLES,
        CYCLES * INTERVAL + 30,
    )
    growth = grown(start, cycles_and_sessions(operator, live))
    secret_gets = requests(cluster, "secrets", "GET") - gets
    status_patches = requests(cluster, "keycloakmonitors", "PATCH", "status") - patches
    cycles = sum(c for c, _ in growth)
    assert all(sessions > 0 for _, sessions in growth), f"the sessions did not move: {growth}"
    assert secret_gets == 0, f"{secret_gets:g} Secret GETs over {cycles:g} cycles"
    # One watch for all monitors, renewed every --watch-timeout (60 s): not one per monitor or cycle.
    follows = requests(cluster, "secrets", "LIST") + requests(cluster, "secrets", "WATCH") - follows
    assert follows <= 2, f"{follows:g} Secret lists and watches over {cycles:g} cycles"
    # Numbers alone are not written; the event totals at most every EVENT_STORE_EVERY seconds.
    seconds = max(c for c, _ in growth) * INTERVAL
    bound = MONITORS * (seconds // EVENT_STORE_EVERY + 1)
    assert status_patches <= bound, f"{status_patches:g} status PATCHes over {cycles:g} cycles (bound {bound:g})"


def test_a_rotated_secret_applies_at_the_next_cycle_without_a_secret_read(cluster, kube, operator, live):  # noqa: F811
    gets = requests(cluster, "secrets", "GET")
    name = live.names[0]
    wrong = base64.b64encode(b"rotated-to-a-wrong-one").decode()
    patch = json.dumps({"data": {"password": wrong}})
    cluster.kubectl("patch", "secret", f"kc-{name}", "-n", live.namespace, "--type=merge", "-p", patch)
    wait_for("AuthFailed", lambda: kube.ready(live.namespace, name) == ("False", "AuthFailed"), 3 * INTERVAL)
    assert all(kube.ready(live.namespace, other) == ("True", "Collected") for other in live.names[1:])
    assert requests(cluster, "secrets", "GET") - gets == 1  # kubectl patch's own read, none by the operator
