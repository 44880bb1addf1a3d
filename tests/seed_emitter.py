"""Bodies as seed 001's event emitter sends them, built from its published schema (event.fbs)
and its JSON format (Keycloak's Event/AdminEvent with a snowflake `uid`), so the receiver is
tested against the emitter's format rather than against itself."""

import base64
import itertools
import json
import time
from typing import Any

import flatbuffers

from keycloak_monitor.push.flatbuffer import EVENT_TYPES, OPERATION_TYPES, RESOURCE_TYPES

_sequence = itertools.count(1)


def snowflake() -> int:
    """A snowflake-like id: milliseconds, then datacenter 1, node 1, then a sequence number."""
    return (int(time.time() * 1000) << 22) | (1 << 17) | (1 << 12) | (next(_sequence) & 0xFFF)


def user_event(
    realm_id: str,
    event_type: str = "LOGIN",
    *,
    client_id: str = "web",
    user_id: str = "u-1",
    error: str | None = None,
    **details: str,
) -> dict[str, Any]:
    event = {
        "uid": snowflake(),
        "time": int(time.time() * 1000),
        "type": event_type,
        "realmId": realm_id,
        "clientId": client_id,
        "userId": user_id,
        "sessionId": "s-1",
        "ipAddress": "127.0.0.1",
        "details": details or {"username": "someone"},
    }
    if error:
        event["error"] = error
    return event


def admin_event(realm_id: str, operation: str = "CREATE", resource: str = "USER") -> dict[str, Any]:
    return {
        "uid": snowflake(),
        "time": int(time.time() * 1000),
        "realmId": realm_id,
        "authDetails": {"realmId": "master", "clientId": "admin-cli", "userId": "admin-1", "ipAddress": "127.0.0.1"},
        "resourceType": resource,
        "operationType": operation,
        "resourcePath": "users/u-2",
        "representation": "{}",
    }


def _strings(builder: flatbuffers.Builder, values: dict[str, Any]) -> dict[str, int]:
    return {k: builder.CreateString(v) for k, v in values.items() if isinstance(v, str)}


def flat_user_event(event: dict[str, Any]) -> bytes:
    """`event` (as user_event makes it) as the emitter's Event flatbuffer."""
    builder = flatbuffers.Builder(256)
    tuples = []
    for key, value in event.get("details", {}).items():
        key_at, value_at = builder.CreateString(key), builder.CreateString(value)
        builder.StartObject(2)
        builder.PrependUOffsetTRelativeSlot(0, key_at, 0)
        builder.PrependUOffsetTRelativeSlot(1, value_at, 0)
        tuples.append(builder.EndObject())
    builder.StartVector(4, len(tuples), 4)
    for at in reversed(tuples):
        builder.PrependUOffsetTRelative(at)
    details = builder.EndVector()
    strings = _strings(builder, event)
    builder.StartObject(10)
    builder.PrependInt64Slot(0, event["uid"], 0)
    builder.PrependInt64Slot(1, event["time"], 0)
    builder.PrependInt8Slot(2, EVENT_TYPES.index(event["type"]), 0)
    for slot, field in enumerate(("realmId", "clientId", "userId", "sessionId", "ipAddress", "error"), start=3):
        if field in strings:
            builder.PrependUOffsetTRelativeSlot(slot, strings[field], 0)
    builder.PrependUOffsetTRelativeSlot(9, details, 0)
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())


def flat_admin_event(event: dict[str, Any]) -> bytes:
    """`event` (as admin_event makes it) as the emitter's AdminEvent flatbuffer."""
    builder = flatbuffers.Builder(256)
    auth_strings = _strings(builder, event["authDetails"])
    builder.StartObject(4)
    for slot, field in enumerate(("realmId", "clientId", "userId", "ipAddress")):
        if field in auth_strings:
            builder.PrependUOffsetTRelativeSlot(slot, auth_strings[field], 0)
    auth = builder.EndObject()
    strings = _strings(builder, event)
    builder.StartObject(9)
    builder.PrependInt64Slot(0, event["uid"], 0)
    builder.PrependInt64Slot(1, event["time"], 0)
    if "realmId" in strings:
        builder.PrependUOffsetTRelativeSlot(2, strings["realmId"], 0)
    builder.PrependUOffsetTRelativeSlot(3, auth, 0)
    builder.PrependInt8Slot(4, RESOURCE_TYPES.index(event["resourceType"]), 0)
    builder.PrependInt8Slot(5, OPERATION_TYPES.index(event["operationType"]), 0)
    for slot, field in enumerate(("resourcePath", "representation", "error"), start=6):
        if field in strings:
            builder.PrependUOffsetTRelativeSlot(slot, strings[field], 0)
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())


def wrapped(kind: str, flatbuffer: bytes) -> bytes:
    """The emitter's FLATBUFFER format: a JSON wrapper with the base64 flatbuffer."""
    return json.dumps({"type": kind, "obj": base64.b64encode(flatbuffer).decode()}).encode()
