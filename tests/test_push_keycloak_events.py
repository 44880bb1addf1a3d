"""Keycloak 26 with Phase Two's keycloak-events plugin, its webhook pointed at the receiver: what
users do in Keycloak arrives pushed, signed, and is counted exactly once, also when the same
events are polled from the Admin API as well (events.source both)."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.realms import PASSWORD, Realm, make_realm
from tests.standalone_process import StandaloneProcess
from tests.testbed.keycloak import KeycloakAdmin
from tests.testbed.keycloak_events import PluginKeycloakServer, add_webhook

pytestmark = pytest.mark.keycloak

HMAC_SECRET = "webhook-Secret-7"


@pytest.fixture(scope="module")
def plugin_keycloak() -> Iterator[PluginKeycloakServer]:
    with PluginKeycloakServer(https=False) as server:
        yield server


@pytest.fixture(scope="module")
def plugin_admin(plugin_keycloak) -> Iterator[KeycloakAdmin]:
    with KeycloakAdmin(plugin_keycloak.base_url, plugin_keycloak.admin_user, plugin_keycloak.admin_password) as admin:
        yield admin


def monitor(name: str, keycloak: PluginKeycloakServer, realm: str, source: str) -> dict[str, Any]:
    return {
        "name": name,
        "url": keycloak.base_url,
        "realm": realm,
        "interval": "5s",
        "timeout": "4s",
        "events": {"source": source},
        "credentials": {"username": keycloak.admin_user, "passwordEnv": "KC_TEST_PASSWORD"},
        "pushCredentials": {"hmacSecretEnv": "WEBHOOK_SECRET"},
    }


@pytest.fixture(scope="module")
def realms(plugin_admin) -> dict[str, Realm]:
    return {source: make_realm(plugin_admin, f"webhook-{source}", users=2) for source in ("push", "both")}


@pytest.fixture(scope="module")
def receiver(plugin_keycloak, plugin_admin, realms, tmp_path_factory) -> Iterator[StandaloneProcess]:
    monitors = [monitor(source, plugin_keycloak, realm.name, source) for source, realm in realms.items()]
    env = {"KC_TEST_PASSWORD": plugin_keycloak.admin_password, "WEBHOOK_SECRET": HMAC_SECRET}
    process = StandaloneProcess(tmp_path_factory.mktemp("webhook"), monitors, env)
    process.start(f'keycloak_users{{namespace="standalone",monitor="both",realm="{realms["both"].name}"}}')
    for source, realm in realms.items():
        add_webhook(plugin_admin, realm.name, f"{process.url}/push/standalone/{source}", HMAC_SECRET)
    yield process
    process.stop()


def series(name: str, source: str, realm: str, **extra: str) -> str:
    labels = {"namespace": "standalone", "monitor": source, "realm": realm, **extra}
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@pytest.mark.parametrize("source", ["push", "both"])
def test_logins_failed_logins_and_admin_changes_arrive_pushed_and_count_once(
    source, receiver, plugin_admin, realms
) -> None:
    realm = realms[source].name
    for user in ("user0", "user1", "user0"):
        plugin_admin.login(realm, "app", user, PASSWORD)
    plugin_admin.failed_login(realm, "app", "user1")
    for group in ("pushed-a", "pushed-b"):
        plugin_admin.request("POST", f"/{realm}/groups", json={"name": group})

    expected = {
        series("keycloak_realm_user_events_total", source, realm, client_id="app", event="LOGIN", error=""): 3.0,
        series(
            "keycloak_realm_user_events_total",
            source,
            realm,
            client_id="app",
            event="LOGIN_ERROR",
            error="invalid_user_credentials",
        ): 1.0,
        series("keycloak_realm_admin_events_total", source, realm, operation="CREATE", resource_type="GROUP"): 2.0,
    }
    receiver.wait_for(lambda _: {s: receiver.value(s) for s in expected} == expected, 60, f"pushed counts {expected}")
    # Let two more collections poll the same events (with source both) before checking again.
    collections = series("keycloak_monitor_collection_duration_seconds_count", source, realm)
    done = receiver.value(collections) or 0.0
    receiver.wait_for(lambda _: (receiver.value(collections) or 0.0) >= done + 2, 30, "two more collections")
    assert {s: receiver.value(s) for s in expected} == expected
    counted = series("keycloak_monitor_push_requests_total", source, realm, result="counted")
    assert (receiver.value(counted) or 0.0) >= 6.0  # every event above came signed through the receiver
