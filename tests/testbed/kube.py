"""A real Kubernetes API for tests: etcd + kube-apiserver on loopback, as envtest runs them,
or the cluster KUBECONFIG names (kind, for users with Docker). No nodes: the operator runs
as a local process, and manifests are checked with server-side dry runs."""

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.testbed.keycloak import free_port
from tests.testbed.kube_build import KubeBinaries, ensure_binaries


def _write_kubeconfig(path: Path, server: str, token: str, ca_data: str | None = None) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    else:
        cluster["insecure-skip-tls-verify"] = True
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": cluster}],
                "users": [{"name": "test", "user": {"token": token}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "current-context": "test",
            }
        )
    )
    path.chmod(0o600)
    return path


class _Kubectl:
    kubeconfig: Path
    kubectl_path: Path
    workdir: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.kubectl_path), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"`kubectl {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def apply(self, *documents: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        """`kubectl apply` of these objects, written as JSON: every string stays a string
        (PyYAML leaves `4e123456` bare, and kubectl's YAML reads it as a number)."""
        stream = "\n---\n".join(json.dumps(document) for document in documents)
        return self.kubectl("apply", "-f", "-", input=stream, check=check)

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig holding a real token of that ServiceAccount (TokenRequest API)."""
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=6h").stdout.strip()
        server, ca_data = self._cluster_endpoint()
        return _write_kubeconfig(self.workdir / f"sa-{namespace}-{name}.kubeconfig", server, token, ca_data)

    def _cluster_endpoint(self) -> tuple[str, str | None]:
        view = json.loads(self.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
        cluster = view["clusters"][0]["cluster"]
        return cluster["server"], cluster.get("certificate-authority-data")


class ControlPlane(_Kubectl):
    """etcd and kube-apiserver on free loopback ports, in a temporary folder."""

    def __init__(self, binaries: KubeBinaries, apiserver_args: tuple[str, ...] = ()) -> None:
        self.binaries = binaries
        self.apiserver_args = apiserver_args
        self.kubectl_path = binaries.kubectl
        self.workdir = Path(tempfile.mkdtemp(prefix="kcm-kube-"))
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.etcd_log = self.workdir / "etcd.log"
        self.apiserver_log = self.workdir / "kube-apiserver.log"
        self._token = secrets.token_hex(16)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._commands: dict[str, tuple[list[str], Path]] = {}
        self._by_name: dict[str, subprocess.Popen[bytes]] = {}
        self.etcd_url = ""

    def compact(self) -> int:
        """Compact etcd's history up to now, as the apiserver does every few minutes (through
        etcd's JSON gateway); returns that revision. A watch from before it is answered 410 Gone."""
        with httpx.Client(base_url=self.etcd_url, timeout=10) as etcd:
            revision = int(etcd.post("/v3/kv/range", json={"key": "AA=="}).json()["header"]["revision"])
            etcd.post("/v3/kv/compaction", json={"revision": revision, "physical": True}).raise_for_status()
        return revision

    def _spawn(self, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._processes.append(process)
        name = Path(command[0]).name
        self._commands[name], self._by_name[name] = (command, log), process
        return process

    # Faults for the resilience tests: the same process again, on the same ports and data.
    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop `etcd` or `kube-apiserver` (SIGSTOP freezes it: it holds connections, answers nothing)."""
        process = self._by_name[name]
        if sig == signal.SIGSTOP:
            process.send_signal(sig)
            return
        process.send_signal(sig)
        process.wait(30)
        self._processes.remove(process)

    def resume(self, name: str) -> None:
        """Undo kill(): SIGCONT a frozen process, or start a stopped one again."""
        process = self._by_name[name]
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            return
        self._spawn(*self._commands[name])
        if name == "kube-apiserver":
            self._wait_ready(self._by_name[name], 120)

    def _ready(self) -> bool:
        try:
            headers = {"Authorization": f"Bearer {self._token}"}
            return httpx.get(f"{self.server}/readyz", headers=headers, verify=False, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self, apiserver: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if apiserver.poll() is not None:
                raise RuntimeError(
                    f"kube-apiserver exited with {apiserver.returncode}:\n{self._tail(self.apiserver_log)}"
                )
            if self._ready():
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"kube-apiserver not ready in {timeout}s:\n{self._tail(self.apiserver_log)}\n{self._tail(self.etcd_log)}"
        )

    def start(self, timeout: float = 120) -> "ControlPlane":
        atexit.register(self.stop)
        etcd_url = self.etcd_url = f"http://127.0.0.1:{free_port()}"
        self._spawn(
            [
                str(self.binaries.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{free_port()}",
                "--unsafe-no-fsync",
            ],
            self.etcd_log,
        )
        key = self.workdir / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self._token},admin,admin,"system:masters"\n')
        apiserver = self._spawn(
            [
                str(self.binaries.apiserver),
                f"--etcd-servers={etcd_url}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={key}",
                f"--service-account-signing-key-file={key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                f"--token-auth-file={tokens}",
                "--allow-privileged=true",
                *self.apiserver_args,
            ],
            self.apiserver_log,
        )
        _write_kubeconfig(self.kubeconfig, self.server, self._token)
        try:
            self._wait_ready(apiserver, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    @staticmethod
    def _tail(path: Path, lines: int = 30) -> str:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.send_signal(signal.SIGCONT)  # a frozen one could not act on SIGTERM
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        if os.environ.get("KEEP_TEST_CLUSTER") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class ExistingCluster(_Kubectl):
    """The cluster KUBECONFIG names; nothing is started or stopped."""

    def __init__(self, kubeconfig: Path, kubectl_path: Path) -> None:
        self.kubeconfig, self.kubectl_path = kubeconfig, kubectl_path
        self.workdir = Path(tempfile.mkdtemp(prefix="kcm-cluster-"))
        self.server = self._cluster_endpoint()[0]

    def stop(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_cluster() -> ControlPlane | ExistingCluster:
    binaries = ensure_binaries()
    if os.environ.get("KUBECONFIG"):
        return ExistingCluster(Path(os.environ["KUBECONFIG"]), binaries.kubectl)
    return ControlPlane(binaries).start()


def main() -> None:
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m tests.testbed.kube fetch")
    started = time.monotonic()
    binaries = ensure_binaries()
    print(f"kube-apiserver, etcd, kubectl ready in {time.monotonic() - started:.1f}s: {binaries}")


if __name__ == "__main__":
    main()
