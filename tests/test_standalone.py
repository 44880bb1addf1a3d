"""`keycloak-monitor standalone` as users run it: a real process, a real scrape."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.operator_process import free_port
from tests.realms import PASSWORD, Realm, make_realm
from tests.testbed.prometheus import Prometheus, scrape_job
from tests.testbed.tools import ensure_promtool

pytestmark = pytest.mark.keycloak


@pytest.fixture(scope="module")
def realm(kc_admin) -> Realm:
    realm = make_realm(kc_admin, "standalone", users=2)
    kc_admin.login(realm.name, "web", "user0", PASSWORD)
    kc_admin.failed_login(realm.name, "web", "user1")
    return realm


@pytest.fixture(scope="module")
def exporter(keycloak, realm, tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    workdir = tmp_path_factory.mktemp("standalone")
    port = free_port()
    config = {
        "port": port,
        "monitors": [
            {
                "name": "demo",
                "url": keycloak.base_url,
                "realm": realm.name,
                "interval": "5s",
                "timeout": "4s",
                "credentials": {"username": keycloak.admin_user, "passwordEnv": "KC_TEST_PASSWORD"},
            },
            {
                "name": "broken",
                "url": keycloak.base_url,
                "realm": "does-not-exist",
                "interval": "5s",
                "timeout": "4s",
                "credentials": {"username": keycloak.admin_user, "passwordEnv": "KC_TEST_PASSWORD"},
            },
        ],
    }
    (workdir / "monitors.yaml").write_text(yaml.safe_dump(config))
    log = (workdir / "exporter.log").open("wb")
    env = {**os.environ, "KC_TEST_PASSWORD": keycloak.admin_password}
    command = [sys.executable, "-m", "keycloak_monitor", "standalone", "--config", str(workdir / "monitors.yaml")]
    command += ["--host", "127.0.0.1"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if 'keycloak_users{namespace="standalone",monitor="demo"' in httpx.get(f"{url}/metrics").text:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    yield url, process, workdir / "exporter.log"
    if process.poll() is None:
        process.kill()
        process.wait()


def test_the_endpoint_serves_real_numbers_and_the_broken_monitor_only_its_health(exporter, realm):
    url, _, _ = exporter
    text = httpx.get(f"{url}/metrics").text
    assert f'keycloak_users{{namespace="standalone",monitor="demo",realm="{realm.name}"}} 2.0' in text
    assert (
        f'keycloak_active_sessions{{namespace="standalone",monitor="demo",realm="{realm.name}",client_id="web"}} 1.0'
        in text
    )
    assert 'keycloak_monitor_up{namespace="standalone",monitor="broken",realm="does-not-exist"} 0.0' in text
    assert 'keycloak_users{namespace="standalone",monitor="broken"' not in text
    assert "process_resident_memory_bytes" in text


def test_promtool_finds_nothing_to_say_about_a_real_scrape(exporter, tmp_path):
    url, _, _ = exporter
    body = httpx.get(f"{url}/metrics").content
    result = subprocess.run([str(ensure_promtool()), "check", "metrics"], input=body, capture_output=True)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout.decode() + result.stderr.decode()
    )


def test_a_real_prometheus_scrapes_it(exporter, realm, tmp_path):
    url, _, _ = exporter
    with Prometheus(tmp_path, [scrape_job("keycloak-monitor", url.removeprefix("http://"))]) as prometheus:
        result = prometheus.wait_for(f'keycloak_users{{monitor="demo",realm="{realm.name}"}}')
    assert result[0]["value"][1] == "2"
    assert result[0]["metric"]["job"] == "keycloak-monitor"


def test_sigterm_stops_it_cleanly(exporter):
    _, process, log = exporter
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert "stopped" in log.read_text()
