"""Security on the real apiserver: the target policy of a running operator and the CRD's
refusals of URL and realm tricks."""

import base64
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from keycloak_monitor.controller.credentials import OPT_IN_LABEL
from keycloak_monitor.metrics_tls import self_signed_pem
from tests.operator_process import OperatorProcess
from tests.realms import make_realm
from tests.test_operator import INTERVAL, RUN_LABEL, Kubectl, wait_for
from tests.testbed.prometheus import Prometheus
from tests.testbed.tools import ensure_helm

pytestmark = [pytest.mark.kube, pytest.mark.keycloak]

VIEW_ROLES = ("view-realm", "view-users", "view-clients", "view-events")
ROOT = Path(__file__).resolve().parent.parent
DENIED = "127.0.0.2"  # a loopback address the operator below is told never to reach


class Listener:
    """A TCP listener that only counts the connections it accepts."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def kube(cluster) -> Kubectl:
    return Kubectl(cluster, "sec")


@pytest.fixture(scope="module")
def operator(cluster, tmp_path_factory) -> Iterator[OperatorProcess]:
    kubeconfig = cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
    process = OperatorProcess(
        kubeconfig, f"{RUN_LABEL}=sec", tmp_path_factory.mktemp("operator"), ("--deny-target", f"{DENIED}/32")
    )
    process.start()
    yield process
    process.stop()


def test_a_denied_or_link_local_target_is_refused_without_a_connection(kube, operator, keycloak):
    denied, control = Listener(DENIED), Listener("127.0.0.1")
    try:
        ns = kube.namespace("targets")
        kube.secret(ns, "kc-admin", username=keycloak.admin_user, password=keycloak.admin_password)
        kube.apply(
            kube.monitor_doc(ns, "denied", f"http://{DENIED}:{denied.port}", "master", "kc-admin"),
            kube.monitor_doc(ns, "metadata", "http://169.254.169.254", "master", "kc-admin"),
            kube.monitor_doc(ns, "control", f"http://127.0.0.1:{control.port}", "master", "kc-admin"),
        )
        for name, host in (("denied", DENIED), ("metadata", "169.254.169.254")):
            assert wait_for(f"{name} refused", lambda n=name: kube.ready(ns, n) == ("False", "TargetRefused"), 30)
            assert wait_for(f"an Event on {name}", lambda n=name: "TargetRefused" in kube.events(ns, n), 15)
            message = (kube.get(ns, name) or {})["status"]["conditions"][0]["message"]
            assert host in message and "target policy" in message
        # The control monitor, allowed, proves the operator has tried its targets by now.
        assert wait_for("a connection to the allowed target", lambda: control.accepted, 2 * INTERVAL + 10)
        assert kube.ready(ns, "denied") == ("False", "TargetRefused")
        assert denied.accepted == 0
    finally:
        denied.close()
        control.close()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"url": "https://admin:hunter2@sso.example.com"}, "spec.url"),
        ({"realm": "../master"}, "spec.realm"),
        ({"realm": ".."}, "spec.realm"),
        ({"authRealm": "master?x=1"}, "spec.authRealm"),
    ],
)
def test_the_crd_refuses_userinfo_and_realm_paths(kube, spec, field):
    ns = kube.namespace("crd-refusals")
    doc = kube.monitor_doc(ns, "tricky", "https://sso.example.com", "shop", "kc-admin")
    doc["spec"].update(spec)
    result = kube.apply(doc, check=False)
    assert result.returncode != 0 and field in result.stderr, result.stderr
    assert kube.get(ns, "tricky") is None


def test_no_credential_or_token_reaches_a_log_status_event_or_metric_at_debug(
    kube, operator, keycloak, kc_admin, cluster
):
    """The operator runs at --log-level DEBUG; right and wrong user passwords and client
    secrets, applied with kubectl (whose last-applied annotation holds them in clear)."""
    realm = make_realm(kc_admin, "leak", users=1)
    password, wrong_password = f"Pw-{uuid.uuid4().hex}", f"Wrong-{uuid.uuid4().hex}"
    kc_admin.create_user(realm.name, "watcher", password)
    watcher = kc_admin.user_id(realm.name, "watcher")
    kc_admin.grant_user_realm_management_roles(realm.name, watcher, VIEW_ROLES)
    client = kc_admin.create_client(realm.name, "kcm", public=False, service_account=True)
    kc_admin.grant_realm_management_roles(realm.name, client.uuid, VIEW_ROLES)
    assert client.secret
    wrong_secret = f"Wrong-{uuid.uuid4().hex}"
    ns = kube.namespace("leak")
    logins = {
        "user-right": {"username": "watcher", "password": password},
        "user-wrong": {"username": "watcher", "password": wrong_password},
        "client-right": {"clientId": "kcm", "clientSecret": client.secret},
        "client-wrong": {"clientId": "kcm", "clientSecret": wrong_secret},
    }
    for name, data in logins.items():
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": ns, "labels": {OPT_IN_LABEL: "true"}},
                "stringData": data,
            },
            kube.monitor_doc(ns, name, keycloak.base_url, realm.name, name, authRealm=realm.name),
        )
    for name in logins:
        want = ("True", "Collected") if name.endswith("right") else ("False", "AuthFailed")
        assert wait_for(f"{name} {want}", lambda n=name, w=want: kube.ready(ns, n) == w, 30)
    # Tokens the operator held: a token of ours proves what one looks like (a JWT, "eyJ...").
    token = kc_admin.login(realm.name, "admin-cli", "watcher", password)["access_token"]
    assert token.startswith("eyJ")

    secrets = [password, wrong_password, client.secret, wrong_secret]
    secrets += [base64.b64encode(s.encode()).decode() for s in secrets]
    places = {
        "operator log": operator.log_path.read_text(errors="replace"),
        "statuses": cluster.kubectl("get", "kcm", "-n", ns, "-o", "json").stdout,
        "events": cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout,
        "metrics": operator.metrics(),
    }
    assert "DEBUG" in places["operator log"]
    for place, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a credential in the {place}"
        assert "eyJ" not in text, f"a token in the {place}"


@pytest.fixture(scope="module")
def secure_operator(cluster, tmp_path_factory) -> Iterator[OperatorProcess]:
    """The operator as the chart runs it with metrics.tls.secretName: HTTPS from certificate
    files (a mounted Secret) and /metrics for allowed tokens only."""
    kubeconfig = cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
    folder = tmp_path_factory.mktemp("secure")
    certificate, key = self_signed_pem(["localhost"], ["127.0.0.1"])
    (folder / "tls.crt").write_bytes(certificate)
    (folder / "tls.key").write_bytes(key)
    args = ("--metrics-auth", "kubernetes", "--tls-cert-file", str(folder / "tls.crt"))
    args += ("--tls-key-file", str(folder / "tls.key"))
    process = OperatorProcess(kubeconfig, f"{RUN_LABEL}=none", folder, args, https=True)
    process.start()
    yield process
    process.stop()


def scraper_tokens(kube: Kubectl) -> dict[str, str]:
    """Tokens of two ServiceAccounts: one bound to keycloak-monitor-metrics-reader, one not."""
    ns = kube.namespace("scrapers")
    kube.apply(
        *(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": n, "namespace": ns}}
            for n in ("prom", "other")
        ),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"prom-metrics-{ns}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "keycloak-monitor-metrics-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "prom", "namespace": ns}],
        },
    )
    return {n: kube.cluster.kubectl("create", "token", n, "-n", ns).stdout.strip() for n in ("prom", "other")}


def test_metrics_over_https_answer_only_tokens_rbac_allows(kube, secure_operator, tmp_path):
    tokens = scraper_tokens(kube)
    url = f"{secure_operator.url}/metrics"
    ca = secure_operator.log_path.parent / "tls.crt"
    http = httpx.Client(verify=ssl.create_default_context(cafile=ca))  # the certificate verifies
    assert http.get(url).status_code == 401
    assert http.get(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert http.get(url, headers={"Authorization": f"Bearer {tokens['other']}"}).status_code == 403
    allowed = http.get(url, headers={"Authorization": f"Bearer {tokens['prom']}"})
    assert allowed.status_code == 200 and "keycloak_monitor" in allowed.text
    with pytest.raises(httpx.HTTPError):  # no plain HTTP beside HTTPS
        httpx.get(url.replace("https://", "http://"), timeout=5)

    # A real Prometheus scraping with each token.
    for name, token in tokens.items():
        (tmp_path / f"{name}.token").write_text(token)
    jobs = [
        {
            "job_name": name,
            "scheme": "https",
            "tls_config": {"ca_file": str(ca)},
            **({"authorization": {"credentials_file": str(tmp_path / f"{name}.token")}} if name != "anonymous" else {}),
            "static_configs": [{"targets": [f"127.0.0.1:{secure_operator.port}"]}],
        }
        for name in ("prom", "other", "anonymous")
    ]
    with Prometheus(tmp_path, jobs) as prometheus:
        health = wait_for("three scraped targets", lambda: prometheus.target_health(len(jobs)), 60)
    assert health["prom"] == ("up", "")
    assert health["other"][0] == "down" and "403" in health["other"][1]
    assert health["anonymous"][0] == "down" and "401" in health["anonymous"][1]


def test_the_restricted_policy_refuses_per_user_insecure_tls_and_plain_http(
    kube, cluster, keycloak, kc_admin, tmp_path
):
    kubeconfig = cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor")
    process = OperatorProcess(kubeconfig, f"{RUN_LABEL}=restricted", tmp_path, ("--restricted",))
    process.start()
    try:
        realm = make_realm(kc_admin, "restricted", users=1)
        ns = kube.namespace("restricted")
        kube.secret(ns, "kc-admin", username=keycloak.admin_user, password=keycloak.admin_password)
        kube.secret(ns, "sso-ca", **{"ca.crt": keycloak.ca_file.read_text()})
        https, ca = keycloak.https_url, {"caSecret": {"name": "sso-ca"}}
        docs = {
            "compliant": {"url": https, "tls": ca},
            "per-user": {"url": https, "tls": ca, "perUser": {"enabled": True}},
            "insecure": {"url": https, "tls": {"insecureSkipVerify": True}},
            "plain-http": {"url": keycloak.base_url},
        }
        for name, spec in docs.items():
            doc = kube.monitor_doc(ns, name, spec.pop("url"), realm.name, "kc-admin", **spec)
            doc["metadata"]["labels"] = {RUN_LABEL: "restricted"}
            kube.apply(doc)
        assert wait_for("the compliant monitor", lambda: kube.ready(ns, "compliant") == ("True", "Collected"), 60)
        for name, field in (("per-user", "perUser"), ("insecure", "insecureSkipVerify"), ("plain-http", "http://")):
            assert wait_for(name, lambda n=name: kube.ready(ns, n) == ("False", "ForbiddenByPolicy"), 30)
            assert field in (kube.get(ns, name) or {})["status"]["conditions"][0]["message"]
    finally:
        process.stop()


RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def apply_rbac(cluster, docs: list[dict[str, Any]], prefix: str = "") -> tuple[str, str]:
    """Apply only the RBAC objects of an install (names prefixed, so they stand beside the
    session's own install); returns the operator ServiceAccount's (namespace, name)."""
    docs = [d for d in docs if d and d["kind"] in RBAC_KINDS]
    for doc in docs:
        doc["metadata"]["name"] = prefix + doc["metadata"]["name"]
        if "roleRef" in doc and doc["roleRef"]["kind"] == "ClusterRole":
            doc["roleRef"]["name"] = prefix + doc["roleRef"]["name"]
        for subject in doc.get("subjects", []):
            subject["name"] = prefix + subject["name"]
        if doc["kind"] == "RoleBinding" or doc["kind"] == "ServiceAccount":
            namespace = doc["metadata"]["namespace"]
            namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            cluster.apply(namespace_doc)
    cluster.apply(*docs)
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    return account["metadata"]["namespace"], account["metadata"]["name"]


def can_i(cluster, account: tuple[str, str], verb: str, resource: str, namespace: str) -> bool:
    who = f"system:serviceaccount:{account[0]}:{account[1]}"
    result = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={who}", check=False)
    return result.stdout.strip() == "yes"


def test_namespaced_installs_grant_secrets_in_the_watched_namespaces_only(cluster):
    chart = subprocess.run(
        [
            *(str(ensure_helm()), "template", "kcmns", str(ROOT / "charts" / "keycloak-monitor")),
            *("--namespace", "kcmns-sys", "--set", "watch.namespaces={kcmns-a,kcmns-b}"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kustomized = cluster.kubectl("kustomize", str(ROOT / "manifests-namespaced")).stdout
    installs = {
        "chart": (apply_rbac(cluster, list(yaml.safe_load_all(chart))), ["kcmns-a", "kcmns-b"]),
        "kustomize": (apply_rbac(cluster, list(yaml.safe_load_all(kustomized)), "kz-"), ["identity"]),
    }
    cluster.kubectl("create", "namespace", "kcmns-elsewhere", check=False)
    # Control: the default install (manifests/, cluster-wide) may read Secrets there.
    assert can_i(cluster, ("keycloak-monitor", "keycloak-monitor"), "get", "secrets", "kcmns-elsewhere")
    for install, (account, watched) in installs.items():
        for namespace in watched:
            for verb in ("get", "list", "watch"):  # the opted-in Secrets are watched, not read per cycle
                assert can_i(cluster, account, verb, "secrets", namespace), (install, verb, namespace)
            assert can_i(cluster, account, "patch", "keycloakmonitors.monitoring.keycloak-monitor.io", namespace)
        for namespace in ("kcmns-elsewhere", "kube-system", "default"):
            assert not can_i(cluster, account, "get", "secrets", namespace), (install, namespace)
            for verb in ("list", "watch"):
                assert not can_i(cluster, account, verb, "secrets", namespace), (install, verb, namespace)
        assert can_i(cluster, account, "create", "tokenreviews.authentication.k8s.io", "default"), install
