"""Every panel of both shipped Grafana dashboards, its template variables filled in as Grafana
does, returns data from a real Prometheus scraping a standalone exporter that collects a real
realm with sessions, user events and admin events."""

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator_process import free_port
from tests.realms import PASSWORD, make_realm
from tests.testbed.prometheus import Prometheus, scrape_job

pytestmark = pytest.mark.keycloak

DASHBOARDS = Path(__file__).parent.parent / "charts" / "keycloak-monitor" / "files" / "dashboards"
RATE_INTERVAL = "30s"  # Grafana's $__rate_interval for a 1 s scrape is far less; 30 s holds enough samples


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def prometheus(keycloak, kc_admin, tmp_path_factory) -> Iterator[Prometheus]:
    realm = make_realm(kc_admin, "dashboards", users=2)
    kc_admin.login(realm.name, "web", "user0", PASSWORD)
    kc_admin.failed_login(realm.name, "web", "user1")
    workdir = tmp_path_factory.mktemp("dashboards")
    port = free_port()
    monitor = {
        "name": "dash",
        "url": keycloak.base_url,
        "realm": realm.name,
        "interval": "5s",
        "timeout": "4s",
        "credentials": {"username": keycloak.admin_user, "passwordEnv": "KC_TEST_PASSWORD"},
    }
    (workdir / "monitors.yaml").write_text(yaml.safe_dump({"port": port, "monitors": [monitor]}))
    command = [sys.executable, "-m", "keycloak_monitor", "standalone", "--config", str(workdir / "monitors.yaml")]
    env = {**os.environ, "KC_TEST_PASSWORD": keycloak.admin_password}
    with (workdir / "exporter.log").open("wb") as log:
        exporter = subprocess.Popen([*command, "--host", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with Prometheus(workdir, [scrape_job("keycloak-monitor", f"127.0.0.1:{port}")]) as prometheus:
            # Rates need two samples of a counter that already counted the realm's events.
            prometheus.wait_for('count_over_time(keycloak_realm_user_events_total{event="LOGIN"}[30s]) > 1', 120)
            # Events are counted from when the monitor was created: make some now.
            kc_admin.login(realm.name, "web", "user0", PASSWORD)
            kc_admin.create_user(realm.name, "late", PASSWORD)
            yield prometheus
    finally:
        exporter.kill()
        exporter.wait()


def fill(prometheus: Prometheus, dashboard: dict[str, Any], expr: str) -> str:
    """Grafana's substitution: each query variable becomes the regex of the values its own query
    finds (All selected), in dashboard order so later variables see earlier ones."""
    values: dict[str, str] = {"__rate_interval": RATE_INTERVAL}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        found = re.fullmatch(r"label_values\((.*), *(\w+)\)", query)
        assert found, f"{variable['name']}: not a label_values query: {query}"
        selector = substitute(found.group(1), values)
        labels = prometheus.api(f"label/{found.group(2)}/values", **{"match[]": selector})
        assert labels, f"variable {variable['name']} has no values ({selector})"
        # Regex-escaped, then escaped again for the PromQL string literal, as Grafana does.
        values[variable["name"]] = "|".join(re.escape(v).replace("\\", "\\\\") for v in labels)
    return substitute(expr, values)


def substitute(expr: str, values: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)


def test_every_panel_query_returns_data(prometheus):
    empty = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                expr = fill(prometheus, dashboard, target["expr"])
                deadline = time.monotonic() + 30
                while not (result := prometheus.query(expr)) and time.monotonic() < deadline:
                    time.sleep(1)
                if not result:
                    empty.append(f"{path.name} / {panel['title']}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
