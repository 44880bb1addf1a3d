"""Start-up jitter: 500 resumed monitors spread their first collections over the window."""

from keycloak_monitor.config import MonitorKey
from keycloak_monitor.jitter import MAX_SPREAD, start_delay


def test_the_delay_is_stable_per_monitor_and_bounded_by_the_interval():
    key = MonitorKey("team-a", "sso")
    assert start_delay(key, 60) == start_delay(MonitorKey("team-a", "sso"), 60)
    assert 0 <= start_delay(key, 5) < 5
    assert all(0 <= start_delay(MonitorKey("ns", f"m{i}"), 600) < MAX_SPREAD for i in range(100))


def test_many_monitors_spread_over_the_window():
    delays = [start_delay(MonitorKey(f"ns{i % 7}", f"monitor-{i}"), 30) for i in range(500)]
    seconds = [0] * 30
    for delay in delays:
        seconds[int(delay)] += 1
    # Evenly spread: every second of the window has some, none has a crowd (expected ~17).
    assert min(seconds) >= 5 and max(seconds) <= 35


def test_a_zero_interval_has_no_delay():
    assert start_delay(MonitorKey("ns", "m"), 0) == 0.0
