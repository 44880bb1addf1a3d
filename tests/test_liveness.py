"""Liveness and standby election. /healthz tells the kubelet to restart the pod only when
the apiserver has been silent past the grace: a short outage must not restart a healthy
operator. Of two replicas, the older one collects."""

import aiohttp

from keycloak_monitor.controller.liveness import ApiLiveness
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.server import make_app, start_server


def test_liveness_fails_only_after_the_grace():
    now = [100.0]
    liveness = ApiLiveness(grace=30, clock=lambda: now[0])
    now[0] += 29
    assert liveness.alive()
    now[0] += 2
    assert not liveness.alive()
    liveness.answered()
    assert liveness.alive()


async def test_healthz_answers_503_when_not_alive():
    alive = [True]
    runner = await start_server(make_app(MetricsStore(False), alive=lambda: alive[0]), "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            alive[0] = False
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 503
                assert "apiserver" in await response.text()
    finally:
        await runner.cleanup()


def test_the_older_standby_and_the_newest_leader_have_the_higher_peering_priority():
    from keycloak_monitor.controller.leadership import leader_priority, standby_priority

    assert standby_priority(1000.0, tiebreak=999) > standby_priority(1000.001, tiebreak=0)
    assert standby_priority(1000.0, tiebreak=1) != standby_priority(1000.0, tiebreak=2)  # same millisecond
    # A replica that starts collecting outranks every standby and every earlier leader.
    assert leader_priority(1000.0, tiebreak=0) > standby_priority(0.0, tiebreak=0)
    assert leader_priority(1000.001, tiebreak=0) > leader_priority(1000.0, tiebreak=999)
