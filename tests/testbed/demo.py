"""`make demo`: the operator against real local components.

Starts Keycloak (sample realm, users, online/offline sessions, a failed login) and a local
kube-apiserver with manifests/ installed, applies a Secret and a KeycloakMonitor, runs the
operator with its own ServiceAccount, then prints `kubectl get kcm` and what /metrics shows.
"""

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.operator_process import OperatorProcess
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer, ensure_distribution
from tests.testbed.kube import start_cluster

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Demo-Password-1"


def sample_realm(admin: KeycloakAdmin) -> None:
    admin.create_realm("demo")
    admin.set_cheap_password_hashing("demo")
    admin.enable_events("demo")
    for client in ("shop", "backoffice"):
        admin.create_client("demo", client)
    users = [f"customer{i}" for i in range(5)]
    for user in users:
        admin.create_user("demo", user, PASSWORD)
    for user in users[:4]:
        admin.login("demo", "shop", user, PASSWORD)
    admin.login("demo", "backoffice", users[0], PASSWORD)
    admin.login("demo", "shop", users[4], PASSWORD, offline=True)
    admin.failed_login("demo", "shop", users[1])


def monitor_manifests(keycloak: KeycloakServer) -> list[dict[str, Any]]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "kc-monitor", "namespace": "demo", "labels": {"keycloak-monitor.io/credentials": "true"}},
        "stringData": {"username": keycloak.admin_user, "password": keycloak.admin_password},
    }
    monitor = {
        "apiVersion": "monitoring.keycloak-monitor.io/v1alpha1",
        "kind": "KeycloakMonitor",
        "metadata": {"name": "demo-realm", "namespace": "demo"},
        "spec": {
            "url": keycloak.base_url,
            "realm": "demo",
            "credentialsSecret": {"name": "kc-monitor"},
            "interval": "5s",
            "timeout": "4s",
        },
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
    return [namespace, secret, monitor]


def main() -> None:
    started = time.monotonic()
    keycloak = KeycloakServer(ensure_distribution())
    print(f"starting Keycloak at {keycloak.base_url} ...", flush=True)
    keycloak.start()
    cluster = None
    operator = None
    try:
        admin = KeycloakAdmin(keycloak.base_url, keycloak.admin_user, keycloak.admin_password)
        sample_realm(admin)
        print("starting etcd + kube-apiserver ...", flush=True)
        cluster = start_cluster()
        cluster.kubectl("apply", "-k", str(ROOT / "manifests"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/keycloakmonitors.monitoring.keycloak-monitor.io")
        cluster.apply(*monitor_manifests(keycloak))
        kubeconfig = cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
        operator = OperatorProcess(kubeconfig, "", Path(tempfile.mkdtemp(prefix="kcm-demo-")))
        operator.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and 'keycloak_users{namespace="demo"' not in operator.metrics():
            time.sleep(1)
        # Events count from the monitor's start: make a few now, for the counters to show.
        admin.failed_login("demo", "shop", "customer2")
        admin.login("demo", "backoffice", "customer3", PASSWORD)
        while time.monotonic() < deadline and "keycloak_realm_user_events_total{" not in operator.metrics():
            time.sleep(1)
        time.sleep(2)  # let the status patch land
        print(f"\nready in {time.monotonic() - started:.0f}s\n\n$ kubectl get kcm -A")
        print(cluster.kubectl("get", "kcm", "-A").stdout)
        print(f"$ curl {operator.url}/metrics | grep ^keycloak_")
        for line in httpx.get(f"{operator.url}/metrics").text.splitlines():
            if line.startswith("keycloak_") and "_bucket" not in line and "collection_errors" not in line:
                print(line)
        if sys.stdin.isatty():
            print(f"\nmetrics: {operator.url}/metrics   kubeconfig: {cluster.kubeconfig}\nCtrl-C to stop.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if operator:
            operator.stop()
        if cluster:
            cluster.stop()
        keycloak.stop()


if __name__ == "__main__":
    main()
