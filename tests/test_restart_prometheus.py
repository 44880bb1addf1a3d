"""Operator mode through a SIGKILL, as Prometheus sees it: the counters never go down, and
what Prometheus stored across the restart adds up to the events Keycloak stored."""

import signal
import time
from typing import Any

import pytest

from tests.operator_process import OperatorProcess
from tests.realms import failed_logins, make_realm, stored_events
from tests.test_operator import RUN_LABEL, Kubectl, admin_secret, sample, wait_for
from tests.testbed.prometheus import Prometheus, scrape_job

pytestmark = pytest.mark.keycloak


@pytest.fixture(scope="module")
def kube(cluster) -> Kubectl:
    return Kubectl(cluster, "restart-prom")


def test_a_sigkilled_operator_loses_no_event_in_prometheus(cluster, kube, keycloak, kc_admin, tmp_path):
    realm = make_realm(kc_admin, "restart", users=3)
    ns = kube.namespace("restart")
    admin_secret(kube, keycloak, ns)
    kube.apply(kube.monitor_doc(ns, "restart", keycloak.base_url, realm.name, "kc-admin"))
    kubeconfig = cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
    operator = OperatorProcess(kubeconfig, f"{RUN_LABEL}={kube.run_id}", tmp_path)
    operator.start()
    errors = {"namespace": ns, "event": "LOGIN_ERROR", "client_id": "web", "error": "invalid_user_credentials"}
    series = f'keycloak_realm_user_events_total{{namespace="{ns}",event="LOGIN_ERROR",client_id="web"}}'

    def counted() -> float:
        return sample(operator.metrics(), "keycloak_realm_user_events_total", **errors) or 0

    def cursor() -> Any:
        return ((kube.get(ns, "restart") or {}).get("status", {}).get("events") or {}).get("user")

    try:
        with Prometheus(tmp_path, [scrape_job("operator", f"127.0.0.1:{operator.port}")]) as prometheus:
            started = time.time()
            wait_for("the starting cursor", cursor, 60)
            prometheus.wait_for(f"{series} == 0")  # zero-initialised: Prometheus sees the start
            failed_logins(kc_admin, realm.name, 3)
            wait_for("3 LOGIN_ERROR published", lambda: counted() == 3, 90)
            prometheus.wait_for(f"{series} == 3")

            operator.stop(signal.SIGKILL)
            failed_logins(kc_admin, realm.name, 4)  # while it is down
            operator.start()
            stored = len(stored_events(kc_admin, realm.name, type="LOGIN_ERROR"))
            assert stored == 7
            wait_for("caught up", lambda: counted() == stored, 120)
            prometheus.wait_for(f"{series} == {stored}")
            window = f"{int(time.time() - started) + 5}s"
            assert prometheus.query(f"resets({series}[{window}])")[0]["value"][1] == "0"
            grown = prometheus.query(f"max_over_time({series}[{window}]) - min_over_time({series}[{window}])")
            assert float(grown[0]["value"][1]) == stored
    finally:
        operator.stop()
