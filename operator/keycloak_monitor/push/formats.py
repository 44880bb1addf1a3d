"""What Keycloak plugins push, parsed into events shaped like the Admin API's.

Three bodies are understood (all JSON objects, one event per request):
- seed 001's emitter, JSON format: a Keycloak Event ({"uid", "time", "type", "realmId",
  "clientId", ...}) or AdminEvent ({"uid", "time", "operationType", "resourceType", ...});
- the same emitter, FLATBUFFER format: {"type": "Event" | "AdminEvent", "obj": base64 flatbuffer};
- Phase Two's keycloak-events webhook: {"id", "uid", "type": "access.LOGIN" | "admin.USER-CREATE"
  | "system....", "realmName", "authDetails": {...}, ...}.

An event's idempotency key is Keycloak's own event id when the body has one (so a pushed event
and the same event polled from /events are one), else the sender's `uid`.
"""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .flatbuffer import FlatbufferError, read_admin_event, read_event

Kind = Literal["user", "admin"]


class PayloadError(ValueError):
    """The body is not one of the understood formats; the message says why."""


@dataclass(frozen=True)
class PushedEvent:
    kind: Kind
    key: str  # idempotency key
    realm: str  # realm name or id, as the sender named it ("" when absent)
    event: Mapping[str, Any]  # as GET /events or /admin-events shows it

    @property
    def time(self) -> int:
        return int(self.event.get("time") or 0)


def parse(body: bytes) -> list[PushedEvent]:
    """The events in a body (none for a Phase Two system event); PayloadError if malformed."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object")
    kind_name = data.get("type")
    if "obj" in data and kind_name in ("Event", "AdminEvent"):
        return [_flatbuffer(kind_name, data["obj"])]
    if isinstance(kind_name, str) and kind_name.split(".", 1)[0] in ("access", "admin", "system"):
        return _phasetwo(data, kind_name)
    if "operationType" in data:
        return [_seed_json("admin", data)]
    if isinstance(kind_name, str):
        return [_seed_json("user", data)]
    raise PayloadError("not a Keycloak Event, AdminEvent, flatbuffer wrapper or keycloak-events webhook body")


def _key(data: Mapping[str, Any]) -> str:
    for field in ("id", "uid"):
        value = data.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    raise PayloadError("event has neither 'id' nor 'uid': it could not be de-duplicated")


def _checked(kind: Kind, event: dict[str, Any]) -> dict[str, Any]:
    if isinstance(event.get("time"), bool) or not isinstance(event.get("time"), int):
        raise PayloadError("event 'time' must be epoch milliseconds")
    required = ("type",) if kind == "user" else ("operationType", "resourceType")
    for field in required:
        if not isinstance(event.get(field), str) or not event[field]:
            raise PayloadError(f"{kind} event without '{field}'")
    return event


def _seed_json(kind: Kind, data: dict[str, Any]) -> PushedEvent:
    event = _checked(kind, dict(data))
    return PushedEvent(kind, _key(event), str(event.get("realmId") or ""), event)


def _flatbuffer(kind_name: str, obj: Any) -> PushedEvent:
    if not isinstance(obj, str):
        raise PayloadError("'obj' must be a base64 string")
    try:
        raw = base64.b64decode(obj, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("'obj' is not valid base64") from None
    kind: Kind = "user" if kind_name == "Event" else "admin"
    try:
        event = read_event(raw) if kind == "user" else read_admin_event(raw)
    except FlatbufferError as exc:
        raise PayloadError(str(exc)) from None
    return PushedEvent(kind, _key(event), str(event.get("realmId") or ""), _checked(kind, event))


def _phasetwo(data: dict[str, Any], type_name: str) -> list[PushedEvent]:
    prefix, _, rest = type_name.partition(".")
    if prefix == "system":
        return []  # app events published through the plugin, not Keycloak's
    auth = data.get("authDetails") if isinstance(data.get("authDetails"), dict) else {}
    realm = str(data.get("realmName") or data.get("realmId") or "")
    common = {k: data[k] for k in ("id", "time", "error", "details") if data.get(k) is not None}
    if prefix == "access":
        event = {
            **common,
            "type": rest,
            "realmId": realm,
            **{k: auth[k] for k in ("clientId", "userId", "ipAddress", "sessionId") if auth.get(k)},
        }
        return [PushedEvent("user", _key(data), realm, _checked("user", event))]
    operation = data.get("operationType") or rest.rpartition("-")[2]
    resource = data.get("resourceType") or rest.rpartition("-")[0]
    event = {
        **common,
        "realmId": realm,
        "operationType": operation,
        "resourceType": resource,
        "authDetails": auth,
        **{k: data[k] for k in ("resourcePath", "representation") if data.get(k) is not None},
    }
    return [PushedEvent("admin", _key(data), realm, _checked("admin", event))]
