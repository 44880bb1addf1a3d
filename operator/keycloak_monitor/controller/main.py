"""`keycloak-monitor run`: kopf and the shared /metrics endpoint in one event loop."""

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from ..config import ConfigError
from ..exposition import MetricsStore
from ..http_pool import DEFAULT_MAX_REQUESTS, HttpPools
from ..metrics_tls import CertificateFiles, self_signed_context
from ..push.receiver import PushRegistry, add_push_routes
from ..server import make_app, start_server
from ..spec_policy import SpecPolicy
from ..targets import TargetPolicy
from . import GROUP
from .handlers import register
from .kube import API_TIMEOUT, connect
from .leadership import PEERING_LIFETIME, Leadership, standby_priority
from .liveness import ApiLiveness
from .metrics_auth import KubernetesMetricsAuth
from .process_metrics import register_task_gauge
from .secret_watch import SecretWatch

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


@dataclass(frozen=True)
class OperatorOptions:
    namespaces: list[str] = field(default_factory=list)
    selector: str = ""
    host: str = "0.0.0.0"
    port: int = 9091
    watch_timeout: float = 60.0
    liveness_grace: float = 120.0
    peering: str = ""  # a KopfPeering name: hot standby between replicas; empty: standalone
    targets: TargetPolicy = field(default_factory=TargetPolicy)
    max_requests_per_keycloak: int = DEFAULT_MAX_REQUESTS  # all monitors of one Keycloak together
    spec_policy: SpecPolicy = field(default_factory=SpecPolicy)
    metrics_auth: bool = False  # /metrics only for tokens allowed `get` on it (TokenReview + SubjectAccessReview)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_self_signed: bool = False

    def certificate(self) -> CertificateFiles | ssl.SSLContext | None:
        """Files (watched for renewals), a self-signed context, or None for plain HTTP."""
        if self.tls_cert_file and self.tls_key_file:
            return CertificateFiles(self.tls_cert_file, self.tls_key_file)
        if self.tls_self_signed:
            return self_signed_context(["keycloak-monitor", "localhost"])
        return None


def configure(settings: kopf.OperatorSettings, watch_timeout: float) -> None:
    # Our status schema is strict: kopf keeps its own progress in annotations instead.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Our Events mark Ready transitions; kopf's own log lines become Events only as warnings.
    settings.posting.level = logging.WARNING
    # A watch behind a load balancer can freeze without being closed: the apiserver ends
    # each watch after watch_timeout, so one silent for longer is dead and is reconnected.
    settings.watching.server_timeout = int(watch_timeout)  # the apiserver takes whole seconds only
    settings.watching.client_timeout = watch_timeout + 10
    settings.watching.inactivity_timeout = watch_timeout + 10
    settings.watching.connect_timeout = API_TIMEOUT
    settings.networking.connect_timeout = API_TIMEOUT
    settings.networking.request_timeout = 3 * API_TIMEOUT
    settings.peering.lifetime = PEERING_LIFETIME
    settings.peering.stealth = True


async def operate(options: OperatorOptions, labels: dict[str, Any]) -> None:
    store = MetricsStore()
    register_task_gauge()
    ready = asyncio.Event()
    liveness = ApiLiveness(options.liveness_grace)
    registry = kopf.OperatorRegistry()

    leadership: Leadership | None = None
    beside: list[asyncio.Task[None]] = []  # our tasks beside kopf: liveness probe, Secret watch, TLS reload

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, options.watch_timeout)
        if leadership is not None:
            leadership.settings = settings

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        # Stopping, kopf gives the tasks begun after it started (the Secret watch's) 5 s to end
        # on their own before it cancels them: end ours now, so SIGTERM exits at once.
        for task in beside:
            task.cancel()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod the ServiceAccount, elsewhere KUBECONFIG: the same order as kube.connect().
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    async with connect() as kube:
        secrets = kube.secrets = SecretWatch(kube.api, options.namespaces, options.watch_timeout)
        if options.peering:
            await kube.ensure_peering(options.peering, options.namespaces)
            leadership = Leadership(kube, options.peering, options.namespaces)
        push = PushRegistry()
        register(
            registry,
            store,
            kube,
            labels,
            on_watch_event=liveness.answered,
            push=push,
            leadership=leadership,
            targets=options.targets,
            pools=HttpPools(options.max_requests_per_keycloak),
            spec_policy=options.spec_policy,
        )
        guard = KubernetesMetricsAuth(kube.api) if options.metrics_auth else None
        app = make_app(store, ready=ready.is_set, alive=liveness.alive, guard=guard)
        add_push_routes(app, push)
        certificate = options.certificate()
        files = certificate if isinstance(certificate, CertificateFiles) else None
        context = files.context if files else certificate
        runner = await start_server(app, options.host, options.port, context)
        scheme = "https" if context else "http"
        log.info("serving metrics on %s://%s:%d/metrics", scheme, options.host, options.port)
        try:
            async with asyncio.TaskGroup() as group:
                beside.append(group.create_task(liveness.probe(kube, every=min(10.0, options.liveness_grace / 3))))
                beside.append(group.create_task(secrets.run()))
                if files:
                    beside.append(group.create_task(files.watch()))
                try:
                    await kopf.operator(
                        registry=registry,
                        standalone=not options.peering,
                        peering_name=options.peering or None,
                        priority=standby_priority() if options.peering else None,
                        identity=leadership.identity if leadership else None,
                        clusterwide=not options.namespaces,
                        namespaces=options.namespaces,
                        ready_flag=ready,
                    )
                finally:
                    for task in beside:
                        task.cancel()
        finally:
            await runner.cleanup()


def run_operator(options: OperatorOptions) -> int:
    labels = parse_selector(options.selector)
    asyncio.run(operate(options, labels))
    return 0
