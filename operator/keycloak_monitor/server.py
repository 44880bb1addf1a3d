"""The one HTTP endpoint: /metrics for every monitor, plus liveness and readiness."""

import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from .exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, MetricsStore


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


# Looks at a request to /metrics: None lets it through, a response refuses it (401/403).
MetricsGuard = Callable[[web.Request], Awaitable[web.Response | None]]


def make_app(
    store: MetricsStore,
    ready: Callable[[], bool] = lambda: True,
    alive: Callable[[], bool] = lambda: True,
    guard: MetricsGuard | None = None,
) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        if guard is not None and (refusal := await guard(request)) is not None:
            return refusal
        om = wants_openmetrics(request.headers.get("Accept", ""))
        body = store.render(om=om)
        response = web.Response(
            body=body, headers={"Content-Type": OPENMETRICS_CONTENT_TYPE if om else TEXT_CONTENT_TYPE}
        )
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def healthz(_: web.Request) -> web.Response:
        # Failing makes the kubelet restart the pod: only for what a restart can fix.
        return web.Response(text="ok\n") if alive() else web.Response(status=503, text="apiserver unreachable\n")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n") if ready() else web.Response(status=503, text="starting\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_server(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    return runner
