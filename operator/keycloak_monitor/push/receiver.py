"""The push endpoint: POST /push/{namespace}/{monitor} on the operator's (or standalone's) port.

Every answer says what happened in a JSON body and in `keycloak_monitor_push_requests_total`:
200 counted or already seen; 400 malformed; 401 bad credentials; 404 no such monitor taking
pushes; 409 too old to de-duplicate (replay); 413 too large; 422 another realm; 503 with
Retry-After when events cannot be stored now (queue full, Keycloak or the store unavailable, a
standby replica), so the sender keeps them and retries. Nothing is counted unless the whole body
is accepted.
"""

import logging

from aiohttp import web
from prometheus_client import Counter

from ..config import MonitorKey
from ..errors import CollectionError
from .auth import authorized
from .formats import PayloadError, parse
from .target import PushRefused, PushTarget

log = logging.getLogger(__name__)

PATH = "/push/{namespace}/{name}"
MAX_BODY = 256 * 1024  # one event; representations of large admin changes fit with room

# Pushes to a monitor are counted in its keycloak_monitor_push_requests_total; these have none.
UNROUTED = Counter(
    "keycloak_monitor_push_unrouted_requests", "Pushes refused because no monitor takes pushes at their path."
)


class PushRegistry:
    """The monitors that take pushed events, by namespace and name."""

    def __init__(self) -> None:
        self._targets: dict[MonitorKey, PushTarget] = {}

    def __bool__(self) -> bool:
        return bool(self._targets)

    def get(self, key: MonitorKey) -> PushTarget | None:
        return self._targets.get(key)

    def add(self, key: MonitorKey, target: PushTarget) -> None:
        self._targets[key] = target

    def remove(self, key: MonitorKey, target: PushTarget) -> None:
        if self._targets.get(key) is target:
            del self._targets[key]


def _answer(refusal: PushRefused) -> web.Response:
    headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else {}
    if refusal.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="keycloak-monitor push"'
    return web.json_response({"error": refusal.result, "message": str(refusal)}, status=refusal.status, headers=headers)


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PushRefused(413, "too_large", f"body over {MAX_BODY} bytes")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise PushRefused(413, "too_large", f"body over {MAX_BODY} bytes")
    return body


async def handle_push(request: web.Request) -> web.Response:
    registry: PushRegistry = request.app[REGISTRY_KEY]
    key = MonitorKey(request.match_info["namespace"], request.match_info["name"])
    target = registry.get(key)
    try:
        if target is None and not registry:
            # A standby replica (or one still starting) runs no monitor: the sender retries and
            # reaches the active one.
            raise PushRefused(503, "unavailable", "this replica serves no monitor now", retry_after=5)
        if target is None:
            raise PushRefused(404, "unknown_monitor", f"no monitor {key} takes pushed events")
        monitor = target.monitor()
    except PushRefused as refusal:
        UNROUTED.inc()
        return _answer(refusal)
    try:
        body = await _read_body(request)
        try:
            credentials = await target.credentials()
        except CollectionError as exc:  # the Secret is missing or unreadable: the sender retries
            raise PushRefused(503, "unavailable", exc.message, retry_after=30) from None
        if not credentials.configured:
            raise PushRefused(503, "unavailable", "the monitor's push credentials are not set", retry_after=30)
        if not authorized(credentials, request.headers, body):
            raise PushRefused(401, "unauthorized", "wrong or missing credentials or signature")
        try:
            events = parse(body)
        except PayloadError as exc:
            raise PushRefused(400, "malformed", str(exc)) from None
        accepted = await target.accept(events)
    except PushRefused as refusal:
        if refusal.status >= 500:
            log.warning("push to %s refused: %s", key, refusal)
        target.record(monitor, refusal.result)
        return _answer(refusal)
    target.record(monitor, "counted" if accepted.counted else "duplicate" if accepted.duplicates else "ignored")
    return web.json_response(
        {"counted": accepted.counted, "duplicates": accepted.duplicates, "ignored": accepted.ignored}
    )


REGISTRY_KEY = web.AppKey("push_registry", PushRegistry)


def add_push_routes(app: web.Application, registry: PushRegistry) -> None:
    app[REGISTRY_KEY] = registry
    app.router.add_post(PATH, handle_push)
