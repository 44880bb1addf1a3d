"""The fault matrix of docs/faults.md: each row names the test that makes the fault for
real, and the tests record what they observed. `python -m tests.fault_matrix` rewrites the
doc from the last run; test_fault_matrix_doc fails when the doc and the tests disagree."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "faults.md"
RESULTS = ROOT / ".pytest_cache" / "fault-results.json"


@dataclass(frozen=True)
class Row:
    fault: str
    test: str  # tests/<module>.py::<function>
    expected: str


ROWS = (
    Row(
        "apiserver stopped, then restarted",
        "test_resilience.py::test_apiserver_stopped_then_restarted",
        "`up 0`, reason `kubernetes`, no duration observed; back to `up 1` on the next cycle",
    ),
    Row(
        "etcd restarted",
        "test_resilience.py::test_etcd_restarted",
        "`up 0`, reason `kubernetes` while etcd is away; `up 1` on the next cycle",
    ),
    Row(
        "apiserver frozen (accepts, answers nothing)",
        "test_resilience.py::test_apiserver_frozen",
        "the Secret read gives up after its deadline: `up 0`, reason `kubernetes`, no stale `up 1`",
    ),
    Row(
        "apiserver slow (through a delaying proxy)",
        "test_resilience.py::test_apiserver_slow",
        "slower than the 10 s deadline (2 s in the test): `up 0`, reason `kubernetes`; slow within it: `up 1`",
    ),
    Row(
        "Secret deleted, then recreated",
        "test_resilience.py::test_secret_deleted_then_recreated",
        "`up 0`, reason `config`, Ready=False/SecretNotFound; `up 1` on the next cycle",
    ),
    Row(
        "Secret rotated",
        "test_resilience.py::test_secret_rotated",
        "the next cycle logs in with the new password; no failure",
    ),
    Row(
        "CA Secret broken, then fixed",
        "test_resilience.py::test_ca_secret_broken_then_fixed",
        "`up 0`, reason `config`, the message names the CA Secret; the fixed CA is used next cycle",
    ),
    Row(
        "invalid spec",
        "test_resilience.py::test_invalid_spec_keeps_up_zero",
        "`up 0` and errors{reason=config} stay (no vanished series); fixed spec: `up 1`",
    ),
    Row(
        "spec change with a 1 h interval",
        "test_resilience.py::test_spec_change_applies_within_seconds",
        "the new realm is collected within seconds, not after the interval",
    ),
    Row(
        "watch silently frozen",
        "test_resilience.py::test_frozen_watch_is_reconnected",
        "kopf drops the silent watch after its inactivity timeout; spec changes apply again",
    ),
    Row(
        "apiserver unreachable past the liveness grace",
        "test_resilience.py::test_healthz_fails_when_the_apiserver_is_gone",
        "`/healthz` answers 503, so the kubelet restarts the pod; 200 again once it answers",
    ),
    Row(
        "active replica SIGKILLed, standby running",
        "test_resilience.py::test_standby_takes_over_from_the_active_replica[SIGKILL]",
        "the standby collects within ~30 s (peering lifetime 20 s); never two collectors; "
        "event counters continue (no reset, each event once)",
    ),
    Row(
        "active replica SIGSTOPped, standby running, then SIGCONTed",
        "test_resilience.py::test_standby_takes_over_from_the_active_replica[SIGSTOP]",
        "the standby collects within ~30 s; the woken replica yields to it and serves no count "
        "made meanwhile (no event counted twice across the two); counters continue",
    ),
    Row(
        "both replicas started at once",
        "test_resilience.py::test_two_replicas_started_at_once_elect_one",
        "exactly one replica collects, the other stays idle",
    ),
    Row(
        "Secret watch resumed after etcd compacted its history",
        "test_resilience.py::test_a_watch_too_old_to_resume_lists_again",
        "the apiserver answers 410 Gone; the Secrets are listed again at once, nothing logged, no change missed",
    ),
    Row(
        "monitor deleted after the operator is gone",
        "test_resilience.py::test_uninstall_releases_monitors_the_operator_left_behind",
        "held by the finalizer; the README's uninstall command releases it",
    ),
    Row(
        "50 monitors created and deleted in a loop",
        "test_resilience.py::test_monitor_churn_returns_to_baseline",
        "series, asyncio tasks and memory back at their baseline (5 min run: `make bench`)",
    ),
    Row(
        "operator SIGKILLed mid-collection",
        "test_resilience.py::test_operator_killed_mid_collection_counts_no_event_twice",
        "the restarted process resumes from the status cursor; no event counted twice",
    ),
)


def load_results() -> dict[str, dict[str, str]]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def record(test: str, observed: str, recovery: float | None) -> None:
    """Called by a fault test once its fault is over and the monitor recovered."""
    results = load_results()
    results[test] = {"observed": observed, "recovery": "-" if recovery is None else f"{recovery:.1f} s"}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))


HEADER = (
    "# Fault matrix\n\n"
    "Every row is a test that makes the fault for real (real kube-apiserver and etcd, real\n"
    "Keycloak). Observed values and recovery times (from the end of the fault to `up 1`) come\n"
    "from the last run: `python -m tests.fault_matrix` rewrites this file, and\n"
    "`tests/test_resilience.py::test_fault_matrix_doc` fails when it and the tests disagree.\n\n"
    "| Fault | Test | Expected | Observed | Recovery |\n"
    "|---|---|---|---|---|\n"
)


def parse_doc(text: str) -> dict[str, tuple[str, str, str, str]]:
    """test -> (fault, expected, observed, recovery), from the doc's table."""
    rows = {}
    for line in text.splitlines()[len(HEADER.splitlines()) :]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5:
            fault, test, expected, observed, recovery = cells
            rows[test.strip("`")] = (fault, expected, observed, recovery)
    return rows


def render(previous: dict[str, tuple[str, str, str, str]], results: dict[str, dict[str, str]]) -> str:
    lines = []
    for row in ROWS:
        found = results.get(row.test)
        _, _, observed, recovery = previous.get(row.test, ("", "", "not run yet", "-"))
        if found:
            observed, recovery = found["observed"], found["recovery"]
        lines.append(f"| {row.fault} | `{row.test}` | {row.expected} | {observed} | {recovery} |")
    return HEADER + "\n".join(lines) + "\n"


def main() -> None:
    previous = parse_doc(DOC.read_text()) if DOC.exists() else {}
    DOC.write_text(render(previous, load_results()))
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
