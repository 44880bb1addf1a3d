"""A SIGKILL as Prometheus sees it, in both modes: the operator (its counts kept in each
monitor's status) and standalone with a state directory (kept in a file). Events are made
while the process is down; after the restart the counters never went down, and what
Prometheus stored across it adds up to the events Keycloak stored."""

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.operator_process import OperatorProcess
from tests.realms import Realm, failed_logins, make_realm, stored_events
from tests.standalone_process import StandaloneProcess
from tests.test_operator import RUN_LABEL, Kubectl, admin_secret, sample, wait_for
from tests.testbed.prometheus import Prometheus, scrape_job

pytestmark = pytest.mark.keycloak

MONITOR = "restart"


@dataclass
class Mode:
    """One way to run keycloak-monitor, as this test starts, kills and restarts it."""

    realm: str
    namespace: str  # the `namespace` label of the monitor's series
    port: int
    start: Callable[[], None]  # returns once the monitor counts (its zero series are served)
    restart: Callable[[], None]
    kill: Callable[[], None]
    stop: Callable[[], int | None]  # SIGTERM; the exit status
    metrics: Callable[[], str]


def operator_mode(cluster: Any, keycloak: Any, realm: Realm, tmp_path: Path) -> Iterator[Mode]:
    kube = Kubectl(cluster, "restart-prom")
    ns = kube.namespace("restart")
    admin_secret(kube, keycloak, ns)
    kube.apply(kube.monitor_doc(ns, MONITOR, keycloak.base_url, realm.name, "kc-admin"))
    kubeconfig = cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
    operator = OperatorProcess(kubeconfig, f"{RUN_LABEL}={kube.run_id}", tmp_path)

    def cursor() -> Any:
        return ((kube.get(ns, MONITOR) or {}).get("status", {}).get("events") or {}).get("user")

    def start() -> None:
        operator.start()
        wait_for("the starting cursor in the status", cursor, 60)

    kill = lambda: operator.stop(signal.SIGKILL)  # noqa: E731
    try:
        yield Mode(realm.name, ns, operator.port, start, operator.start, kill, operator.stop, operator.metrics)
    finally:
        operator.stop()


def standalone_mode(keycloak: Any, realm: Realm, tmp_path: Path) -> Iterator[Mode]:
    monitor = {
        "name": MONITOR,
        "url": keycloak.base_url,
        "realm": realm.name,
        "interval": "5s",
        "timeout": "4s",
        "events": {"admin": False},
        "credentials": {"username": keycloak.admin_user, "passwordEnv": "KC_TEST_PASSWORD"},
    }
    state = tmp_path / "kept"  # named by the variable, then by the option (both over the file's stateDir)
    env = {"KC_TEST_PASSWORD": keycloak.admin_password, "KEYCLOAK_MONITOR_STATE_DIR": str(state)}
    process = StandaloneProcess(tmp_path, [monitor], env)
    counting = 'event="LOGIN_ERROR"'  # the zero series, served once counting started

    def restart() -> None:
        assert list(state.glob("*.events.json"))
        del process.env["KEYCLOAK_MONITOR_STATE_DIR"]
        process.start(counting, args=("--state-dir", str(state)))

    try:
        yield Mode(
            realm.name,
            "standalone",
            process.port,
            lambda: process.start(counting),
            restart,
            lambda: process.stop(signal.SIGKILL),
            process.stop,
            process.metrics,
        )
    finally:
        process.stop()


@pytest.fixture(params=["operator", "standalone"])
def mode(request, keycloak, kc_admin, tmp_path) -> Iterator[Mode]:
    realm = make_realm(kc_admin, "restart", users=3)
    if request.param == "operator":
        yield from operator_mode(request.getfixturevalue("cluster"), keycloak, realm, tmp_path)
    else:
        yield from standalone_mode(keycloak, realm, tmp_path)


def test_a_sigkilled_process_loses_no_event_in_prometheus(mode, kc_admin, tmp_path):
    labels = {"namespace": mode.namespace, "monitor": MONITOR, "event": "LOGIN_ERROR", "client_id": "web"}
    series = "keycloak_realm_user_events_total{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"

    def counted() -> float:
        return sample(mode.metrics(), "keycloak_realm_user_events_total", **labels) or 0

    mode.start()
    with Prometheus(tmp_path, [scrape_job("keycloak-monitor", f"127.0.0.1:{mode.port}")]) as prometheus:
        started = time.time()
        prometheus.wait_for(f"{series} == 0")  # zero-initialised: Prometheus sees the start
        failed_logins(kc_admin, mode.realm, 3)
        wait_for("3 LOGIN_ERROR published", lambda: counted() == 3, 90)
        prometheus.wait_for(f"{series} == 3")

        mode.kill()
        failed_logins(kc_admin, mode.realm, 4)  # while it is down
        mode.restart()
        stored = len(stored_events(kc_admin, mode.realm, type="LOGIN_ERROR"))
        assert stored == 7
        wait_for("caught up", lambda: counted() == stored, 120)
        prometheus.wait_for(f"{series} == {stored}")
        window = f"{int(time.time() - started) + 5}s"
        assert prometheus.query(f"resets({series}[{window}])")[0]["value"][1] == "0"
        grown = prometheus.query(f"max_over_time({series}[{window}]) - min_over_time({series}[{window}])")
        assert float(grown[0]["value"][1]) == stored
    assert mode.stop() == 0  # and a SIGTERM after it ends cleanly
