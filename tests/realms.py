"""Realms the tests build on the real Keycloak, through its own Admin API."""

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tests.testbed.keycloak import KeycloakAdmin

PASSWORD = "Correct-Horse-1"
_serial = itertools.count(1)


def unique(prefix: str) -> str:
    """Realm names are unique per test, so tests never see each other's sessions."""
    return f"{prefix}-{next(_serial)}"


@dataclass
class Realm:
    name: str
    users: dict[str, str]  # username -> user id


def make_realm(admin: KeycloakAdmin, prefix: str, users: int = 3, clients: tuple[str, ...] = ("web", "app")) -> Realm:
    name = unique(prefix)
    admin.create_realm(name)
    admin.set_cheap_password_hashing(name)
    admin.enable_events(name)
    for client_id in clients:
        admin.create_client(name, client_id, public=True)
    ids = {
        f"user{i}": admin.create_user(name, f"user{i}", PASSWORD, email=f"user{i}@example.org") for i in range(users)
    }
    return Realm(name, ids)


def failed_logins(
    admin: KeycloakAdmin, realm: str, count: int, client_id: str = "web", concurrency: int = 16, users: int = 3
) -> None:
    """`count` wrong-password grants at once, for user0 to user{users-1} in turn: as many
    LOGIN_ERROR events, many in the same millisecond."""
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: admin.failed_login(realm, client_id, f"user{i % users}"), range(count)))


def stored_events(admin: KeycloakAdmin, realm: str, **filters: str) -> list[dict]:
    """Every user event Keycloak keeps for the realm (newest first), read back page by page."""
    found: list[dict] = []
    while True:
        page = admin.get(f"/{realm}/events", first=len(found), max=1000, **filters)
        found.extend(page)
        if len(page) < 1000:
            return found
