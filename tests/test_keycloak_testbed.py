"""The Keycloak test bed against the real server: what it provisions is what Keycloak reports,
and the shapes and roles the collector relies on (the tests.testbed.keycloak docstring) hold.

Uses the session's one server (`keycloak`, `kc_admin` in conftest.py); nothing is skipped.
"""

import itertools
import json
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.testbed.keycloak import (
    KEYCLOAK_VERSION,
    KeycloakAdmin,
    KeycloakServer,
    KeycloakStartError,
    ensure_distribution,
    fetch,
)

pytestmark = pytest.mark.keycloak

PASSWORD = "Testbed-Pa55word"
# The realm-management roles a monitoring service account is given.
MONITOR_ROLES = ("view-realm", "view-users", "view-clients", "view-events")
_serial = itertools.count(1)


def new_realm(
    admin: KeycloakAdmin, prefix: str, users: tuple[str, ...] = (), clients: tuple[str, ...] = ("web",)
) -> str:
    name = f"tb-{prefix}-{next(_serial)}"
    admin.create_realm(name)
    admin.set_cheap_password_hashing(name)
    admin.enable_events(name)
    for client_id in clients:
        admin.create_client(name, client_id)
    for username in users:
        admin.create_user(name, username, PASSWORD)
    return name


def session_stats(admin: KeycloakAdmin, realm: str) -> dict[str, tuple[int, int]]:
    """client-session-stats as {clientId: (active, offline)}; Keycloak sends the counts as strings."""
    return {s["clientId"]: (int(s["active"]), int(s["offline"])) for s in admin.get(f"/{realm}/client-session-stats")}


def test_a_password_grant_is_a_session_in_client_session_stats(kc_admin: KeycloakAdmin):
    realm = new_realm(kc_admin, "online", users=("alice",))
    web = kc_admin.client_uuid(realm, "web")
    assert session_stats(kc_admin, realm) == {}  # only clients with sessions are listed

    tokens = kc_admin.login(realm, "web", "alice", PASSWORD)
    assert session_stats(kc_admin, realm) == {"web": (1, 0)}
    assert kc_admin.get(f"/{realm}/clients/{web}/session-count") == {"count": 1}
    [session] = kc_admin.get(f"/{realm}/clients/{web}/user-sessions")
    assert session["username"] == "alice" and session["userId"] == kc_admin.user_id(realm, "alice")
    assert session["clients"] == {web: "web"} and session["id"] == tokens["session_state"]
    assert session["start"] % 1000 == 0 and session["start"] <= time.time() * 1000  # epoch ms, whole seconds

    kc_admin.logout(realm, "web", tokens["refresh_token"])
    assert session_stats(kc_admin, realm) == {}
    assert kc_admin.get(f"/{realm}/clients/{web}/session-count") == {"count": 0}


def test_an_offline_login_counts_as_offline_only(kc_admin: KeycloakAdmin):
    realm = new_realm(kc_admin, "offline", users=("bob", "carol"), clients=("app",))
    app = kc_admin.client_uuid(realm, "app")
    offline = kc_admin.login(realm, "app", "bob", PASSWORD, offline=True)
    assert "offline_access" in offline["scope"]
    assert session_stats(kc_admin, realm) == {"app": (0, 1)}  # no online session beside it
    assert kc_admin.get(f"/{realm}/clients/{app}/offline-session-count") == {"count": 1}
    assert [s["username"] for s in kc_admin.get(f"/{realm}/clients/{app}/offline-sessions")] == ["bob"]

    # An admin logout ends online sessions only; the offline token's own logout ends the offline one.
    kc_admin.login(realm, "app", "bob", PASSWORD)
    kc_admin.logout_user(realm, kc_admin.user_id(realm, "bob"))
    assert session_stats(kc_admin, realm) == {"app": (0, 1)}
    kc_admin.logout(realm, "app", offline["refresh_token"])
    assert session_stats(kc_admin, realm) == {}


def test_a_wrong_password_is_a_login_error_event(kc_admin: KeycloakAdmin):
    realm = new_realm(kc_admin, "events", users=("dave",))
    kc_admin.failed_login(realm, "web", "dave")
    kc_admin.failed_login(realm, "web", "nobody")
    unknown, wrong = kc_admin.get(f"/{realm}/events")  # newest first
    assert wrong["type"] == "LOGIN_ERROR" and wrong["error"] == "invalid_user_credentials"
    assert wrong["clientId"] == "web" and wrong["userId"] == kc_admin.user_id(realm, "dave")
    assert wrong["details"]["username"] == "dave" and wrong["id"] and wrong["time"] > 0
    assert unknown["error"] == "user_not_found" and "userId" not in unknown

    created = [e for e in kc_admin.get(f"/{realm}/admin-events") if e["resourceType"] == "USER"]
    assert [e["operationType"] for e in created] == ["CREATE"] and created[0]["id"]
    assert json.loads(created[0]["representation"])["username"] == "dave"  # details enabled


def test_events_page_newest_first_and_date_from_takes_milliseconds(kc_admin: KeycloakAdmin):
    realm = new_realm(kc_admin, "paging", users=("erin",))
    for _ in range(5):
        kc_admin.failed_login(realm, "web", "erin")
        time.sleep(0.01)  # distinct milliseconds, so dateFrom can split them
    everything = kc_admin.get(f"/{realm}/events")
    times = [e["time"] for e in everything]
    assert len(times) == 5 and times == sorted(times, reverse=True)
    assert [e["id"] for e in kc_admin.get(f"/{realm}/events", first=1, max=2)] == [e["id"] for e in everything[1:3]]
    assert [e["time"] for e in kc_admin.get(f"/{realm}/events", direction="asc")] == sorted(times)
    since = kc_admin.get(f"/{realm}/events", dateFrom=str(times[2]))  # inclusive
    assert [e["id"] for e in since] == [e["id"] for e in everything[:3]]
    day = time.strftime("%Y-%m-%d", time.localtime(times[-1] / 1000))  # the server's zone is ours
    assert len(kc_admin.get(f"/{realm}/events", dateFrom=day)) == 5  # a day: from its midnight on


def test_each_endpoint_needs_the_role_the_docstring_names(keycloak: KeycloakServer, kc_admin: KeycloakAdmin):
    realm = new_realm(kc_admin, "roles", users=("frank",))
    web, user = kc_admin.client_uuid(realm, "web"), kc_admin.user_id(realm, "frank")
    needs = {
        "/client-session-stats": {"view-realm"},
        f"/clients/{web}/user-sessions": {"view-clients"},
        f"/clients/{web}/offline-sessions": {"view-clients"},
        f"/clients/{web}/session-count": {"view-clients"},
        f"/clients/{web}/offline-session-count": {"view-clients"},
        "/users/count": {"query-users", "view-users"},
        f"/users/{user}": {"view-users"},
        "/events": {"view-events"},
        "/admin-events": {"view-events"},
    }
    roles = ["view-realm", "view-clients", "query-clients", "view-users", "query-users", "view-events"]
    tokens = {role: service_account_token(keycloak, kc_admin, realm, [role]) for role in roles}
    tokens["monitor"] = service_account_token(keycloak, kc_admin, realm, list(MONITOR_ROLES))
    allowed = {
        path: {who for who, token in tokens.items() if admin_status(keycloak, realm, path, token) == 200}
        for path in needs
    }
    assert allowed == {path: {*roles_needed, "monitor"} for path, roles_needed in needs.items()}


def service_account_token(keycloak: KeycloakServer, admin: KeycloakAdmin, realm: str, roles: list[str]) -> str:
    client = admin.create_client(realm, f"sa-{'-'.join(roles)}"[:200], public=False, service_account=True)
    admin.grant_realm_management_roles(realm, client.uuid, roles)
    response = httpx.post(
        f"{keycloak.base_url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.secret},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def admin_status(keycloak: KeycloakServer, realm: str, path: str, token: str) -> int:
    url = f"{keycloak.base_url}/admin/realms/{realm}{path}"
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code


def test_600_users_and_600_sessions_are_provisioned(kc_admin: KeycloakAdmin):
    realm = new_realm(kc_admin, "bulk")
    credentials = [(f"bulk{i:04d}", PASSWORD) for i in range(600)]
    started = time.monotonic()
    ids = kc_admin.create_users_bulk(realm, credentials)
    created = time.monotonic()
    tokens = kc_admin.login_many(realm, "web", credentials)
    offline = kc_admin.login_many(realm, "web", credentials[:20], offline=True)  # default roles included
    logged_in = time.monotonic()
    print(f"\n600 users in {created - started:.1f}s, 620 logins in {logged_in - created:.1f}s")

    assert len(ids) == 600 and kc_admin.get(f"/{realm}/users/count") == 600
    assert len({t["session_state"] for t in tokens}) == 600 and len(offline) == 20
    assert session_stats(kc_admin, realm) == {"web": (600, 20)}
    # The cheap policy applied to the imported passwords: that is what makes the logins fast.
    [password] = kc_admin.get(f"/{realm}/users/{ids['bulk0000']}/credentials")
    hashing = json.loads(password["credentialData"])
    assert (hashing["algorithm"], hashing["hashIterations"]) == ("pbkdf2-sha256", 1)


def test_the_admin_client_renews_its_token_and_recovers_from_a_revoked_one(keycloak: KeycloakServer, kc_admin):
    realm = new_realm(kc_admin, "renew", users=("grace",))
    kc_admin.update_realm(realm, accessTokenLifespan=2)
    grace = kc_admin.user_id(realm, "grace")
    kc_admin.grant_user_realm_management_roles(realm, grace, ["realm-admin"])
    with KeycloakAdmin(keycloak.base_url, "grace", PASSWORD, auth_realm=realm) as admin:
        assert admin.get(f"/{realm}/users/count") == 1
        time.sleep(2.5)  # past the token's lifetime
        assert admin.get(f"/{realm}/users/count") == 1
        revoked = admin._headers()
        kc_admin.logout_user(realm, grace)  # the session behind that token is gone: a 401 ...
        assert admin_status(keycloak, realm, "/users/count", revoked["Authorization"].split()[1]) == 401
        assert admin.get(f"/{realm}/users/count") == 1  # ... which admin gets past with a new token


def test_a_server_that_fails_to_start_says_the_command_and_its_log(tmp_path: Path):
    kc_sh = tmp_path / "bin" / "kc.sh"
    kc_sh.parent.mkdir()
    kc_sh.write_text("#!/bin/sh\necho 'ERROR: simulated failure' >&2\nexit 3\n")
    kc_sh.chmod(kc_sh.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(KeycloakStartError, match=r"(?s)kc\.sh start-dev .*exited with 3.*simulated failure"):
        KeycloakServer(tmp_path, https=False).start(timeout=30)
    with pytest.raises(KeycloakStartError, match=r"kc\.sh does not exist"):
        KeycloakServer(tmp_path / "missing", https=False).start(timeout=30)


def test_the_cached_distribution_is_reused(keycloak: KeycloakServer):
    home = ensure_distribution()
    assert home == keycloak.home and (home / "version.txt").read_text().strip().endswith(KEYCLOAK_VERSION)
    assert "reused cached" in fetch()
