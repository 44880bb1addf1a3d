"""The operator's push endpoint: a monitor with events.source push takes seed 001 events at
POST /push/{namespace}/{name}, authenticated against the Secret it names."""

import base64
import json

import httpx
import pytest

from tests.seed_emitter import flat_user_event, user_event, wrapped

# The operator test module's fixtures (module-scoped: this module runs its own operator process).
from tests.test_operator import Kubectl, admin_secret, kube, operator, run_id, sample, shop, wait_for  # noqa: F401

pytestmark = [pytest.mark.kube, pytest.mark.keycloak]


def test_pushed_events_reach_the_operator_and_count_once(kube: Kubectl, operator, keycloak, shop) -> None:  # noqa: F811
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
    assert sample(operator.metrics(), "keycloak_user_events_total", **labels) == 1.0
    requests = {"namespace": namespace, "monitor": "pushed"}
    metrics = operator.metrics()
    assert sample(metrics, "keycloak_monitor_push_requests_total", **requests, result="counted") == 1.0
    assert sample(metrics, "keycloak_monitor_push_requests_total", **requests, result="duplicate") == 2.0
    assert sample(metrics, "keycloak_monitor_push_requests_total", **requests, result="unauthorized") == 1.0
