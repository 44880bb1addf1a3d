"""A real Prometheus (Debian's, beside promtool) on a free loopback port, for tests that check
what users see through it: scrapes every second into a temporary data directory."""

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.operator_process import free_port
from tests.testbed.tools import ensure_promtool


def scrape_job(name: str, target: str, **settings: Any) -> dict[str, Any]:
    """A plain-HTTP job for `host:port`; the series keep their own labels, as the chart sets it."""
    return {"job_name": name, "honor_labels": True, "static_configs": [{"targets": [target]}], **settings}


class Prometheus:
    def __init__(self, workdir: Path, jobs: list[dict[str, Any]]) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": jobs}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Prometheus":
        binary = ensure_promtool().parent / "prometheus"
        command = [
            str(binary),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with (self.workdir / "prometheus.log").open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(30)

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text()[-3000:]

    def api(self, path: str, **params: Any) -> Any:
        """`data` of an HTTP API answer; a query Prometheus rejects raises with its error."""
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        if answer["status"] != "success":
            raise AssertionError(f"{path} {params}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The instant vector (or scalar as one sample) of `expr`, now or at a Unix time."""
        data = self.api("query", query=expr, **({"time": at} if at is not None else {}))
        if data["resultType"] in ("vector", "matrix"):
            return data["result"]
        return [{"metric": {}, "value": data["result"]}]

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll until `expr` has a sample (the first scrapes take a few seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = self.query(expr)
            except (httpx.HTTPError, ValueError):  # not listening yet, or 503 text while it starts
                result = []
            if result or time.monotonic() > deadline:
                assert result, f"no sample for {expr} within {timeout:.0f}s\n{self.log()}"
                return result
            time.sleep(0.5)

    def target_health(self, expected: int) -> dict[str, tuple[str, str]] | None:
        """job -> (health, last error) once every target was scraped at least once."""
        try:
            targets = self.api("targets")["activeTargets"]
        except (httpx.HTTPError, ValueError):
            return None
        if len(targets) < expected or any(t["health"] == "unknown" for t in targets):
            return None
        return {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
