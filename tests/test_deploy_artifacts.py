"""Offline checks of what users deploy: the CRD, manifests/ (kustomize), the Helm chart, the
alert rules (promtool), the Grafana dashboards, the Dockerfile and the kind script.

Real tools only (promtool from Debian, helm built from its Go module, kubectl with kustomize
from PyPI; see tests/testbed/tools.py); a missing tool fails with the command and its error.
The server-side dry run against a real apiserver lives with the operator tests.
"""

import copy
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests.testbed.tools import ensure_helm, ensure_kubectl, ensure_promtool

ROOT = Path(__file__).resolve().parent.parent
CRD_FILE = ROOT / "crds" / "keycloakmonitors.yaml"
CHART = ROOT / "charts" / "keycloak-monitor"
RULES_FILE = CHART / "files" / "alerts" / "keycloak-monitor.rules.yaml"
RULE_TESTS = CHART / "files" / "tests"
DASHBOARDS = CHART / "files" / "dashboards"
MANIFESTS = ROOT / "manifests"

GROUP = "monitoring.keycloak-monitor.io"
CRD_NAME = f"keycloakmonitors.{GROUP}"
RELEASE = NAMESPACE = "keycloak-monitor"
IMAGE = "ghcr.io/keycloak-monitor/keycloak-monitor:0.1.0"

# The metric catalogue of PRODUCT.md, the contract: name -> (type, labels besides the
# namespace/monitor/realm every series carries). Counters are named with their _total suffix.
CATALOGUE: dict[str, tuple[str, frozenset[str]]] = {
    "keycloak_monitor_up": ("gauge", frozenset()),
    "keycloak_monitor_last_success_timestamp_seconds": ("gauge", frozenset()),
    "keycloak_monitor_collection_duration_seconds": ("histogram", frozenset()),
    "keycloak_monitor_collection_errors_total": ("counter", frozenset({"reason"})),
    "keycloak_monitor_api_requests_total": ("counter", frozenset({"endpoint", "code"})),
    "keycloak_monitor_push_requests_total": ("counter", frozenset({"result"})),
    "keycloak_monitor_notifications_total": ("counter", frozenset({"channel", "result"})),
    "keycloak_monitor_part_up": ("gauge", frozenset({"part"})),
    "keycloak_active_sessions": ("gauge", frozenset({"client_id"})),
    "keycloak_offline_sessions": ("gauge", frozenset({"client_id"})),
    "keycloak_user_sessions": ("gauge", frozenset()),
    "keycloak_connected_users": ("gauge", frozenset()),
    "keycloak_monitor_session_listing_discrepancy": ("gauge", frozenset()),
    "keycloak_session_age_seconds": ("gaugehistogram", frozenset()),
    "keycloak_users": ("gauge", frozenset()),
    "keycloak_realm_user_events_total": ("counter", frozenset({"client_id", "event", "error"})),
    "keycloak_realm_admin_events_total": ("counter", frozenset({"operation", "resource_type"})),
    "keycloak_monitor_event_lag_seconds": ("gauge", frozenset({"stream"})),
    "keycloak_monitor_events_folded_total": ("counter", frozenset({"stream"})),
    "keycloak_monitor_event_lag_exceeds_expiration": ("gauge", frozenset({"stream"})),
    "keycloak_session_duration_seconds": ("gauge", frozenset({"user_id", "username"})),
    "keycloak_last_login_timestamp_seconds": ("gauge", frozenset({"user_id", "username", "email"})),
}
PER_USER = {"keycloak_session_duration_seconds", "keycloak_last_login_timestamp_seconds"}
MONITOR_LABELS = frozenset({"namespace", "monitor", "realm"})
TARGET_LABELS = frozenset({"job", "instance"})  # added by Prometheus to every scraped series
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "gaugehistogram": ("_bucket", "_gsum", "_gcount")}


def series_labels() -> dict[str, frozenset[str]]:
    """Every series name a query may use, with the labels it carries."""
    out: dict[str, frozenset[str]] = {}
    for name, (kind, extra) in CATALOGUE.items():
        labels = MONITOR_LABELS | extra | TARGET_LABELS
        if kind in _SUFFIXES:
            for suffix in _SUFFIXES[kind]:
                out[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        else:
            out[name] = labels
    return out


def base_name(series: str) -> str:
    for name, (kind, _) in CATALOGUE.items():
        if series == name or series in (name + s for s in _SUFFIXES.get(kind, ())):
            return name
    raise KeyError(series)


# ---------------------------------------------------------------------------------------------
# helpers


def run(command: list[str | Path], input: str | None = None, cwd: Path = ROOT) -> str:
    """Run a tool; on failure, fail the test with the command, its exit code and its output."""
    args = [str(c) for c in command]
    result = subprocess.run(args, input=input, cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(args)}` failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    return result.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in out, f"duplicate {key}"
        out[key] = doc
    return out


def rbac_triples(docs: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) granted to the operator's ServiceAccount, rule by rule
    (the roles for others, metrics reader and aggregated view/edit, are bound to nobody here)."""
    docs = list(docs)
    bound = {
        doc["roleRef"]["name"]
        for doc in docs
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(s["kind"] == "ServiceAccount" for s in doc.get("subjects", []))
    }
    out = set()
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "Role") or doc["metadata"]["name"] not in bound:
            continue
        for rule in doc.get("rules", []):
            assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        out.add((group, resource, verb))
    return out


def _expand(triples: dict[tuple[str, str], str]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for (g, r), verbs in triples.items() for v in verbs.split()}


# Least privilege, fixed by design: nothing more, nothing less.
EXPECTED_RBAC = _expand(
    {
        (GROUP, "keycloakmonitors"): "get list watch patch",
        (GROUP, "keycloakmonitors/status"): "get patch update",
        ("", "secrets"): "get list watch",  # only the opted-in ones are listed (secret_watch.py)
        ("", "events"): "create patch",
        ("events.k8s.io", "events"): "create patch",
        ("apiextensions.k8s.io", "customresourcedefinitions"): "get list watch",
        ("", "namespaces"): "list watch",
        ("kopf.dev", "clusterkopfpeerings"): "get list watch patch create",
        ("kopf.dev", "kopfpeerings"): "get list watch patch create",
        ("authentication.k8s.io", "tokenreviews"): "create",
        ("authorization.k8s.io", "subjectaccessreviews"): "create",
    }
)


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_FILE.read_text())


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    return only


@pytest.fixture(scope="module")
def spec_schema(version: dict[str, Any]) -> dict[str, Any]:
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return ensure_kubectl()


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm()


@pytest.fixture(scope="module")
def promtool() -> Path:
    return ensure_promtool()


@pytest.fixture(scope="module")
def kustomized(kubectl: Path) -> list[dict[str, Any]]:
    return documents(run([kubectl, "kustomize", MANIFESTS]))


def helm_template(helm: Path, *sets: str) -> list[dict[str, Any]]:
    command: list[str | Path] = [helm, "template", RELEASE, CHART, "--namespace", NAMESPACE, "--include-crds"]
    for value in sets:
        command += ["--set", value]
    return documents(run(command))


@pytest.fixture(scope="module")
def chart_default(helm: Path) -> list[dict[str, Any]]:
    return helm_template(helm)


@pytest.fixture(scope="module")
def chart_full(helm: Path) -> list[dict[str, Any]]:
    return helm_template(
        helm, "serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboards.enabled=true"
    )


# ---------------------------------------------------------------------------------------------
# A small structural-schema evaluator: defaulting and the OpenAPI keywords the CRD uses (the
# CEL rules are checked by the apiserver in the operator tests).

NO_DEFAULT = object()


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """As the apiserver defaults a structural schema: absent properties with a default get it,
    then defaulting recurses into present objects (so `default: {}` fills nested defaults)."""
    if schema.get("type") != "object" or not isinstance(value, dict):
        return value
    out = dict(value)
    for name, prop in schema.get("properties", {}).items():
        if name not in out and "default" in prop:
            out[name] = copy.deepcopy(prop["default"])
        if name in out:
            out[name] = apply_defaults(prop, out[name])
    return out


_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


def validate(schema: dict[str, Any], value: Any, path: str = "spec") -> list[str]:
    errors: list[str] = []
    kind = schema.get("type")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: not an integer"]
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above maximum")
        return errors
    if kind in _TYPES and not isinstance(value, _TYPES[kind]):
        return [f"{path}: not a {kind}"]
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
        if len(value) > schema.get("maxLength", 1 << 30):
            errors.append(f"{path}: too long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{path}: not one of {schema['enum']}")
    if kind == "object":
        props = schema.get("properties", {})
        errors += [f"{path}.{name}: required" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name not in props:
                if not schema.get("x-kubernetes-preserve-unknown-fields"):
                    errors.append(f"{path}.{name}: unknown field (would be pruned)")
                continue
            errors += validate(props[name], item, f"{path}.{name}")
    return errors


# ---------------------------------------------------------------------------------------------
# The CRD


def test_crd_names_scope_and_version(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == CRD_NAME
    spec = crd["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "KeycloakMonitor",
        "listKind": "KeycloakMonitorList",
        "plural": "keycloakmonitors",
        "singular": "keycloakmonitor",
        "shortNames": ["kcm"],
        "categories": ["keycloak"],
    }
    assert version["name"] == "v1alpha1" and version["served"] is True and version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_crd_printer_columns(version: dict[str, Any]) -> None:
    columns = [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("URL", "string", ".spec.url"),
        ("Realm", "string", ".spec.realm"),
        ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
        ("Sessions", "integer", ".status.sessions"),
        ("Users", "integer", ".status.users"),
        ("Last Collection", "date", ".status.lastSuccessfulCollection"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


# Every spec field of PRODUCT.md: dotted path -> (type, default or NO_DEFAULT).
SPEC_FIELDS: dict[str, tuple[str, Any]] = {
    "url": ("string", NO_DEFAULT),
    "realm": ("string", NO_DEFAULT),
    "authRealm": ("string", "master"),
    "credentialsSecret": ("object", NO_DEFAULT),
    "credentialsSecret.name": ("string", NO_DEFAULT),
    "credentialsSecret.usernameKey": ("string", "username"),
    "credentialsSecret.passwordKey": ("string", "password"),
    "credentialsSecret.clientIdKey": ("string", "clientId"),
    "credentialsSecret.clientSecretKey": ("string", "clientSecret"),
    "interval": ("string", "30s"),
    "timeout": ("string", "10s"),
    "tls": ("object", {}),
    "tls.caSecret": ("object", NO_DEFAULT),
    "tls.caSecret.name": ("string", NO_DEFAULT),
    "tls.caSecret.key": ("string", "ca.crt"),
    "tls.insecureSkipVerify": ("boolean", False),
    "sessions": ("object", {}),
    "sessions.offline": ("boolean", True),
    "sessions.details": ("boolean", True),  # issue 9: the session listing is optional
    "events": ("object", {}),
    "events.user": ("boolean", True),
    "events.admin": ("boolean", True),
    "events.source": ("string", "poll"),
    "events.pushSecret": ("object", NO_DEFAULT),
    "events.pushSecret.name": ("string", NO_DEFAULT),
    "events.pushSecret.usernameKey": ("string", "username"),
    "events.pushSecret.passwordKey": ("string", "password"),
    "events.pushSecret.hmacSecretKey": ("string", "hmacSecret"),
    "notifications": ("object", NO_DEFAULT),
    "notifications.userEvents": ("array", ["REGISTER"]),
    "notifications.adminEvents": ("array", []),
    "notifications.webhook": ("object", NO_DEFAULT),
    "notifications.webhook.url": ("string", NO_DEFAULT),
    "notifications.webhook.secret": ("object", NO_DEFAULT),
    "notifications.webhook.secret.name": ("string", NO_DEFAULT),
    "notifications.webhook.secret.key": ("string", "hmacSecret"),
    "notifications.email": ("object", NO_DEFAULT),
    "notifications.email.host": ("string", NO_DEFAULT),
    "notifications.email.port": ("integer", 587),
    "notifications.email.security": ("string", "starttls"),
    "notifications.email.from": ("string", NO_DEFAULT),
    "notifications.email.to": ("array", NO_DEFAULT),
    "notifications.email.credentialsSecret": ("object", NO_DEFAULT),
    "notifications.email.credentialsSecret.name": ("string", NO_DEFAULT),
    "notifications.email.credentialsSecret.usernameKey": ("string", "username"),
    "notifications.email.credentialsSecret.passwordKey": ("string", "password"),
    "notifications.email.consoleUrl": ("string", NO_DEFAULT),
    "perUser": ("object", {}),
    "perUser.enabled": ("boolean", False),
    "perUser.limit": ("integer", 100),
    "perUser.includeEmail": ("boolean", False),
}


def flatten(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out = {}
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        out[path] = prop
        out.update(flatten(prop, path + "."))
    return out


def test_crd_spec_has_every_field_typed_described_defaulted(spec_schema: dict[str, Any]) -> None:
    fields = flatten(spec_schema)
    assert set(fields) == set(SPEC_FIELDS), "spec fields differ from PRODUCT.md"
    for path, (kind, default) in SPEC_FIELDS.items():
        prop = fields[path]
        assert prop.get("type") == kind, path
        assert prop.get("description"), f"{path} has no description"
        assert prop.get("default", NO_DEFAULT) == default, path
        if kind == "string":
            assert prop.get("maxLength"), f"{path} is unbounded"
        if kind == "integer":
            assert "minimum" in prop and "maximum" in prop, f"{path} is unbounded"
    assert spec_schema["required"] == ["url", "realm", "credentialsSecret"]
    assert fields["credentialsSecret"]["required"] == ["name"]
    assert fields["tls.caSecret"]["required"] == ["name"]
    assert fields["realm"]["minLength"] == 1
    assert (fields["perUser.limit"]["minimum"], fields["perUser.limit"]["maximum"]) == (1, 10000)


def test_crd_defaults_fill_a_minimal_monitor(spec_schema: dict[str, Any]) -> None:
    minimal = {"url": "https://sso.example.com", "realm": "customers", "credentialsSecret": {"name": "kc"}}
    assert apply_defaults(spec_schema, minimal) == {
        "url": "https://sso.example.com",
        "realm": "customers",
        "authRealm": "master",
        "credentialsSecret": {
            "name": "kc",
            "usernameKey": "username",
            "passwordKey": "password",
            "clientIdKey": "clientId",
            "clientSecretKey": "clientSecret",
        },
        "interval": "30s",
        "timeout": "10s",
        "tls": {"insecureSkipVerify": False},
        "sessions": {"offline": True, "details": True},
        "events": {"user": True, "admin": True, "source": "poll"},
        "perUser": {"enabled": False, "limit": 100, "includeEmail": False},
    }
    with_ca = apply_defaults(spec_schema, {**minimal, "tls": {"caSecret": {"name": "sso-ca"}}})
    assert with_ca["tls"] == {"caSecret": {"name": "sso-ca", "key": "ca.crt"}, "insecureSkipVerify": False}


def test_crd_accepts_the_example_and_rejects_bad_specs(spec_schema: dict[str, Any]) -> None:
    example = by_kind(documents((MANIFESTS / "examples" / "keycloakmonitor.yaml").read_text()))
    monitor = example[("KeycloakMonitor", "shop-customers")]
    assert monitor["apiVersion"] == f"{GROUP}/v1alpha1"
    assert validate(spec_schema, monitor["spec"]) == []
    good = apply_defaults(spec_schema, monitor["spec"])
    assert validate(spec_schema, good) == []

    def errors(**change: Any) -> list[str]:
        spec = copy.deepcopy(good)
        for dotted, value in change.items():
            *parents, leaf = dotted.split("__")
            target = spec
            for parent in parents:
                target = target[parent]
            if value is None:
                del target[leaf]
            else:
                target[leaf] = value
        return validate(spec_schema, spec)

    assert errors(url=None) == ["spec.url: required"]
    assert errors(realm="")
    assert errors(url="sso.example.com") and errors(url="ftp://sso.example.com") and errors(url="https://")
    assert not errors(url="http://127.0.0.1:8080/auth")
    assert errors(credentialsSecret__name=None) == ["spec.credentialsSecret.name: required"]
    assert errors(perUser__limit=0) and errors(perUser__limit=10001) and not errors(perUser__limit=10000)
    assert errors(sessions__offline="yes")
    assert errors(unknown=1) == ["spec.unknown: unknown field (would be pruned)"]
    for duration in ("30s", "1m", "1m30s", "500ms", "2h", "1.5s"):
        assert not errors(interval=duration), duration
    for duration in ("30", "1d", "-1s", "", "s", "1 m", "10S"):
        assert errors(interval=duration), duration


def test_crd_cel_rules(spec_schema: dict[str, Any]) -> None:
    """The rules OpenAPI cannot express; the apiserver evaluates them in the operator tests."""
    (spec_rule,) = spec_schema["x-kubernetes-validations"]
    assert spec_rule["message"] == "timeout must be shorter than interval"
    rule = " ".join(spec_rule["rule"].split())
    assert "has(self.timeout)" in rule and "has(self.interval)" in rule, "defaults must be guarded with has()"
    assert "duration(self.timeout)" in rule and "<" in rule and "duration(self.interval)" in rule
    props = spec_schema["properties"]
    interval_rules = [r["rule"] for r in props["interval"]["x-kubernetes-validations"]]
    assert "duration(self) >= duration('5s')" in interval_rules
    for name in ("url", "interval", "timeout"):
        for item in props[name].get("x-kubernetes-validations", []):
            assert f"spec.{name}" in item["message"], "a CEL message names its field"


def test_crd_status_schema(version: dict[str, Any]) -> None:
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    props = status["properties"]
    assert {k: v.get("type") for k, v in props.items()} == {
        "observedGeneration": "integer",
        "conditions": "array",
        "lastSuccessfulCollection": "string",
        "sessions": "integer",
        "users": "integer",
        "connectedUsers": "integer",
        "events": "object",
        "eventCursor": "object",
        "notifications": "object",
    }
    assert props["lastSuccessfulCollection"]["format"] == "date-time"
    assert props["notifications"]["x-kubernetes-preserve-unknown-fields"] is True
    assert props["eventCursor"]["x-kubernetes-preserve-unknown-fields"] is True  # only read, to migrate
    for stream in ("user", "admin"):  # bounded: what the operator writes must fit in etcd
        schema = props["events"]["properties"][stream]["properties"]
        assert schema["totals"]["maxItems"] and schema["cursor"]["properties"]["seen"]["maxItems"]
    conditions = props["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert "type" in item["required"]
    assert set(item["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_copies_are_in_sync_with_their_sources() -> None:
    """crds/ -> the chart's crds/, the chart's rules and dashboards -> manifests/monitoring/."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_artifacts.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (CHART / "crds" / CRD_FILE.name).read_text() == CRD_FILE.read_text()


# ---------------------------------------------------------------------------------------------
# manifests/ (kustomize)


def test_kustomize_builds_the_operator_install(kustomized: list[dict[str, Any]]) -> None:
    objects = by_kind(kustomized)
    assert set(objects) == {
        ("Namespace", NAMESPACE),
        ("CustomResourceDefinition", CRD_NAME),
        ("CustomResourceDefinition", "clusterkopfpeerings.kopf.dev"),
        ("CustomResourceDefinition", "kopfpeerings.kopf.dev"),
        ("ServiceAccount", "keycloak-monitor"),
        ("ClusterRole", "keycloak-monitor"),
        ("ClusterRole", "keycloak-monitor-cluster"),
        ("ClusterRole", "keycloak-monitor-metrics-reader"),
        ("ClusterRole", "keycloak-monitor-view"),
        ("ClusterRole", "keycloak-monitor-edit"),
        ("ClusterRoleBinding", "keycloak-monitor"),
        ("ClusterRoleBinding", "keycloak-monitor-cluster"),
        ("Deployment", "keycloak-monitor"),
        ("PodDisruptionBudget", "keycloak-monitor"),
        ("Service", "keycloak-monitor"),
    }, "examples and monitoring extras stay out of the default kustomization"
    for doc in kustomized:
        if doc["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]
    assert objects[("CustomResourceDefinition", CRD_NAME)] == yaml.safe_load(CRD_FILE.read_text())


def test_manifests_rbac_is_least_privilege(kustomized: list[dict[str, Any]]) -> None:
    assert rbac_triples(kustomized) == EXPECTED_RBAC
    objects = by_kind(kustomized)
    roles = {name for kind, name in objects if kind == "ClusterRole"}
    for (kind, _), doc in objects.items():
        if kind == "ClusterRoleBinding":
            assert doc["roleRef"]["name"] in roles
            assert doc["subjects"] == [{"kind": "ServiceAccount", "name": "keycloak-monitor", "namespace": NAMESPACE}]


def operator_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_manifests_deployment_runs_the_operator_hardened(kustomized: list[dict[str, Any]]) -> None:
    objects = by_kind(kustomized)
    deployment = objects[("Deployment", "keycloak-monitor")]
    # Two replicas peer (one collects, one stands by); a rollout starts the standby first.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "keycloak-monitor"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(deployment)
    assert container["image"] == IMAGE
    assert container["command"] + container["args"] == [
        "keycloak-monitor",
        "run",
        "--all-namespaces",
        "--port",
        "9091",
        "--peering",
        "keycloak-monitor",
        # /metrics over HTTPS for tokens allowed `get` on it
        "--metrics-auth",
        "kubernetes",
        "--tls-self-signed",
    ]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9091, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics", "scheme": "HTTPS"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], "a writable /tmp"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]

    service = objects[("Service", "keycloak-monitor")]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9091, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_manifests_examples_and_monitoring_build(kubectl: Path) -> None:
    examples = by_kind(documents(run([kubectl, "kustomize", MANIFESTS / "examples"])))
    assert ("KeycloakMonitor", "shop-customers") in examples and ("Secret", "kc-monitor") in examples
    monitor = examples[("KeycloakMonitor", "shop-customers")]
    assert monitor["spec"]["credentialsSecret"]["name"] == "kc-monitor"
    assert examples[("Secret", "kc-monitor")]["metadata"]["namespace"] == monitor["metadata"]["namespace"]

    monitoring = by_kind(documents(run([kubectl, "kustomize", MANIFESTS / "monitoring"])))
    assert set(monitoring) == {
        ("ServiceMonitor", "keycloak-monitor"),
        ("PrometheusRule", "keycloak-monitor"),
        ("ConfigMap", "keycloak-monitor-dashboards"),
    }
    rule = monitoring[("PrometheusRule", "keycloak-monitor")]
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text()), "manifests/monitoring diverged from the chart"
    dashboards = monitoring[("ConfigMap", "keycloak-monitor-dashboards")]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards["data"] == {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    endpoint = monitoring[("ServiceMonitor", "keycloak-monitor")]["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True


# ---------------------------------------------------------------------------------------------
# The Helm chart


def test_helm_lint(helm: Path) -> None:
    run([helm, "lint", "--strict", CHART])
    run(
        [
            helm,
            "lint",
            "--strict",
            CHART,
            "--set",
            "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboards.enabled=true",
            "--set",
            "watch.namespaces={identity,shop},watch.selector=shard=a,logFormat=json",
        ]
    )


def test_helm_installs_what_manifests_install(
    chart_default: list[dict[str, Any]], kustomized: list[dict[str, Any]]
) -> None:
    chart, plain = by_kind(chart_default), by_kind(kustomized)
    assert set(chart) == set(plain) - {("Namespace", NAMESPACE)}, "helm install --create-namespace makes it"
    assert chart[("CustomResourceDefinition", CRD_NAME)] == yaml.safe_load(CRD_FILE.read_text())
    assert rbac_triples(chart_default) == rbac_triples(kustomized) == EXPECTED_RBAC
    for key in [k for k in plain if k[0] in ("ClusterRole", "ClusterRoleBinding")]:
        for field in ("rules", "roleRef", "subjects"):
            assert chart[key].get(field) == plain[key].get(field), (key, field)
    deployment = ("Deployment", "keycloak-monitor")
    for field in ("replicas", "strategy", "selector", "template"):
        ours, theirs = chart[deployment]["spec"][field], plain[deployment]["spec"][field]
        if field == "template":
            ours, theirs = ours["spec"], theirs["spec"]
        assert ours == theirs, field
    service = ("Service", "keycloak-monitor")
    assert chart[service]["spec"] == plain[service]["spec"]
    for doc in chart_default:
        if doc["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]


def test_helm_optional_monitoring(chart_full: list[dict[str, Any]]) -> None:
    objects = by_kind(chart_full)
    rule = objects[("PrometheusRule", "keycloak-monitor")]
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    dashboards = objects[("ConfigMap", "keycloak-monitor-dashboards")]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards["data"] == {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    monitor = objects[("ServiceMonitor", "keycloak-monitor")]["spec"]
    assert monitor["endpoints"][0]["port"] == "metrics" and monitor["endpoints"][0]["honorLabels"] is True
    service_labels = objects[("Service", "keycloak-monitor")]["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= service_labels.items()


def metric_relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str]:
    """Prometheus' `replace` metric relabeling (the only action the ServiceMonitor uses): the
    joined source labels must match the whole regex; an empty result removes the label."""
    out = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace", rule
        joined = rule.get("separator", ";").join(out.get(name, "") for name in rule.get("sourceLabels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), joined)
        if match:
            value = match.expand(re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", rule.get("replacement", "$1")))
            if value:
                out[rule["targetLabel"]] = value
            else:
                out.pop(rule["targetLabel"], None)
    return out


def scraped(rules: list[dict[str, Any]], pod: str, ip: str, series: dict[str, str]) -> dict[str, str]:
    """A series as Prometheus stores it from one operator pod (honorLabels: the series' own win)."""
    target = {"job": "keycloak-monitor", "namespace": "keycloak-monitor", "service": "keycloak-monitor"}
    target |= {"endpoint": "metrics", "container": "operator", "pod": pod, "instance": f"{ip}:8080"}
    return metric_relabel(rules, target | series)


def test_monitor_series_keep_their_identity_across_pod_replacement(
    chart_full: list[dict[str, Any]], kubectl: Path
) -> None:
    """The labels the Prometheus Operator gives each target (pod IP as `instance`, `pod`) change
    when the pod is replaced or the standby takes over; a monitor's counters must stay one series
    so `increase()` spans the change. The operator's own series stay per pod."""
    monitoring = by_kind(documents(run([kubectl, "kustomize", MANIFESTS / "monitoring"])))
    for objects in (by_kind(chart_full), monitoring):
        endpoint = objects[("ServiceMonitor", "keycloak-monitor")]["spec"]["endpoints"][0]
        assert endpoint["honorLabels"] is True
        rules = endpoint["metricRelabelings"]
        series = {"__name__": "keycloak_realm_user_events_total", "namespace": "identity", "monitor": "shop"}
        series |= {"realm": "customers", "client_id": "web", "event": "LOGIN", "error": ""}
        before = scraped(rules, "keycloak-monitor-7d9f-abcde", "10.0.0.7", series)
        after = scraped(rules, "keycloak-monitor-7d9f-fghij", "10.0.3.9", series)
        assert before == after and "pod" not in before and before["namespace"] == "identity"
        own = {"__name__": "process_resident_memory_bytes"}
        assert scraped(rules, "keycloak-monitor-7d9f-abcde", "10.0.0.7", own) != scraped(
            rules, "keycloak-monitor-7d9f-fghij", "10.0.3.9", own
        )


def test_helm_values_shape_the_operator(helm: Path) -> None:
    docs = helm_template(
        helm,
        "watch.namespaces={identity,shop}",
        "watch.selector=shard=a",
        "logFormat=json",
        "image.tag=0.2.0",
        "maxRequestsPerKeycloak=32",
    )
    objects = by_kind([d for d in docs if d["kind"] != "RoleBinding"])
    container = operator_container(objects[("Deployment", "keycloak-monitor")])
    assert container["image"] == "ghcr.io/keycloak-monitor/keycloak-monitor:0.2.0"
    assert container["args"] == [
        "run",
        "--namespace",
        "identity",
        "--namespace",
        "shop",
        "--selector",
        "shard=a",
        "--port",
        "9091",
        "--peering",
        "keycloak-monitor",
        "--max-requests-per-keycloak",
        "32",
        "--log-format",
        "json",
        "--metrics-auth",
        "kubernetes",
        "--tls-self-signed",
    ]
    # Watching listed namespaces: the namespaced permissions are bound there only.
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["identity", "shop"]
    assert all(
        b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RELEASE}
        for b in bindings
    )
    assert ("ClusterRoleBinding", RELEASE) not in objects
    assert ("ClusterRoleBinding", f"{RELEASE}-cluster") in objects
    assert rbac_triples(docs) == EXPECTED_RBAC


def test_helm_security_values(helm: Path) -> None:
    """Metrics TLS from a Secret (cert-manager), the ServiceMonitor's token and CA, target
    rules and the NetworkPolicy; and plain HTTP when metrics.secure is off."""
    objects = by_kind(
        helm_template(
            helm,
            "metrics.tls.secretName=metrics-tls",
            "serviceMonitor.enabled=true",
            "targets.allow={*.example.com,10.0.0.0/8}",
            "targets.deny={10.9.0.0/16}",
            "networkPolicy.enabled=true",
            "networkPolicy.apiServer[0].cidr=10.0.0.1/32",
            "networkPolicy.apiServer[0].ports={443}",
            "networkPolicy.keycloak[0].cidr=10.20.0.0/16",
            "networkPolicy.keycloak[0].ports={8443}",
            "networkPolicy.metricsFromNamespaces[0].name=monitoring",
            "restricted=true",
        )
    )
    deployment = objects[("Deployment", RELEASE)]
    args = operator_container(deployment)["args"]
    assert args[args.index("--metrics-auth") :] == [
        "--metrics-auth",
        "kubernetes",
        "--tls-cert-file",
        "/etc/keycloak-monitor/tls/tls.crt",
        "--tls-key-file",
        "/etc/keycloak-monitor/tls/tls.key",
        "--restricted",
        "--allow-target",
        "*.example.com",
        "--allow-target",
        "10.0.0.0/8",
        "--deny-target",
        "10.9.0.0/16",
    ]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["metrics-tls"]["secret"] == {"secretName": "metrics-tls"}
    endpoint = objects[("ServiceMonitor", RELEASE)]["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert endpoint["tlsConfig"]["ca"] == {"secret": {"name": "metrics-tls", "key": "ca.crt"}}
    policy = objects[("NetworkPolicy", RELEASE)]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert policy["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    blocks = [(rule["to"][0].get("ipBlock", {}).get("cidr"), rule["ports"]) for rule in policy["egress"]]
    assert blocks[1:] == [
        ("10.0.0.1/32", [{"port": 443, "protocol": "TCP"}]),
        ("10.20.0.0/16", [{"port": 8443, "protocol": "TCP"}]),
    ]
    assert {p["port"] for p in blocks[0][1]} == {53}
    roles = {name for kind, name in objects if kind == "ClusterRole"}
    assert {f"{RELEASE}-metrics-reader", f"{RELEASE}-view", f"{RELEASE}-edit"} <= roles

    plain = operator_container(by_kind(helm_template(helm, "metrics.secure=false"))[("Deployment", RELEASE)])
    assert "--metrics-auth" not in plain["args"] and "scheme" not in plain["livenessProbe"]["httpGet"]


def test_helm_replicas_peer_and_keep_one_through_drains(helm: Path) -> None:
    objects = by_kind(helm_template(helm, "replicas=3"))
    deployment = objects[("Deployment", RELEASE)]
    assert deployment["spec"]["replicas"] == 3
    args = operator_container(deployment)["args"]
    assert args[args.index("--peering") + 1] == RELEASE  # one peering per release: shards stay apart
    budget = objects[("PodDisruptionBudget", RELEASE)]["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert ("PodDisruptionBudget", RELEASE) not in by_kind(helm_template(helm, "replicas=1"))


# ---------------------------------------------------------------------------------------------
# Alert rules


EXPECTED_ALERTS = {
    "KeycloakMonitorDown",
    "KeycloakMonitorCollectionStale",
    "KeycloakMonitorAbsent",
    "KeycloakLoginFailuresHigh",
    "KeycloakMonitorErrors",
}


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules(promtool: Path) -> None:
    out = run([promtool, "check", "rules", RULES_FILE])
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in out


def test_promtool_unit_tests_of_the_alerts(promtool: Path) -> None:
    files = sorted(RULE_TESTS.glob("*.yaml"))
    assert files
    tested = {
        case["alertname"]
        for f in files
        for t in yaml.safe_load(f.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
    }
    assert tested == EXPECTED_ALERTS, "every alert has unit tests"
    out = run([promtool, "test", "rules", *files], cwd=RULE_TESTS)
    assert "SUCCESS" in out


def test_alerts_are_documented_and_use_the_catalogue() -> None:
    names = series_labels()
    alerts = rules()
    assert {r["alert"] for r in alerts} == EXPECTED_ALERTS
    for rule in alerts:
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and "Runbook" in annotations["description"], rule["alert"]
        assert check_query(rule["expr"], names) == [], rule["alert"]


# ---------------------------------------------------------------------------------------------
# Grafana dashboards

_METRIC = re.compile(r"\b(keycloak_[a-z0-9_]+)\b")
_SELECTOR = re.compile(r"\b(keycloak_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def check_query(expr: str, names: dict[str, frozenset[str]]) -> list[str]:
    """Problems of one PromQL expression against the catalogue: unknown series, and label
    matchers or groupings on labels that its series do not carry."""
    problems = []
    used = set(_METRIC.findall(expr))
    problems += [f"{m} is not in the catalogue" for m in sorted(used - set(names))]
    for metric, matchers in _SELECTOR.findall(expr):
        for label, _ in _MATCHER.findall(matchers):
            if metric in names and label not in names[metric]:
                problems.append(f"{metric} has no label {label}")
    available = frozenset().union(*(names.get(m, frozenset()) for m in used)) if used else frozenset()
    for group in _GROUPING.findall(expr):
        for label in filter(None, (x.strip() for x in group.split(","))):
            if label not in available:
                problems.append(f"grouping by {label}, which none of {sorted(used)} carries")
    return problems


def load_dashboards() -> dict[str, dict[str, Any]]:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert len(files) == 2
    return {f.name: json.loads(f.read_text()) for f in files}


def all_panels(panels: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def test_dashboards_are_valid_and_parameterised() -> None:
    uids = set()
    for name, board in load_dashboards().items():
        assert board["uid"] not in uids, name
        uids.add(board["uid"])
        assert board["title"] and isinstance(board["schemaVersion"], int)
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for var in ("namespace", "monitor", "realm"):
            assert variables[var]["type"] == "query", (name, var)
            assert variables[var]["datasource"]["uid"] == "${datasource}", (name, var)
        ids = [p["id"] for p in all_panels(board["panels"])]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in all_panels(board["panels"]):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                for var in ("$namespace", "$monitor", "$realm"):
                    assert var in target["expr"], (name, panel["title"], var)


def test_dashboards_query_only_catalogue_metrics() -> None:
    names = series_labels()
    shown: set[str] = set()
    for name, board in load_dashboards().items():
        queries = [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
        for panel in all_panels(board["panels"]):
            for target in panel.get("targets", []):
                queries.append(target["expr"])
                legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
                used = set(_METRIC.findall(target["expr"])) & set(names)
                carried = frozenset().union(*(names[m] for m in used))
                assert legend_labels <= carried, (name, panel["title"], legend_labels - carried)
        for query in queries:
            assert check_query(query, names) == [], (name, query)
            shown.update(base_name(m) for m in _METRIC.findall(query))
    assert shown == set(CATALOGUE) - PER_USER, "every non-opt-in metric has a panel"


def test_dashboards_cover_what_operators_look_at() -> None:
    boards = load_dashboards()
    overview = json.dumps(boards["keycloak-overview.json"])
    assert "LOGIN_ERROR" in overview and "keycloak_session_age_seconds_bucket" in overview
    assert {"heatmap", "state-timeline"} <= {p["type"] for p in all_panels(boards["keycloak-overview.json"]["panels"])}
    health = json.dumps(boards["keycloak-monitor-health.json"])
    for needle in (
        "histogram_quantile(0.5,",
        "histogram_quantile(0.99,",
        "by (namespace, monitor, reason)",
        "by (endpoint, code)",
        "time() - keycloak_monitor_last_success_timestamp_seconds",
    ):
        assert needle in health, needle


# ---------------------------------------------------------------------------------------------
# Dockerfile and the kind script


def test_dockerfile_builds_a_non_root_operator_image(kustomized: list[dict[str, Any]]) -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(stages) >= 2, "multi-stage"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert re.search(r"^RUN .*pip install --constraint constraints\.txt \.", text, re.MULTILINE | re.DOTALL)
    assert re.search(r'^ENTRYPOINT \["keycloak-monitor"\]$', text, re.MULTILINE)
    assert re.search(r'^CMD \["run", "--all-namespaces"\]$', text, re.MULTILINE)
    assert re.search(r"^EXPOSE 9091$", text, re.MULTILINE)
    user = re.findall(r"^USER (\d+):(\d+)$", text, re.MULTILINE)
    assert user and user[-1][0] != "0", "numeric non-root user, so runAsNonRoot can check it"
    pod = by_kind(kustomized)[("Deployment", "keycloak-monitor")]["spec"]["template"]["spec"]
    assert str(pod["securityContext"]["runAsUser"]) == user[-1][0]
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!README.md", "!constraints.txt", "!operator/"):
        assert needed in ignore
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for source in copied.split():
            assert (ROOT / source).exists(), source


def test_kind_script_is_valid_bash() -> None:
    script = ROOT / "scripts" / "kind-e2e.sh"
    run(["bash", "-n", script])
    text = script.read_text()
    for step in (
        "kind create cluster",
        "docker build",
        "kind load docker-image",
        "apply --server-side -k",
        'make -C "$ROOT" test-e2e',
    ):
        assert step in text, step


def test_the_exporter_serves_exactly_the_catalogue() -> None:
    """The families the code serves are the contract dashboards and alerts are written against."""
    from keycloak_monitor.catalogue import FAMILIES

    served = {f.name + ("_total" if f.type == "counter" else ""): f.type for f in FAMILIES}
    assert served == {name: kind for name, (kind, _) in CATALOGUE.items()}


def test_constraints_pin_every_dependency_within_its_bounds() -> None:
    """The image installs constraints.txt: each runtime dependency pinned, inside pyproject's range."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert pins[name] in requirement.specifier, (name, pins[name], str(requirement.specifier))
        assert any(s.operator == "<" for s in requirement.specifier), f"{name} has no upper bound"
