"""Standalone mode: monitors from a file or the environment, one endpoint, no Kubernetes."""

import asyncio
import logging
import signal
from contextlib import suppress
from pathlib import Path
from typing import Any

from .config import Credentials
from .events import EventLimits
from .exposition import MetricsStore
from .http_pool import HttpPools
from .monitor import Monitor, run_every
from .notify.attach import attach_notifier
from .notify.notifier import Notifier, NotifySecrets
from .notify.state_file import read_state, write_state
from .push.auth import PushCredentials
from .push.receiver import PushRegistry, add_push_routes
from .push.target import PushTarget
from .server import make_app, start_server
from .standalone_config import StandaloneConfig, StandaloneMonitor
from .targets import TargetPolicy
from .web_config import WebConfig

log = logging.getLogger(__name__)


async def run_standalone(
    config: StandaloneConfig,
    host: str = "0.0.0.0",
    stop: asyncio.Event | None = None,
    targets: TargetPolicy | None = None,
    web: WebConfig | None = None,
) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT), then end every monitor cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    store = MetricsStore()
    pools = HttpPools(config.max_requests_per_keycloak)
    monitors = [_monitor(entry, store, config.state_dir, targets, pools) for entry in config.monitors]
    web = web or WebConfig()
    app = make_app(store, guard=web)
    registry = PushRegistry()
    add_push_routes(app, registry)
    for monitor, entry in zip(monitors, config.monitors, strict=True):
        if entry.push_credentials is not None:
            registry.add(monitor.key, _push_target(monitor, entry.push_credentials))
    runner = await start_server(app, host, config.port, web.ssl_context)
    scheme = "https" if web.ssl_context else "http"
    log.info("serving %d monitor(s) on %s://%s:%d/metrics", len(monitors), scheme, host, config.port)

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
    notifiers = [
        _notifier(monitor, entry, config.state_dir)
        for monitor, entry in zip(monitors, config.monitors, strict=True)
        if monitor.spec.notifications is not None
    ]
    tasks += [asyncio.create_task(notifier.run()) for notifier in notifiers]
    try:
        await stop.wait()
    finally:
        for notifier in notifiers:
            notifier.stop()
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


def _notifier(monitor: Monitor, entry: StandaloneMonitor, state_dir: Path) -> Notifier:
    path = state_dir / f"{monitor.key.namespace}_{monitor.key.name}.notifications.json"

    async def store(outbox: dict[str, Any]) -> None:
        await write_state(path, outbox)

    async def secrets() -> NotifySecrets:
        return entry.notify_secrets

    return attach_notifier(monitor, read_state(path), store, secrets)


def _monitor(
    entry: StandaloneMonitor, store: MetricsStore, state_dir: Path, targets: TargetPolicy | None, pools: HttpPools
) -> Monitor:
    """A monitor whose event counts continue from its file in the state directory."""
    path = state_dir / f"{entry.key.namespace}_{entry.key.name}.events.json"

    async def store_events(events: dict[str, Any]) -> None:
        await write_state(path, events)

    return Monitor(
        entry.key,
        entry.spec,
        store,
        stored_events=read_state(path),
        persist_events=store_events,
        event_limits=EventLimits(persist_every=0.0),  # a local file is cheap to write: after every page
        targets=targets,
        pools=pools,
    )
