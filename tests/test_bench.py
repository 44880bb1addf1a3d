"""`make bench` keeps working: its smoke mode (tiny sizes, against the session's Keycloak)
writes a result file per benchmark, RESULTS.md and the table. Speed is not checked here."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.keycloak

NAMES = {"scrape", "collection_keycloak", "collection_synthetic", "operator_scale", "pools"}


@pytest.fixture(scope="module")
def smoke(keycloak, tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    environment = {
        **os.environ,
        "KCM_BENCH_KEYCLOAK_URL": keycloak.base_url,
        "KCM_BENCH_KEYCLOAK_USER": keycloak.admin_user,
        "KCM_BENCH_KEYCLOAK_PASSWORD": keycloak.admin_password,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done, out


def record(out: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((out / "results" / f"{name}.json").read_text()))


def test_smoke_run_writes_every_result_and_the_table(smoke):
    done, out = smoke
    assert {p.stem for p in (out / "results").glob("*.json")} == NAMES
    summary = (out / "RESULTS.md").read_text()
    for name in NAMES:
        result = record(out, name)
        assert result["commit"] and result["machine"]["cpus"] and result["figures"], name
        assert f"## {result['title']}" in summary
        for figure in result["figures"]:
            assert figure["name"] in done.stdout
    assert "wall time vs a plain httpx script" in done.stdout
    assert "requests per cycle vs minimum" in done.stdout
    assert "apiserver requests per minute" in done.stdout
    assert "apply to first series, single apply: p99" in done.stdout


def test_monitors_created_and_deleted_beside_running_ones_leave_no_task_or_series(smoke):
    """The operator's asyncio tasks are back at their count and the deleted monitors' series
    are gone, while the others keep running (a behaviour, whatever the sizes)."""
    churn = record(smoke[1], "operator_scale")["details"]["churn"]
    assert churn["cycles"] >= 20
    assert churn["after"]["tasks"] <= churn["before"]["tasks"], churn
    assert churn["churned_series_after"] == 0
