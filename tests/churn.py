"""Monitors created and deleted in a loop against a running operator: afterwards its
memory, task count and series must be back at their baseline. A short run is a test
(tests/test_resilience.py), 1,000 cycles beside 500 monitors a benchmark (bench/operator_scale.py)."""

import time
from dataclasses import dataclass
from typing import Any

from tests.operator_process import OperatorProcess
from tests.test_operator import RUN_LABEL, Kubectl, wait_for


@dataclass(frozen=True)
class Footprint:
    rss_bytes: float
    tasks: float
    series: int  # lines of /metrics about the churned namespace


def unlabelled(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not served")


def footprint(operator: OperatorProcess, namespace: str) -> Footprint:
    text = operator.metrics()
    return Footprint(
        rss_bytes=unlabelled(text, "process_resident_memory_bytes"),
        tasks=unlabelled(text, "python_asyncio_tasks"),
        series=sum(1 for line in text.splitlines() if f'namespace="{namespace}"' in line),
    )


def _running(operator: OperatorProcess, namespace: str, collected: bool) -> int:
    """Monitors whose series exist; with `collected`, those that succeeded once."""
    family = "keycloak_monitor_last_success_timestamp_seconds{" if collected else "keycloak_monitor_up{"
    return sum(
        1 for line in operator.metrics().splitlines() if line.startswith(family) and f'namespace="{namespace}"' in line
    )


def churn_round(
    kube: Kubectl, operator: OperatorProcess, namespace: str, docs: list[dict[str, Any]], collected: bool
) -> None:
    """Create every monitor, wait until each runs (has collected, with `collected`), delete
    them all (collections in flight included), wait until their series are gone."""
    kube.apply(*docs)
    wait_for(
        f"{len(docs)} monitors running", lambda: _running(operator, namespace, collected) == len(docs), 300, every=1
    )
    kube.cluster.kubectl("delete", "kcm", "--all", "-n", namespace, "--wait=true", "--timeout=120s")
    wait_for("their series gone", lambda: footprint(operator, namespace).series == 0, 60)


def monitor_docs(
    kube: Kubectl, namespace: str, url: str, realm: str, label: str, count: int, **spec: Any
) -> list[dict[str, Any]]:
    docs = []
    for i in range(count):
        doc = kube.monitor_doc(namespace, f"churn-{i}", url, realm, "kc-admin", **spec)
        doc["metadata"]["labels"] = {RUN_LABEL: label}
        docs.append(doc)
    return docs


def churn(
    kube: Kubectl,
    operator: OperatorProcess,
    namespace: str,
    docs: list[dict[str, Any]],
    seconds: float,
    collected: bool = False,
    progress: bool = False,
    min_rounds: int = 1,
) -> tuple[Footprint, Footprint, int]:
    """(baseline after one warm-up round, footprint once settled after the loop, rounds):
    rounds go on for `seconds`, and at least `min_rounds` of them."""
    churn_round(kube, operator, namespace, docs, collected)  # imports, pools and caches fill once
    baseline = footprint(operator, namespace)
    deadline, rounds = time.monotonic() + seconds, 0
    while rounds < min_rounds or time.monotonic() < deadline:
        churn_round(kube, operator, namespace, docs, collected)
        rounds += 1
        if progress:
            now = footprint(operator, namespace)
            print(f"round {rounds}: RSS {now.rss_bytes / 2**20:.1f} MiB, {now.tasks:g} tasks", flush=True)
    after = wait_for(
        "tasks back at the baseline", lambda: (f := footprint(operator, namespace)).tasks <= baseline.tasks and f, 60
    )
    return baseline, after, rounds
