"""Standalone mode with a state directory: event counters continue across a SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.operator_process import free_port
from tests.realms import failed_logins, make_realm, stored_events
from tests.test_operator import sample, wait_for

pytestmark = pytest.mark.keycloak


def start(config: Path, log: Path, *extra: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "keycloak_monitor", "standalone", "--config", str(config), "--host", "127.0.0.1"]
    with log.open("ab") as out:
        return subprocess.Popen([*command, *extra], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)


def test_counters_continue_across_a_sigkill_and_equal_keycloaks_stored_count(keycloak, kc_admin, tmp_path):
    realm = make_realm(kc_admin, "state", users=3)
    port = free_port()
    monitor = {
        "name": "kept",
        "url": keycloak.base_url,
        "realm": realm.name,
        "interval": "5s",
        "timeout": "4s",
        "events": {"admin": False},
        "credentials": {"username": keycloak.admin_user, "passwordEnv": "KC_TEST_PASSWORD"},
    }
    config = tmp_path / "monitors.yaml"
    config.write_text(yaml.safe_dump({"port": port, "monitors": [monitor]}))
    state_dir, log = tmp_path / "state", tmp_path / "standalone.log"
    env = {"KC_TEST_PASSWORD": keycloak.admin_password}
    labels = {"monitor": "kept", "event": "LOGIN_ERROR", "client_id": "web"}

    def counter() -> float | None:
        try:
            return sample(
                httpx.get(f"http://127.0.0.1:{port}/metrics").text, "keycloak_realm_user_events_total", **labels
            )
        except httpx.HTTPError:
            return None

    first = start(config, log, env={**env, "KEYCLOAK_MONITOR_STATE_DIR": str(state_dir)})  # the variable
    try:
        wait_for("the first collection", lambda: counter() == 0, 60)  # a known series, zero before its first event
        failed_logins(kc_admin, realm.name, 30)
        wait_for("30 events counted", lambda: counter() == 30, 60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert list(state_dir.glob("*.events.json"))

    failed_logins(kc_admin, realm.name, 20)  # while it is down
    second = start(config, log, "--state-dir", str(state_dir), env=env)  # the option
    try:
        seen = [wait_for("the restarted process", counter, 60)]
        deadline = time.monotonic() + 60
        while seen[-1] != 50 and time.monotonic() < deadline:
            time.sleep(0.5)
            seen.append(counter() or seen[-1])
        assert seen[0] >= 30 and seen == sorted(seen)  # never below what was served before the kill
        assert seen[-1] == 50 == len(stored_events(kc_admin, realm.name, type="LOGIN_ERROR"))
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
