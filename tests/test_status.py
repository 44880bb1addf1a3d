"""Status as users read it with kubectl: written on change only, transitions announced once."""

from datetime import UTC, datetime, timedelta

from keycloak_monitor.controller.status import Report, changes, desired_status, ready_transition
from keycloak_monitor.errors import CollectionError, Reason
from keycloak_monitor.snapshot import AgeHistogram, ClientSessions, EventCounts, RealmSnapshot, StatusWarning

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def snapshot(sessions: int = 3, events: bool = True, warnings: tuple[StatusWarning, ...] = ()) -> RealmSnapshot:
    return RealmSnapshot(
        clients=(ClientSessions("web", sessions, 0),),
        user_sessions=sessions,
        connected_users=sessions,
        session_ages=AgeHistogram.of([1.0] * sessions),
        users=10,
        offline_enabled=True,
        user_events=EventCounts(totals={}, created=0.0) if events else None,
        warnings=warnings,
    )


def apply(status: dict, report: Report, now: datetime = NOW) -> tuple[dict, dict]:
    desired = desired_status(status, report, now)
    patch = changes(status, desired)
    return {**status, **patch}, patch


def test_a_steady_monitor_writes_nothing_until_the_heartbeat():
    status, first = apply({}, Report(1, snapshot()))
    assert first["sessions"] == 3 and first["lastSuccessfulCollection"] == "2026-11-22T12:00:00Z"
    status, again = apply(status, Report(1, snapshot()), NOW + timedelta(minutes=1))
    assert again == {}
    _, heartbeat = apply(status, Report(1, snapshot()), NOW + timedelta(minutes=5))
    assert set(heartbeat) == {"lastSuccessfulCollection"}


def test_moving_numbers_alone_are_written_at_most_once_per_heartbeat():
    status, _ = apply({}, Report(1, snapshot()))
    writes = []
    for second in range(30, 600, 30):  # a live realm: the count moves every cycle for ten minutes
        status, patch = apply(status, Report(1, snapshot(sessions=4 + second)), NOW + timedelta(seconds=second))
        if patch:
            writes.append((second, patch))
    assert [second for second, _ in writes] == [300]
    patch = writes[0][1]
    assert patch["sessions"] == 304 and patch["lastSuccessfulCollection"] == "2026-11-22T12:05:00Z"
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "304 sessions, 10 users"


def test_a_transition_is_written_at_once_with_the_current_numbers():
    status, _ = apply({}, Report(1, snapshot()))
    failure = Report(1, error=CollectionError(Reason.TIMEOUT, "timed out"))
    status, patch = apply(status, failure, NOW + timedelta(seconds=30))
    assert next(c for c in patch["conditions"] if c["type"] == "Ready")["status"] == "False"
    status, patch = apply(status, Report(1, snapshot(sessions=7)), NOW + timedelta(seconds=60))
    assert patch["sessions"] == 7
    assert next(c for c in patch["conditions"] if c["type"] == "Ready")["message"] == "7 sessions, 10 users"


def test_a_spec_change_carries_the_current_numbers():
    status, _ = apply({}, Report(1, snapshot()))
    _, patch = apply(status, Report(2, snapshot(sessions=4)), NOW + timedelta(seconds=30))
    assert patch["sessions"] == 4 and patch["observedGeneration"] == 2
    assert patch["lastSuccessfulCollection"] == "2026-11-22T12:00:30Z"


def test_a_failure_keeps_the_last_numbers_and_is_announced_once():
    status, _ = apply({}, Report(1, snapshot()))
    failure = Report(1, error=CollectionError(Reason.AUTH, "credentials rejected"))
    desired = desired_status(status, failure, NOW + timedelta(seconds=30))
    assert ready_transition(status, desired) == ("Warning", "AuthFailed", "credentials rejected")
    status, patch = apply(status, failure, NOW + timedelta(seconds=30))
    assert "sessions" not in patch and "lastSuccessfulCollection" not in patch
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-11-22T12:00:30Z"
    again = desired_status(status, failure, NOW + timedelta(seconds=60))
    assert ready_transition(status, again) is None and changes(status, again) == {}


def test_a_secret_problem_has_its_own_reason():
    error = CollectionError(Reason.CONFIG, "Secret ns/x not found", condition="SecretNotFound")
    status, _ = apply({}, Report(2, error=error))
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "SecretNotFound", 2)


def test_events_recorded_only_when_events_are_counted():
    disabled = StatusWarning("EventsDisabled", "realm 'r' does not save user events")
    status, _ = apply({}, Report(1, snapshot(warnings=(disabled,))))
    events = next(c for c in status["conditions"] if c["type"] == "EventsRecorded")
    assert (events["status"], events["reason"], events["message"]) == ("False", "EventsDisabled", disabled.message)
    quiet, _ = apply({}, Report(1, snapshot(events=False)))
    assert [c["type"] for c in quiet["conditions"]] == ["Ready"]
