"""The operator as users run it (`keycloak-monitor run`), as a local process against the
apiserver, with the ServiceAccount token of manifests/ rather than cluster admin."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        selector: str,
        log_dir: Path,
        extra_args: tuple[str, ...] = (),
        https: bool = False,
        launcher: tuple[str, ...] = ("-m", "keycloak_monitor"),
    ) -> None:
        self.kubeconfig, self.selector, self.extra_args, self.https = kubeconfig, selector, extra_args, https
        self.launcher = launcher  # what python runs: the operator, or a wrapper around it (bench/)
        self.port = free_port()
        self.log_path = log_dir / f"operator-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it (to start several at once)."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        command = [sys.executable, *self.launcher, "run", "--all-namespaces", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--selector", self.selector, "--log-level", "DEBUG", *self.extra_args]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"operator exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1, verify=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"operator not ready within {timeout}s:\n{self.log_tail()}")

    def send(self, sig: int) -> None:
        """Send `sig` and return at once (SIGSTOP, SIGCONT: the process stays ours)."""
        assert self._process is not None
        self._process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self._process is None:
            return None
        process, self._process = self._process, None
        process.send_signal(sig)
        if sig != signal.SIGKILL:
            process.send_signal(signal.SIGCONT)  # a SIGSTOPped process handles `sig` only once continued
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def signal(self, sig: int) -> None:
        assert self._process is not None
        self._process.send_signal(sig)

    def healthz(self) -> int:
        return httpx.get(f"{self.url}/healthz", timeout=5).status_code

    def metrics(self, timeout: float = 5) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=timeout).text

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
