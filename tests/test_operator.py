"""The operator on a real kube-apiserver (or the cluster KUBECONFIG names) and a real Keycloak."""

import base64
import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keycloak_monitor.controller.credentials import OPT_IN_LABEL
from tests.operator_process import OperatorProcess
from tests.realms import PASSWORD, Realm, make_realm
from tests.testbed.keycloak import KeycloakAdmin, KeycloakServer

pytestmark = [pytest.mark.kube, pytest.mark.keycloak]

ROOT = Path(__file__).resolve().parent.parent
INTERVAL = 5  # seconds, the CRD's minimum
RUN_LABEL = "monitoring.keycloak-monitor.io/test-run"


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """Poll until `check` returns something truthy; fail with `what` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def sample(metrics: str, name: str, **labels: str) -> float | None:
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, number = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(number)
    return None


@pytest.fixture(scope="module")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def operator(cluster, run_id: str, tmp_path_factory) -> Iterator[OperatorProcess]:
    kubeconfig = cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
    process = OperatorProcess(kubeconfig, f"{RUN_LABEL}={run_id}", tmp_path_factory.mktemp("operator"))
    process.start()
    yield process
    process.stop()


class Kubectl:
    """Test-side helpers, as cluster admin (the operator itself is not)."""

    def __init__(self, cluster, run_id: str) -> None:
        self.cluster, self.run_id = cluster, run_id

    def apply(self, *documents: dict[str, Any], check: bool = True):
        return self.cluster.apply(*documents, check=check)

    def namespace(self, name: str) -> str:
        full = f"{name}-{self.run_id}"
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": full}})
        return full

    def secret(self, namespace: str, name: str, opt_in: bool = True, **data: str) -> None:
        """A Secret; opted in for the operator (its label) unless told otherwise."""
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if opt_in:
            metadata["labels"] = {OPT_IN_LABEL: "true"}
        self.apply({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": encoded})

    def monitor_doc(self, namespace: str, name: str, url: str, realm: str, secret: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "monitoring.keycloak-monitor.io/v1alpha1",
            "kind": "KeycloakMonitor",
            "metadata": {"name": name, "namespace": namespace, "labels": {RUN_LABEL: self.run_id}},
            "spec": {
                "url": url,
                "realm": realm,
                "credentialsSecret": {"name": secret},
                "interval": f"{INTERVAL}s",
                "timeout": "4s",
                **spec,
            },
        }

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        result = self.cluster.kubectl("get", "kcm", name, "-n", namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def ready(self, namespace: str, name: str) -> tuple[str, str] | None:
        body = self.get(namespace, name) or {}
        for condition in body.get("status", {}).get("conditions", []):
            if condition["type"] == "Ready":
                return condition["status"], condition["reason"]
        return None

    def events(self, namespace: str, name: str) -> list[str]:
        result = self.cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
        )
        return [item.get("reason", "") for item in json.loads(result.stdout)["items"]]


@pytest.fixture(scope="module")
def kube(cluster, run_id: str) -> Kubectl:
    return Kubectl(cluster, run_id)


@pytest.fixture(scope="module")
def shop(kc_admin: KeycloakAdmin) -> Realm:
    """A realm with 3 users and 3 sessions on 2 clients."""
    realm = make_realm(kc_admin, "shop", users=3)
    kc_admin.login(realm.name, "web", "user0", PASSWORD)
    kc_admin.login(realm.name, "web", "user1", PASSWORD)
    kc_admin.login(realm.name, "app", "user2", PASSWORD)
    return realm


def admin_secret(kube: Kubectl, keycloak: KeycloakServer, namespace: str, name: str = "kc-admin") -> None:
    kube.secret(namespace, name, username=keycloak.admin_user, password=keycloak.admin_password)


def test_a_monitor_reports_exact_numbers_and_ready_status(kube, operator, keycloak, shop):
    ns = kube.namespace("ready")
    admin_secret(kube, keycloak, ns)
    kube.apply(kube.monitor_doc(ns, "shop", keycloak.base_url, shop.name, "kc-admin"))

    def numbers() -> tuple[float | None, ...] | None:
        text = operator.metrics()
        found = (
            sample(text, "keycloak_users", namespace=ns, monitor="shop", realm=shop.name),
            sample(text, "keycloak_user_sessions", namespace=ns, monitor="shop"),
            sample(text, "keycloak_active_sessions", namespace=ns, monitor="shop", client_id="web"),
        )
        return found if None not in found else None

    assert wait_for("the monitor's series", numbers, timeout=2 * INTERVAL + 10) == (3, 3, 2)
    assert wait_for("Ready=True", lambda: kube.ready(ns, "shop") == ("True", "Collected"), timeout=15)
    table = kube.cluster.kubectl("get", "kcm", "-n", ns).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "URL", "REALM", "READY", "SESSIONS", "USERS"]
    assert row.split()[:6] == ["shop", keycloak.base_url, shop.name, "True", "3", "3"]
    assert "LAST" in header and len(row.split()) >= 8  # last collection and age are filled


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"realm": None}, "realm"),
        ({"url": "ftp://sso.example.com"}, "url"),
        ({"interval": "0s"}, "interval"),
        ({"perUser": {"enabled": True, "limit": 1_000_000}}, "limit"),
    ],
)
def test_invalid_specs_are_refused_at_apply_time(kube, keycloak, change, field):
    ns = kube.namespace("invalid")
    doc = kube.monitor_doc(ns, "bad", keycloak.base_url, "r", "s")
    for key, value in change.items():
        if value is None:
            doc["spec"].pop(key)
        else:
            doc["spec"][key] = value
    result = kube.apply(doc, check=False)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
    assert kube.get(ns, "bad") is None


def test_broken_monitors_say_why_and_leave_a_healthy_one_alone(kube, operator, keycloak, shop):
    ns = kube.namespace("broken")
    admin_secret(kube, keycloak, ns)
    kube.secret(ns, "no-password", username="admin")
    kube.secret(ns, "wrong-password", username=keycloak.admin_user, password="not-the-password")
    url = keycloak.base_url
    kube.apply(
        kube.monitor_doc(ns, "healthy", url, shop.name, "kc-admin"),
        kube.monitor_doc(ns, "no-secret", url, shop.name, "does-not-exist"),
        kube.monitor_doc(ns, "no-key", url, shop.name, "no-password"),
        kube.monitor_doc(ns, "bad-password", url, shop.name, "wrong-password"),
        kube.monitor_doc(ns, "no-realm", url, "no-such-realm", "kc-admin"),
    )
    expected = {
        "no-secret": "SecretNotFound",
        "no-key": "SecretKeyMissing",
        "bad-password": "AuthFailed",
        "no-realm": "RealmNotFound",
    }
    for name, reason in expected.items():
        assert wait_for(f"{name} Ready=False/{reason}", lambda n=name, r=reason: kube.ready(ns, n) == ("False", r), 30)
        assert wait_for(f"an Event {reason} on {name}", lambda n=name, r=reason: r in kube.events(ns, n), 15)
        assert sample(operator.metrics(), "keycloak_monitor_up", namespace=ns, monitor=name) == 0
        assert sample(operator.metrics(), "keycloak_users", namespace=ns, monitor=name) is None
    assert wait_for("healthy Ready", lambda: kube.ready(ns, "healthy") == ("True", "Collected"), 30)
    assert sample(operator.metrics(), "keycloak_users", namespace=ns, monitor="healthy") == 3

    # Fixing the Secret recovers the monitor, with no restart.
    kube.secret(ns, "wrong-password", username=keycloak.admin_user, password=keycloak.admin_password)
    assert wait_for("recovery", lambda: kube.ready(ns, "bad-password") == ("True", "Collected"), 3 * INTERVAL + 10)
    assert sample(operator.metrics(), "keycloak_users", namespace=ns, monitor="bad-password") == 3
    assert "Collected" in kube.events(ns, "bad-password")


def test_changing_the_realm_replaces_the_series_and_deleting_removes_them(kube, operator, keycloak, shop, kc_admin):
    other = make_realm(kc_admin, "other", users=1)
    ns = kube.namespace("lifecycle")
    admin_secret(kube, keycloak, ns)
    kube.apply(kube.monitor_doc(ns, "moving", keycloak.base_url, shop.name, "kc-admin"))
    wait_for("first realm", lambda: sample(operator.metrics(), "keycloak_users", monitor="moving", realm=shop.name), 30)

    kube.apply(kube.monitor_doc(ns, "moving", keycloak.base_url, other.name, "kc-admin"))
    assert (
        wait_for(
            "second realm",
            lambda: sample(operator.metrics(), "keycloak_users", monitor="moving", realm=other.name),
            2 * INTERVAL + 10,
        )
        == 1
    )
    assert f'realm="{shop.name}"' not in "\n".join(
        line for line in operator.metrics().splitlines() if 'monitor="moving"' in line
    )

    started = time.monotonic()
    kube.cluster.kubectl("delete", "kcm", "moving", "-n", ns, "--wait=true", "--timeout=30s")
    assert time.monotonic() - started < 10
    assert 'monitor="moving"' not in operator.metrics()


def test_same_names_in_two_namespaces_stay_apart(kube, operator, keycloak, shop, kc_admin):
    other = make_realm(kc_admin, "apart", users=2)
    first, second = kube.namespace("team-a"), kube.namespace("team-b")
    for ns, realm in ((first, shop.name), (second, other.name)):
        admin_secret(kube, keycloak, ns)
        kube.apply(kube.monitor_doc(ns, "sso", keycloak.base_url, realm, "kc-admin"))
    assert (
        wait_for("team-a", lambda: sample(operator.metrics(), "keycloak_users", namespace=first, monitor="sso"), 30)
        == 3
    )
    assert (
        wait_for("team-b", lambda: sample(operator.metrics(), "keycloak_users", namespace=second, monitor="sso"), 30)
        == 2
    )
    text = operator.metrics()
    assert sample(text, "keycloak_users", namespace=first, realm=other.name) is None
    assert sample(text, "keycloak_users", namespace=second, realm=shop.name) is None


def test_a_steady_monitor_writes_no_status(kube, operator, keycloak, shop):
    ns = kube.namespace("steady")
    admin_secret(kube, keycloak, ns)
    kube.apply(
        kube.monitor_doc(ns, "steady", keycloak.base_url, shop.name, "kc-admin", events={"user": False, "admin": False})
    )
    wait_for("Ready", lambda: kube.ready(ns, "steady") == ("True", "Collected"), 30)
    time.sleep(INTERVAL)  # let the first writes (finalizer, status) settle
    before = kube.get(ns, "steady")["metadata"]["resourceVersion"]
    time.sleep(5 * INTERVAL)
    after = kube.get(ns, "steady")["metadata"]["resourceVersion"]
    assert before == after
    assert sample(operator.metrics(), "keycloak_monitor_collection_duration_seconds_count", namespace=ns) >= 5


def test_a_restarted_operator_resumes_every_monitor_without_duplicates(kube, operator, keycloak, shop, kc_admin):
    ns = kube.namespace("restart")
    admin_secret(kube, keycloak, ns)
    kube.apply(kube.monitor_doc(ns, "survivor", keycloak.base_url, shop.name, "kc-admin"))
    key = {"namespace": ns, "monitor": "survivor"}
    wait_for("first collection", lambda: sample(operator.metrics(), "keycloak_users", **key), 30)

    def cursor() -> Any:
        events = (kube.get(ns, "survivor") or {}).get("status", {}).get("events") or {}
        return (events.get("user") or {}).get("cursor")

    start = wait_for("the starting cursor in the status", cursor, 15)
    kc_admin.failed_login(shop.name, "web", "user0")
    errors = {"event": "LOGIN_ERROR", "client_id": "web", **key}
    assert (
        wait_for(
            "the LOGIN_ERROR", lambda: sample(operator.metrics(), "keycloak_realm_user_events_total", **errors), 60
        )
        == 1
    )
    wait_for("the cursor to move past it", lambda: cursor() != start, 15)

    operator.stop(signal.SIGKILL)
    kc_admin.failed_login(shop.name, "web", "user1")  # while the operator is down
    operator.start()
    wait_for("resumed", lambda: sample(operator.metrics(), "keycloak_users", **key), 30)
    ups = [
        line
        for line in operator.metrics().splitlines()
        if line.startswith("keycloak_monitor_up{") and f'"{ns}"' in line
    ]
    assert len(ups) == 1
    # The counter continues from the stored total: the event made during the outage is added once.
    assert wait_for(
        "the missed event",
        lambda: (sample(operator.metrics(), "keycloak_realm_user_events_total", **errors) or 0) >= 2,
        60,
    )
    time.sleep(INTERVAL + 1)
    assert sample(operator.metrics(), "keycloak_realm_user_events_total", **errors) == 2


def test_the_operator_is_not_cluster_admin(cluster):
    kubeconfig = cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
    allowed = cluster.kubectl("auth", "can-i", "get", "secrets", "-A", kubeconfig=kubeconfig, check=False)
    denied = cluster.kubectl("auth", "can-i", "create", "deployments", "-A", kubeconfig=kubeconfig, check=False)
    assert allowed.stdout.strip() == "yes"
    assert denied.stdout.strip() == "no"


def test_the_manifests_pass_a_server_side_dry_run(cluster):
    result = cluster.kubectl("apply", "--dry-run=server", "-k", str(ROOT / "manifests"))
    assert "keycloakmonitors.monitoring.keycloak-monitor.io" in result.stdout


def test_sigterm_stops_the_operator_cleanly(cluster, kube, keycloak, shop, tmp_path):
    ns = kube.namespace("sigterm")
    admin_secret(kube, keycloak, ns)
    label = f"{RUN_LABEL}-sigterm"
    doc = kube.monitor_doc(ns, "brief", keycloak.base_url, shop.name, "kc-admin")
    doc["metadata"]["labels"] = {label: "yes"}
    kube.apply(doc)
    process = OperatorProcess(
        cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor"), label, tmp_path
    )
    process.start()
    wait_for("a collection", lambda: sample(process.metrics(), "keycloak_users", namespace=ns), 30)
    started = time.monotonic()
    assert process.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15
    assert "Traceback" not in process.log_path.read_text()


def test_tls_ca_from_a_secret(kube, operator, keycloak, shop):
    ns = kube.namespace("tls")
    admin_secret(kube, keycloak, ns)
    kube.apply(kube.monitor_doc(ns, "strict", keycloak.https_url, shop.name, "kc-admin"))
    assert wait_for("Unreachable", lambda: kube.ready(ns, "strict") == ("False", "Unreachable"), 30)
    assert "TLS verification" in (kube.get(ns, "strict") or {})["status"]["conditions"][0]["message"]

    kube.secret(ns, "sso-ca", **{"ca.crt": keycloak.ca_file.read_text()})
    kube.apply(
        kube.monitor_doc(ns, "strict", keycloak.https_url, shop.name, "kc-admin", tls={"caSecret": {"name": "sso-ca"}})
    )
    assert wait_for("Ready over TLS", lambda: kube.ready(ns, "strict") == ("True", "Collected"), 3 * INTERVAL + 10)
    assert sample(operator.metrics(), "keycloak_users", namespace=ns, monitor="strict") == 3


def test_a_secret_without_the_opt_in_label_is_refused_and_never_sent(kube, operator, keycloak, kc_admin):
    """Whoever may create a monitor cannot send an arbitrary Secret to Keycloak (or elsewhere):
    the unlabelled Secret is refused, and Keycloak sees no login with its values."""
    realm = make_realm(kc_admin, "optin", users=2)
    ns = kube.namespace("optin")
    kube.secret(ns, "app-db", opt_in=False, username="user0", password=PASSWORD)
    kube.secret(ns, "kc-user1", username="user1", password=PASSWORD)
    # A binary keystore beside the password: only the keys used are decoded.
    keystore = base64.b64encode(b"\xfe\xed\xfe\xed\x00\x00\x00\x02\xff").decode()
    kube.cluster.kubectl(
        "patch", "secret", "kc-user1", "-n", ns, "-p", json.dumps({"data": {"keystore.jks": keystore}})
    )
    kube.secret(ns, "plain-ca", opt_in=False, **{"ca.crt": keycloak.ca_file.read_text()})
    url = keycloak.base_url
    kube.apply(
        kube.monitor_doc(ns, "stolen", url, realm.name, "app-db", authRealm=realm.name),
        kube.monitor_doc(ns, "control", url, realm.name, "kc-user1", authRealm=realm.name),
        kube.monitor_doc(
            ns,
            "ca",
            keycloak.https_url,
            realm.name,
            "kc-user1",
            authRealm=realm.name,
            tls={"caSecret": {"name": "plain-ca"}},
        ),
    )
    for name in ("stolen", "ca"):
        assert wait_for(f"{name} refused", lambda n=name: kube.ready(ns, n) == ("False", "SecretNotOptedIn"), 30)
        assert wait_for(f"an Event on {name}", lambda n=name: "SecretNotOptedIn" in kube.events(ns, n), 15)
    message = (kube.get(ns, "stolen") or {})["status"]["conditions"][0]["message"]
    assert "keycloak-monitor.io/credentials" in message and PASSWORD not in message

    def logins(user: str) -> list[str]:
        events = kc_admin.get(f"/{realm.name}/events", user=realm.users[user])
        return [event["type"] for event in events if event["type"] in ("LOGIN", "LOGIN_ERROR")]

    # The opted-in control proves the operator has run its cycles and Keycloak records its logins.
    assert wait_for("the control monitor's login", lambda: logins("user1"), 3 * INTERVAL + 10)
    assert kube.ready(ns, "stolen") == ("False", "SecretNotOptedIn")
    assert logins("user0") == []
    assert kc_admin.get(f"/{realm.name}/users/{realm.users['user0']}/sessions") == []
