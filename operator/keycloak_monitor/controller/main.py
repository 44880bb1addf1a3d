"""`keycloak-monitor run`: kopf and the shared /metrics endpoint in one event loop."""

import asyncio
import logging
from typing import Any

import kopf

from ..config import ConfigError
from ..exposition import MetricsStore
from ..server import make_app, start_server
from . import GROUP
from .handlers import register
from .kube import connect

log = logging.getLogger(__name__)


def parse_selector(text: str) -> dict[str, Any]:
    """`key=value,key2` -> kopf label filters (equality and existence, as kubectl -l)."""
    labels: dict[str, Any] = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in term or any(c in term for c in "()<>"):
            raise ConfigError("--selector", f"only key=value and key terms are supported, got {term!r}")
        key, sep, value = term.partition("=")
        key, value = key.strip(), value.strip().lstrip("=").strip()
        if not key or (sep and not value):
            raise ConfigError("--selector", f"bad term {term!r}")
        labels[key] = value if sep else kopf.PRESENT
    return labels


def configure(settings: kopf.OperatorSettings) -> None:
    # Our status schema is strict: kopf keeps its own progress in annotations instead.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Our Events mark Ready transitions; kopf's own log lines become Events only as warnings.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300


async def operate(namespaces: list[str], labels: dict[str, Any], host: str, port: int) -> None:
    store = MetricsStore()
    ready = asyncio.Event()
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod the ServiceAccount, elsewhere KUBECONFIG: the same order as kube.connect().
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    async with connect() as kube:
        register(registry, store, kube, labels)
        runner = await start_server(make_app(store, ready=ready.is_set), host, port)
        log.info("serving metrics on http://%s:%d/metrics", host, port)
        try:
            await kopf.operator(
                registry=registry,
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                ready_flag=ready,
            )
        finally:
            await runner.cleanup()


def run_operator(namespaces: list[str], selector: str, host: str, port: int) -> int:
    labels = parse_selector(selector)
    asyncio.run(operate(namespaces, labels, host, port))
    return 0
