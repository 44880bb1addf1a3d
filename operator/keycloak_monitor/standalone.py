"""Standalone mode: monitors from a file or the environment, one endpoint, no Kubernetes."""

import asyncio
import logging
import signal
from contextlib import suppress

from .config import Credentials
from .exposition import MetricsStore
from .monitor import Monitor, run_every
from .push.auth import PushCredentials
from .push.receiver import PushRegistry, add_push_routes
from .push.target import PushTarget
from .server import make_app, start_server
from .standalone_config import StandaloneConfig

log = logging.getLogger(__name__)


async def run_standalone(config: StandaloneConfig, host: str = "0.0.0.0", stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT), then end every monitor cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    store = MetricsStore()
    monitors = [Monitor(m.key, m.spec, store) for m in config.monitors]
    app = make_app(store)
    registry = PushRegistry()
    add_push_routes(app, registry)
    for monitor, entry in zip(monitors, config.monitors, strict=True):
        if entry.push_credentials is not None:
            registry.add(monitor.key, _push_target(monitor, entry.push_credentials))
    runner = await start_server(app, host, config.port)
    log.info("serving %d monitor(s) on http://%s:%d/metrics", len(monitors), host, config.port)

    async def sleep(seconds: float) -> bool:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        return stop.is_set()

    async def collect_forever(monitor: Monitor, credentials: Credentials) -> None:
        await run_every(lambda: monitor.spec.interval, lambda: monitor.collect(credentials), sleep)

    tasks = [
        asyncio.create_task(collect_forever(monitor, entry.credentials))
        for monitor, entry in zip(monitors, config.monitors, strict=True)
    ]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(m.close() for m in monitors), return_exceptions=True)
        await runner.cleanup()
        log.info("stopped")


def _push_target(monitor: Monitor, credentials: PushCredentials) -> PushTarget:
    async def fixed() -> PushCredentials:
        return credentials

    return PushTarget(lambda: monitor, fixed)
