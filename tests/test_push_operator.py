# ruff: noqa: F811  (the test functions take the fixtures imported from tests.test_operator)
"""The operator side of pushes and notifications: a monitor with events.source push takes seed 001
events at POST /push/{namespace}/{name} (credentials from its Secret), and notifies chosen events
with the outbox in its status and a NotificationsDelivered condition."""

import base64
import json

import httpx
import pytest

from tests.notify_targets import WebhookReceiver
from tests.seed_emitter import flat_user_event, user_event, wrapped

# The operator test module's fixtures (module-scoped: this module runs its own operator process).
from tests.test_operator import Kubectl, admin_secret, kube, operator, run_id, sample, shop, wait_for  # noqa: F401

pytestmark = [pytest.mark.kube, pytest.mark.keycloak]


def test_pushed_events_reach_the_operator_and_count_once(kube: Kubectl, operator, keycloak, shop) -> None:
    namespace = kube.namespace("push")
    admin_secret(kube, keycloak, namespace)
    kube.secret(namespace, "emitter", username="emitter", password="bridge-Secret-2")
    kube.apply(
        kube.monitor_doc(
            namespace,
            "pushed",
            keycloak.base_url,
            shop.name,
            "kc-admin",
            events={"source": "push", "pushSecret": {"name": "emitter"}},
        )
    )
    wait_for("Ready", lambda: kube.ready(namespace, "pushed") == ("True", "Collected"), 60)

    url = f"{operator.url}/push/{namespace}/pushed"
    good = {"Authorization": "Basic " + base64.b64encode(b"emitter:bridge-Secret-2").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"emitter:nope").decode()}
    event = user_event(shop.name, "REGISTER", client_id="web")
    assert httpx.post(url, content=json.dumps(event).encode(), headers=bad, timeout=10).status_code == 401
    for _ in range(3):
        answer = httpx.post(url, content=wrapped("Event", flat_user_event(event)), headers=good, timeout=10)
        assert answer.status_code == 200, answer.text

    labels = {"namespace": namespace, "monitor": "pushed", "client_id": "web", "event": "REGISTER"}
    assert sample(operator.metrics(), "keycloak_realm_user_events_total", **labels) == 1.0
    requests = {"namespace": namespace, "monitor": "pushed"}
    metrics = operator.metrics()
    assert sample(metrics, "keycloak_monitor_push_requests_total", **requests, result="counted") == 1.0
    assert sample(metrics, "keycloak_monitor_push_requests_total", **requests, result="duplicate") == 2.0
    assert sample(metrics, "keycloak_monitor_push_requests_total", **requests, result="unauthorized") == 1.0


def test_a_pushed_registration_is_notified_once_and_a_failing_target_shows(
    kube: Kubectl, operator, keycloak, shop
) -> None:
    webhook = WebhookReceiver()
    webhook.refusing = True
    try:
        namespace = kube.namespace("notify")
        admin_secret(kube, keycloak, namespace)
        kube.secret(namespace, "emitter", username="emitter", password="bridge-Secret-3")
        kube.secret(namespace, "hook", hmacSecret="hook-Secret-4")
        notifications = {"webhook": {"url": webhook.url, "secret": {"name": "hook"}}}
        kube.apply(
            kube.monitor_doc(
                namespace,
                "notified",
                keycloak.base_url,
                shop.name,
                "kc-admin",
                events={"source": "push", "pushSecret": {"name": "emitter"}},
                notifications=notifications,
            )
        )
        wait_for("Ready", lambda: kube.ready(namespace, "notified") == ("True", "Collected"), 60)
        url = f"{operator.url}/push/{namespace}/notified"
        good = {"Authorization": "Basic " + base64.b64encode(b"emitter:bridge-Secret-3").decode()}
        event = user_event(shop.name, "REGISTER", client_id="web", username="signed-up")
        assert httpx.post(url, content=json.dumps(event).encode(), headers=good, timeout=10).status_code == 200

        def condition() -> tuple[str, str] | None:
            for item in (kube.get(namespace, "notified") or {}).get("status", {}).get("conditions", []):
                if item["type"] == "NotificationsDelivered":
                    return item["status"], item["reason"]
            return None

        wait_for("NotificationsDelivered False", lambda: condition() == ("False", "TargetFailing"), 90)
        pending = kube.get(namespace, "notified")["status"]["notifications"]["pending"]
        assert [entry["key"] for entry in pending] == [str(event["uid"])]

        webhook.refusing = False
        wait_for("the webhook call", lambda: webhook.received, 120)
        wait_for("NotificationsDelivered True", lambda: condition() == ("True", "Delivered"), 60)
        assert len(webhook.received) == 1
        assert json.loads(webhook.received[0].body)["event"]["details"]["username"] == "signed-up"
        labels = {"namespace": namespace, "monitor": "notified", "channel": "webhook"}
        assert sample(operator.metrics(), "keycloak_monitor_notifications_total", **labels, result="sent") == 1.0
        assert sample(operator.metrics(), "keycloak_monitor_notifications_total", **labels, result="failed") >= 3.0
    finally:
        webhook.close()
