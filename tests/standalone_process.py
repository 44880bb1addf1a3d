"""`keycloak-monitor standalone` as a real process with a config file, started, killed and
restarted by tests that need the process boundary (pushes, notifications across restarts)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.operator_process import free_port


class StandaloneProcess:
    def __init__(self, workdir: Path, monitors: list[dict[str, Any]], env: dict[str, str] | None = None) -> None:
        self.workdir, self.port = workdir, free_port()
        self.config = workdir / "monitors.yaml"
        # Counts and outboxes are kept here, so a restarted process resumes from them.
        config = {"port": self.port, "monitors": monitors, "stateDir": str(workdir / "state")}
        self.config.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "standalone.log"
        self.env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_series: str, timeout: float = 60, args: tuple[str, ...] = ()) -> "StandaloneProcess":
        """Start (with more command-line `args`) and wait until /metrics shows `ready_series` (a first collection)."""
        command = [sys.executable, "-m", "keycloak_monitor", "standalone", "--config", str(self.config)]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [*command, "--host", "127.0.0.1", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_for(lambda text: ready_series in text, timeout, f"{ready_series} on /metrics")
        return self

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def value(self, series: str) -> float | None:
        """The value of one exact series (name and labels as served), or None when absent."""
        match = re.search(rf"^{re.escape(series)} (\S+)$", self.metrics(), re.MULTILINE)
        return float(match.group(1)) if match else None

    def wait_for(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"standalone exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if condition(self.metrics()):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"no {what} within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Send `sig` and wait for the exit; its status, or None when not running."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return None
        process.send_signal(sig)
        try:
            return process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
