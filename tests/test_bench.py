"""`make bench` keeps working: its smoke mode (tiny sizes, against the session's Keycloak)
writes a result file per benchmark, RESULTS.md and the table. Speed is not checked here."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.keycloak


def test_smoke_run_writes_every_result_and_the_table(keycloak, tmp_path):
    environment = {
        **os.environ,
        "KCM_BENCH_KEYCLOAK_URL": keycloak.base_url,
        "KCM_BENCH_KEYCLOAK_USER": keycloak.admin_user,
        "KCM_BENCH_KEYCLOAK_PASSWORD": keycloak.admin_password,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = {"scrape", "collection_keycloak", "collection_synthetic"}
    assert {p.stem for p in (tmp_path / "results").glob("*.json")} == names
    summary = (tmp_path / "RESULTS.md").read_text()
    for name in names:
        record = json.loads((tmp_path / "results" / f"{name}.json").read_text())
        assert record["commit"] and record["machine"]["cpus"] and record["figures"], name
        assert f"## {record['title']}" in summary
        for figure in record["figures"]:
            assert figure["name"] in done.stdout
    assert "wall time vs a plain httpx script" in done.stdout
    assert "requests per cycle vs minimum" in done.stdout
