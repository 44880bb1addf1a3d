"""The operator at 500 monitors on a real kube-apiserver, against the synthetic Admin API
(bench/synthetic_keycloak.py, one realm name per monitor), as `keycloak-monitor run` with
the ServiceAccount of manifests/:

- steady state (a window of one status heartbeat, 5 min, after every first status write):
  the operator's resident memory and CPU per minute; status writes and the operator's
  apiserver requests per minute, from the apiserver's own `apiserver_request_total`;
- time from `kubectl apply` to a monitor's first collected series
  (`keycloak_monitor_last_success_timestamp_seconds`): for each of the 500, applied in
  waves of 50 spread over one interval, and for single monitors applied one at a time
  beside the 500. (Applied all at once, the 500 first collections share the operator's
  16 requests in flight per Keycloak, so each finishes near the end of the whole round:
  when that round outlasts the timeout, every one times out, and since they stay in step,
  again on every interval.)
- 1,000 create/delete cycles beside the 500 (tests/churn.py, in rounds of 50): resident
  memory, asyncio tasks and series before and after.

When the memory or CPU target is missed, the operator's profile over one more minute
(cProfile and a census of live objects, bench/profiled_operator.py) goes into the result.

    python -m bench --only operator_scale [--smoke]
"""

import json
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.report import Result, percentile
from bench.synthetic_keycloak import ADMIN_PASSWORD, ADMIN_USER, RealmShape, SyntheticProcess
from tests.churn import churn, monitor_docs, unlabelled
from tests.operator_process import OperatorProcess
from tests.test_operator import RUN_LABEL, Kubectl, wait_for
from tests.testbed.kube import ControlPlane
from tests.testbed.kube_build import ensure_binaries

ROOT = Path(__file__).resolve().parent.parent
LABEL = "scale"  # the operator's selector: every monitor of this run carries it
# What the operator asks the apiserver for; the rest of apiserver_request_total is the
# apiserver's own upkeep (leases, endpoints, openapi) and this benchmark's kubectl.
OPERATOR_RESOURCES = {"keycloakmonitors", "secrets", "events", "kopfpeerings", "clusterkopfpeerings"}
RSS_TARGET_MB = 150.0
PROFILE_SECONDS = 60.0
SCRAPE_TIMEOUT = 30.0
# Each realm a small one, with events counted (the same data under every realm name): this
# measures what a monitor costs the operator; bench/collection_synthetic.py measures size.
SHAPE = RealmShape(sessions=100, clients=3, offline=10, user_events=20, admin_events=5)


@dataclass(frozen=True)
class Sizes:
    monitors: int
    namespaces: int  # the monitors are spread over these, one opted-in Secret each
    interval: str
    timeout: str  # of one collection
    steady_seconds: float  # one status heartbeat (5 min): its writes fall inside the window
    probes: int  # single monitors applied one at a time beside the running ones
    cycles: int  # monitors created and deleted, in rounds of churn_batch
    churn_batch: int
    wave: int  # monitors per kubectl apply, the waves spread over one interval

    @property
    def interval_seconds(self) -> float:
        return float(self.interval.removesuffix("s"))

    @property
    def spec(self) -> dict[str, str]:
        return {"interval": self.interval, "timeout": self.timeout}


FULL = Sizes(
    monitors=500,
    namespaces=10,
    interval="30s",
    timeout="10s",
    steady_seconds=300,
    probes=40,
    cycles=1000,
    churn_batch=50,
    wave=50,
)
SMOKE = Sizes(
    monitors=5, namespaces=1, interval="5s", timeout="4s", steady_seconds=6, probes=3, cycles=20, churn_batch=10, wave=5
)


def series_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def collected_monitors(text: str) -> set[str]:
    """The names of the monitors that have collected once (their last-success series)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("keycloak_monitor_last_success_timestamp_seconds{"):
            names.add(line.partition('monitor="')[2].partition('"')[0])
    return names


def apiserver_requests(kube: Kubectl) -> Counter[tuple[str, str, str]]:
    """The apiserver's own count of requests so far, by (resource, subresource, verb)."""
    text = kube.cluster.kubectl("get", "--raw", "/metrics").stdout
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":  # the parser drops a counter's _total
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                counts[(labels.get("resource", ""), labels.get("subresource", ""), labels["verb"])] += int(sample.value)
    return counts


def scrape(operator: OperatorProcess) -> str:
    """/metrics, with the patience of a Prometheus scrape: a busy loop may answer late."""
    return operator.metrics(timeout=SCRAPE_TIMEOUT)


def first_series_times(
    operator: OperatorProcess, applied: dict[str, float], count: int, timeout: float, every: float
) -> list[float]:
    """Seconds from each monitor's apply (name -> monotonic time, filled as they are applied)
    until its first collected series, for `count` monitors, polling /metrics `every` seconds
    (a full scrape: polling costs the operator too)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count - len(seen)} monitors without series after {timeout}s")
        now = time.monotonic()
        for name in (collected_monitors(scrape(operator)) & applied.keys()) - seen.keys():
            seen[name] = now - applied[name]
        time.sleep(every)
    return list(seen.values())


def apply_in_waves(kube: Kubectl, docs: list[dict[str, Any]], sizes: Sizes, applied: dict[str, float]) -> None:
    """The monitors in kubectl applies of `wave` each, spread over one interval; `applied`
    gets when each was applied (the start of its kubectl apply)."""
    waves = [docs[i : i + sizes.wave] for i in range(0, len(docs), sizes.wave)]
    spacing = sizes.interval_seconds / len(waves)
    for n, wave in enumerate(waves):
        started = time.monotonic()
        applied.update({doc["metadata"]["name"]: started for doc in wave})
        kube.apply(*wave)
        if n < len(waves) - 1:
            time.sleep(max(0.0, started + spacing - time.monotonic()))


def all_ready(kube: Kubectl, count: int) -> bool:
    """Every monitor of the run is Ready: its first status writes are done."""
    listing = json.loads(kube.cluster.kubectl("get", "kcm", "-A", "-l", f"{RUN_LABEL}={LABEL}", "-o", "json").stdout)
    conditions = [c for item in listing["items"] for c in item.get("status", {}).get("conditions", [])]
    return sum(1 for c in conditions if c["type"] == "Ready" and c["status"] == "True") >= count


def monitor_doc(kube: Kubectl, namespace: str, name: str, url: str, sizes: Sizes) -> dict[str, Any]:
    doc = kube.monitor_doc(namespace, name, url, f"realm-{name}", "kc-admin", **sizes.spec)
    doc["metadata"]["labels"] = {RUN_LABEL: LABEL}
    return doc


def steady_state(
    kube: Kubectl, operator: OperatorProcess, seconds: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    """What the running monitors cost over `seconds`, with nothing else asking the apiserver."""
    before_requests, before = apiserver_requests(kube), scrape(operator)
    started, rss = time.monotonic(), [unlabelled(before, "process_resident_memory_bytes")]
    while (left := started + seconds - time.monotonic()) > 0:
        time.sleep(min(10.0, left))
        rss.append(unlabelled(scrape(operator), "process_resident_memory_bytes"))
        progress(f"steady state: {time.monotonic() - started:.0f}/{seconds:g}s, RSS {rss[-1] / 1e6:.0f} MB")
    after, after_requests = scrape(operator), apiserver_requests(kube)
    minutes = (time.monotonic() - started) / 60
    cpu = unlabelled(after, "process_cpu_seconds_total") - unlabelled(before, "process_cpu_seconds_total")
    delta = {key: after_requests[key] - before_requests[key] for key in after_requests}
    return {
        "window_s": round(minutes * 60, 1),
        "rss_mb": round(rss[-1] / 1e6, 1),
        "rss_max_mb": round(max(rss) / 1e6, 1),
        "cpu_seconds_per_minute": round(cpu / minutes, 2),
        "status_writes_per_minute": round(delta.get(("keycloakmonitors", "status", "PATCH"), 0) / minutes, 1),
        "operator_requests_per_minute": round(
            sum(count for key, count in delta.items() if key[0] in OPERATOR_RESOURCES) / minutes, 1
        ),
        "requests_by_kind": {"/".join(filter(None, key)): n for key, n in sorted(delta.items()) if n},
        "series": series_count(after),
        "tasks": unlabelled(after, "python_asyncio_tasks"),
    }


def single_applies(kube: Kubectl, operator: OperatorProcess, namespace: str, url: str, sizes: Sizes) -> list[float]:
    """One monitor at a time, as a user applies theirs: seconds from `kubectl apply` to its series."""
    times = []
    for i in range(sizes.probes):
        started = time.monotonic()
        kube.apply(monitor_doc(kube, namespace, f"single-{i}", url, sizes))
        times += first_series_times(operator, {f"single-{i}": started}, 1, 120, every=0.25)
        kube.cluster.kubectl("delete", "kcm", f"single-{i}", "-n", namespace, "--wait=false")
    wait_for(
        "the single applies gone",
        lambda: not any(name.startswith("single-") for name in collected_monitors(scrape(operator))),
        60,
    )
    return times


def profiled_minute(operator: OperatorProcess, output: Path) -> str:
    operator.signal(signal.SIGUSR1)
    time.sleep(PROFILE_SECONDS)
    operator.signal(signal.SIGUSR2)
    wait_for("the profile written", output.exists, 60)
    return f"operator over {PROFILE_SECONDS:g} s of steady state, by cumulative time\n" + output.read_text()


def measure(
    kube: Kubectl, url: str, sizes: Sizes, workdir: Path, progress: Callable[[str], None]
) -> tuple[dict[str, Any], str]:
    """The raw figures on the apiserver `kube` names (manifests/ applied), and a profile
    when the memory or CPU target is missed."""
    namespaces = [kube.namespace(f"scale{i}") for i in range(sizes.namespaces)]
    extra = kube.namespace("scale-extra")  # the single applies and the churned monitors
    for namespace in [*namespaces, extra]:
        kube.secret(namespace, "kc-admin", username=ADMIN_USER, password=ADMIN_PASSWORD)
    profile_file = workdir / "operator.profile"
    operator = OperatorProcess(
        kube.cluster.service_account_kubeconfig("keycloak-monitor", "keycloak-monitor"),
        f"{RUN_LABEL}={LABEL}",
        workdir,
        extra_args=("--log-level", "INFO"),  # as deployed: DEBUG lines of 500 monitors cost CPU of their own
        launcher=("-m", "bench.profiled_operator", str(profile_file)),
    )
    operator.start()
    profile = ""
    try:
        idle = scrape(operator)
        docs = [monitor_doc(kube, namespaces[i % len(namespaces)], f"m-{i}", url, sizes) for i in range(sizes.monitors)]
        progress(f"applying {len(docs)} monitors")
        started, applied = time.monotonic(), dict[str, float]()
        applying = threading.Thread(target=apply_in_waves, args=(kube, docs, sizes, applied))
        applying.start()
        try:
            bulk = first_series_times(operator, applied, len(docs), 900, every=1.0)
        finally:
            applying.join()
        spread = max(applied.values()) - started
        progress(f"all {len(docs)} collected, {time.monotonic() - started:.1f} s after the first apply")
        # The first collections write every status (a Ready transition): that is not steady yet.
        wait_for("every monitor Ready", lambda: all_ready(kube, len(docs)), 600, every=5)
        steady = steady_state(kube, operator, sizes.steady_seconds, progress)
        if steady["rss_max_mb"] > RSS_TARGET_MB:
            progress("memory target missed: profiling one more minute")
            profile = profiled_minute(operator, profile_file)
        progress(f"{sizes.probes} single applies beside the running monitors")
        single = single_applies(kube, operator, extra, url, sizes)
        progress(f"{sizes.cycles} create/delete cycles")
        series_before = series_count(scrape(operator))
        churned = monitor_docs(kube, extra, url, "churn", LABEL, sizes.churn_batch, **sizes.spec)
        before, after, rounds = churn(
            kube, operator, extra, churned, 0, collected=True, min_rounds=sizes.cycles // sizes.churn_batch
        )
        series_after = series_count(scrape(operator))
    finally:
        operator.stop()
    figures = {
        "sizes": asdict(sizes),
        "shape": asdict(SHAPE),
        "idle": {"rss_mb": round(unlabelled(idle, "process_resident_memory_bytes") / 1e6, 1)},
        "steady": steady,
        "bulk_apply": {"monitors": len(bulk), "applying_s": round(spread, 1), **_latency(bulk)},
        "single_apply": {"applies": len(single), **_latency(single)},
        "churn": {
            "cycles": rounds * sizes.churn_batch,
            "before": {"rss_mb": before.rss_bytes / 1e6, "tasks": before.tasks, "series": series_before},
            "after": {"rss_mb": after.rss_bytes / 1e6, "tasks": after.tasks, "series": series_after},
            "churned_series_after": after.series,
        },
    }
    return figures, profile


def _latency(values: list[float]) -> dict[str, float]:
    return {"p50_s": percentile(values, 0.5), "p99_s": percentile(values, 0.99), "max_s": max(values)}


def _operator_kinds(by_kind: dict[str, int]) -> str:
    kinds = [f"{kind} {n}" for kind, n in by_kind.items() if kind.split("/")[0] in OPERATOR_RESOURCES]
    return ", ".join(kinds) or "none"


def result_of(figures: dict[str, Any], profile: str) -> Result:
    sizes, steady = figures["sizes"], figures["steady"]
    n = sizes["monitors"]
    result = Result(
        "operator_scale",
        f"The operator at {n} monitors (real kube-apiserver, synthetic Admin API, interval {sizes['interval']})",
        details=figures,
        profile=profile,
    )
    result.add(
        f"{n} monitors: resident memory (max over the window)",
        steady["rss_max_mb"],
        "MB",
        RSS_TARGET_MB,
        note=f"{figures['idle']['rss_mb']:.0f} MB with no monitor; {steady['series']} series",
    )
    cpu = steady["cpu_seconds_per_minute"]
    result.add(f"{n} monitors: CPU per minute", cpu, "s", note=f"{cpu / 60:.0%} of one core")
    result.add(
        f"{n} monitors: status writes per minute",
        steady["status_writes_per_minute"],
        note=f"over {steady['window_s']:.0f} s, one status heartbeat (5 min)",
    )
    result.add(
        f"{n} monitors: apiserver requests per minute",
        steady["operator_requests_per_minute"],
        note=f"the operator's, over {steady['window_s']:.0f} s: {_operator_kinds(steady['requests_by_kind'])}",
    )
    bulk, single = figures["bulk_apply"], figures["single_apply"]
    for label, row, note in (
        (
            "waves",
            bulk,
            f"{bulk['monitors']} monitors, kubectl applies of {sizes['wave']} over {bulk['applying_s']:.0f} s",
        ),
        ("single apply", single, f"{single['applies']} monitors applied one at a time beside the {n}"),
    ):
        result.add(f"apply to first series, {label}: p50", row["p50_s"], "s", note=note)
        result.add(f"apply to first series, {label}: p99", row["p99_s"], "s", note=f"max {row['max_s']:.2f} s")
    churned = figures["churn"]
    before, after = churned["before"], churned["after"]
    cycles = churned["cycles"]
    result.add(
        f"{cycles} create/delete cycles: resident memory growth",
        after["rss_mb"] - before["rss_mb"],
        "MB",
        note=f"{before['rss_mb']:.0f} MB before, {after['rss_mb']:.0f} MB after",
    )
    result.add(
        f"{cycles} create/delete cycles: asyncio task growth",
        after["tasks"] - before["tasks"],
        target=0,
        note=f"{before['tasks']:g} before, {after['tasks']:g} after",
    )
    # The churned monitors' own series: the total also moves when a running monitor meets
    # a label value for the first time (an error reason, a response code).
    result.add(
        f"{cycles} create/delete cycles: series left by the deleted monitors",
        churned["churned_series_after"],
        target=0,
        note=f"all series: {before['series']} before, {after['series']} after",
    )
    return result


def run(smoke: bool = False, progress: Callable[[str], None] = lambda line: print(line, flush=True)) -> Result:
    sizes = SMOKE if smoke else FULL
    workdir = Path(tempfile.mkdtemp(prefix="kcm-scale-"))
    plane = ControlPlane(ensure_binaries()).start()
    try:
        plane.kubectl("apply", "-k", str(ROOT / "manifests"))
        plane.kubectl("wait", "--for=condition=Established", "crd/keycloakmonitors.monitoring.keycloak-monitor.io")
        with SyntheticProcess(SHAPE) as keycloak:
            figures, profile = measure(Kubectl(plane, "bench"), keycloak.url, sizes, workdir, progress)
    finally:
        plane.stop()
    return result_of(figures, profile)
