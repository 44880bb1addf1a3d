"""The Helm values that expose the push receiver: a Service port and an Ingress for /push only."""

from pathlib import Path

from tests.test_deploy_artifacts import by_kind, helm, helm_template  # noqa: F401


def test_push_values_add_a_service_port_and_an_ingress_for_push_only(helm: Path) -> None:  # noqa: F811
    objects = by_kind(
        helm_template(helm, "push.servicePort=8080", "push.ingress.enabled=true", "push.ingress.host=push.example.com")
    )
    (service,) = [doc for (kind, _), doc in objects.items() if kind == "Service"]
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["push"]["port"] == 8080 and ports["push"]["targetPort"] == "metrics"
    (ingress,) = [doc for (kind, _), doc in objects.items() if kind == "Ingress"]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "push.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/push/" and path["backend"]["service"]["port"]["name"] == "push"

    default = by_kind(helm_template(helm))
    assert not [name for kind, name in default if kind == "Ingress"]
    (service,) = [doc for (kind, _), doc in default.items() if kind == "Service"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
