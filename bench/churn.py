"""50 monitors created, collected and deleted in a loop against the operator, on a real
kube-apiserver and Keycloak: afterwards its memory, asyncio tasks and series must be back
at their baseline (tests/test_resilience.py runs one short round of the same).

    .venv/bin/python -m bench.churn [seconds=300] [monitors=50]

Prints the baseline (after one warm-up round), the footprint after the loop, and rounds.
"""

import sys
import tempfile
from pathlib import Path

from tests.churn import churn, monitor_docs
from tests.operator_process import OperatorProcess
from tests.realms import make_realm
from tests.test_operator import RUN_LABEL, Kubectl
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer, ensure_distribution
from tests.testbed.kube import ControlPlane
from tests.testbed.kube_build import ensure_binaries

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    plane = ControlPlane(ensure_binaries()).start()
    try:
        plane.kubectl("apply", "-k", str(ROOT / "manifests"))
        plane.kubectl("wait", "--for=condition=Established", "crd/keycloakmonitors.monitoring.keycloak-monitor.io")
        with KeycloakServer(ensure_distribution()) as keycloak:
            with KeycloakAdmin(keycloak.base_url, keycloak.admin_user, keycloak.admin_password) as admin:
                realm = make_realm(admin, "churn", users=2)
            kube = Kubectl(plane, "bench")
            ns = kube.namespace("churn")
            kube.secret(ns, "kc-admin", username=keycloak.admin_user, password=keycloak.admin_password)
            kubeconfig = plane.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
            operator = OperatorProcess(kubeconfig, f"{RUN_LABEL}=churn", Path(tempfile.mkdtemp(prefix="kcm-churn-")))
            operator.start()
            try:
                # 50 first collections at once on a shared machine: a generous budget.
                docs = monitor_docs(
                    kube, ns, keycloak.base_url, realm.name, "churn", count, interval="30s", timeout="20s"
                )
                baseline, after, rounds = churn(kube, operator, ns, docs, seconds, collected=True, progress=True)
            finally:
                operator.stop()
    finally:
        plane.stop()
    mib = 2**20
    print(f"{rounds} rounds of {count} monitors in {seconds:g}s (each collected once, then deleted)")
    print(f"baseline: RSS {baseline.rss_bytes / mib:.1f} MiB, {baseline.tasks:g} tasks, {baseline.series} series")
    print(f"after:    RSS {after.rss_bytes / mib:.1f} MiB, {after.tasks:g} tasks, {after.series} series")
    if after.series or after.tasks > baseline.tasks:
        sys.exit("FAILED: series or tasks left behind")


if __name__ == "__main__":
    main()
