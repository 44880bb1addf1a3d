"""Session-wide real servers: one Keycloak (and later one control plane) per test run.

Nothing here skips: a server that cannot be downloaded, built or started fails the run
with the command and its error, under CI and on a laptop alike.
"""

from collections.abc import Iterator

import pytest

from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer, ensure_distribution


@pytest.fixture(scope="session")
def keycloak() -> Iterator[KeycloakServer]:
    server = KeycloakServer(ensure_distribution())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kc_admin(keycloak: KeycloakServer) -> KeycloakAdmin:
    return KeycloakAdmin(keycloak.base_url, keycloak.admin_user, keycloak.admin_password)
