"""Session-wide real servers: one Keycloak (and later one control plane) per test run.

Nothing here skips: a server that cannot be downloaded, built or started fails the run
with the command and its error, under CI and on a laptop alike.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.keycloak import KEYCLOAK_COMPAT_VERSION, KeycloakAdmin, KeycloakServer, ensure_distribution

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def keycloak() -> Iterator[KeycloakServer]:
    """One real Keycloak per run; a failed download or start errors the tests with the command and log."""
    with KeycloakServer(ensure_distribution()) as server:
        yield server


@pytest.fixture(scope="session")
def kc_admin(keycloak: KeycloakServer) -> Iterator[KeycloakAdmin]:
    with KeycloakAdmin(keycloak.base_url, keycloak.admin_user, keycloak.admin_password) as admin:
        yield admin


@pytest.fixture(scope="session")
def old_keycloak() -> Iterator[KeycloakServer]:
    """The older Keycloak line (KEYCLOAK_COMPAT_VERSION, before 26.2's /events), started once
    for the tests that need it."""
    with KeycloakServer(ensure_distribution(KEYCLOAK_COMPAT_VERSION), https=False) as server:
        yield server


@pytest.fixture(scope="session")
def old_admin(old_keycloak: KeycloakServer) -> Iterator[KeycloakAdmin]:
    with KeycloakAdmin(old_keycloak.base_url, old_keycloak.admin_user, old_keycloak.admin_password) as admin:
        yield admin


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A real apiserver + etcd on loopback with manifests/ installed as users install them
    (CRD, namespace, ServiceAccount, RBAC, Deployment); or the cluster KUBECONFIG names,
    where scripts/kind-e2e.sh installed them already (re-applying would bring back the
    in-cluster operator it scaled down)."""
    from tests.testbed.kube import ControlPlane, start_cluster

    control_plane = start_cluster()
    try:
        if isinstance(control_plane, ControlPlane):
            control_plane.kubectl("apply", "-k", str(ROOT / "manifests"))
        control_plane.kubectl(
            "wait",
            "--for=condition=Established",
            "crd/keycloakmonitors.monitoring.keycloak-monitor.io",
            "--timeout=60s",
        )
        yield control_plane
    finally:
        control_plane.stop()
