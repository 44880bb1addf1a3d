"""Reader of the seed 001 emitter's flatbuffers (its published `event.fbs`), into the Admin
API's JSON shape so pushed events count like polled ones.

Schema (field slots in order; enums are bytes indexing the lists below):
    table Event      { uid:long; time:long; type:EventType; realmId; clientId; userId;
                       sessionId; ipAddress; error; details:[Tuple] }
    table AdminEvent { uid:long; time:long; realmId; authDetails:AuthDetails;
                       resourceType:ResourceType; operationType:OperationType;
                       resourcePath; representation; error }
    table AuthDetails { realmId; clientId; userId; ipAddress }
    table Tuple       { key; value }
"""

import struct
from collections.abc import Sequence
from typing import Any

import flatbuffers
from flatbuffers import number_types
from flatbuffers.table import Table

EVENT_TYPES = [
    "LOGIN",
    "LOGIN_ERROR",
    "REGISTER",
    "REGISTER_ERROR",
    "LOGOUT",
    "LOGOUT_ERROR",
    "CODE_TO_TOKEN",
    "CODE_TO_TOKEN_ERROR",
    "CLIENT_LOGIN",
    "CLIENT_LOGIN_ERROR",
    "REFRESH_TOKEN",
    "REFRESH_TOKEN_ERROR",
    "VALIDATE_ACCESS_TOKEN",
    "VALIDATE_ACCESS_TOKEN_ERROR",
    "INTROSPECT_TOKEN",
    "INTROSPECT_TOKEN_ERROR",
    "FEDERATED_IDENTITY_LINK",
    "FEDERATED_IDENTITY_LINK_ERROR",
    "REMOVE_FEDERATED_IDENTITY",
    "REMOVE_FEDERATED_IDENTITY_ERROR",
    "UPDATE_EMAIL",
    "UPDATE_EMAIL_ERROR",
    "UPDATE_PROFILE",
    "UPDATE_PROFILE_ERROR",
    "UPDATE_PASSWORD",
    "UPDATE_PASSWORD_ERROR",
    "UPDATE_TOTP",
    "UPDATE_TOTP_ERROR",
    "VERIFY_EMAIL",
    "VERIFY_EMAIL_ERROR",
    "REMOVE_TOTP",
    "REMOVE_TOTP_ERROR",
    "REVOKE_GRANT",
    "REVOKE_GRANT_ERROR",
    "SEND_VERIFY_EMAIL",
    "SEND_VERIFY_EMAIL_ERROR",
    "SEND_RESET_PASSWORD",
    "SEND_RESET_PASSWORD_ERROR",
    "SEND_IDENTITY_PROVIDER_LINK",
    "SEND_IDENTITY_PROVIDER_LINK_ERROR",
    "RESET_PASSWORD",
    "RESET_PASSWORD_ERROR",
    "RESTART_AUTHENTICATION",
    "RESTART_AUTHENTICATION_ERROR",
    "INVALID_SIGNATURE",
    "INVALID_SIGNATURE_ERROR",
    "REGISTER_NODE",
    "REGISTER_NODE_ERROR",
    "UNREGISTER_NODE",
    "UNREGISTER_NODE_ERROR",
    "USER_INFO_REQUEST",
    "USER_INFO_REQUEST_ERROR",
    "IDENTITY_PROVIDER_LINK_ACCOUNT",
    "IDENTITY_PROVIDER_LINK_ACCOUNT_ERROR",
    "IDENTITY_PROVIDER_LOGIN",
    "IDENTITY_PROVIDER_LOGIN_ERROR",
    "IDENTITY_PROVIDER_FIRST_LOGIN",
    "IDENTITY_PROVIDER_FIRST_LOGIN_ERROR",
    "IDENTITY_PROVIDER_POST_LOGIN",
    "IDENTITY_PROVIDER_POST_LOGIN_ERROR",
    "IDENTITY_PROVIDER_RESPONSE",
    "IDENTITY_PROVIDER_RESPONSE_ERROR",
    "IDENTITY_PROVIDER_RETRIEVE_TOKEN",
    "IDENTITY_PROVIDER_RETRIEVE_TOKEN_ERROR",
    "IMPERSONATE",
    "IMPERSONATE_ERROR",
    "CUSTOM_REQUIRED_ACTION",
    "CUSTOM_REQUIRED_ACTION_ERROR",
    "EXECUTE_ACTIONS",
    "EXECUTE_ACTIONS_ERROR",
    "EXECUTE_ACTION_TOKEN",
    "EXECUTE_ACTION_TOKEN_ERROR",
    "CLIENT_INFO",
    "CLIENT_INFO_ERROR",
    "CLIENT_REGISTER",
    "CLIENT_REGISTER_ERROR",
    "CLIENT_UPDATE",
    "CLIENT_UPDATE_ERROR",
    "CLIENT_DELETE",
    "CLIENT_DELETE_ERROR",
    "CLIENT_INITIATED_ACCOUNT_LINKING",
    "CLIENT_INITIATED_ACCOUNT_LINKING_ERROR",
    "TOKEN_EXCHANGE",
    "TOKEN_EXCHANGE_ERROR",
    "PERMISSION_TOKEN",
    "PERMISSION_TOKEN_ERROR",
    "UNKNOWN",
]
RESOURCE_TYPES = [
    "REALM",
    "REALM_ROLE",
    "REALM_ROLE_MAPPING",
    "REALM_SCOPE_MAPPING",
    "AUTH_FLOW",
    "AUTH_EXECUTION_FLOW",
    "AUTH_EXECUTION",
    "AUTHENTICATOR_CONFIG",
    "REQUIRED_ACTION",
    "IDENTITY_PROVIDER",
    "IDENTITY_PROVIDER_MAPPER",
    "PROTOCOL_MAPPER",
    "USER",
    "USER_LOGIN_FAILURE",
    "USER_SESSION",
    "USER_FEDERATION_PROVIDER",
    "USER_FEDERATION_MAPPER",
    "GROUP",
    "GROUP_MEMBERSHIP",
    "CLIENT",
    "CLIENT_INITIAL_ACCESS_MODEL",
    "CLIENT_ROLE",
    "CLIENT_ROLE_MAPPING",
    "CLIENT_SCOPE",
    "CLIENT_SCOPE_MAPPING",
    "CLUSTER_NODE",
    "COMPONENT",
    "AUTHORIZATION_RESOURCE_SERVER",
    "AUTHORIZATION_RESOURCE",
    "AUTHORIZATION_SCOPE",
    "AUTHORIZATION_POLICY",
    "UNKNOWN",
]
OPERATION_TYPES = ("CREATE", "UPDATE", "DELETE", "ACTION")


class FlatbufferError(ValueError):
    """The bytes are not an Event or AdminEvent of the emitter's schema."""


class _Reader:
    """Typed access to one table's fields by slot number (vtable entry 4 + 2 * slot)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    @classmethod
    def root(cls, buf: bytes) -> "_Reader":
        if len(buf) < 8:
            raise FlatbufferError("too short for a flatbuffer")
        data = bytearray(buf)
        return cls(Table(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0)))

    def _at(self, slot: int) -> int:
        """Absolute position of a field, or 0 when absent (its default applies)."""
        offset = self._table.Offset(4 + 2 * slot)
        return offset + self._table.Pos if offset else 0

    def long(self, slot: int) -> int:
        at = self._at(slot)
        return int(self._table.Get(number_types.Int64Flags, at)) if at else 0

    def byte(self, slot: int) -> int:
        at = self._at(slot)
        return int(self._table.Get(number_types.Int8Flags, at)) if at else 0

    def string(self, slot: int) -> str | None:
        at = self._at(slot)
        return self._table.String(at).decode() if at else None

    def table(self, slot: int) -> "_Reader | None":
        at = self._at(slot)
        return _Reader(Table(self._table.Bytes, self._table.Indirect(at))) if at else None

    def tables(self, slot: int) -> list["_Reader"]:
        offset = self._table.Offset(4 + 2 * slot)
        if not offset:
            return []
        start = self._table.Vector(offset)
        return [
            _Reader(Table(self._table.Bytes, self._table.Indirect(start + 4 * i)))
            for i in range(self._table.VectorLen(offset))
        ]


def _enum(names: Sequence[str], value: int) -> str:
    return names[value] if 0 <= value < len(names) else "UNKNOWN"


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def read_event(buf: bytes) -> dict[str, Any]:
    """A user Event, as GET /events would show it, plus the emitter's `uid`."""
    try:
        event = _Reader.root(buf)
        details = {t.string(0) or "": t.string(1) or "" for t in event.tables(9)}
        return _without_none(
            {
                "uid": str(event.long(0)),
                "time": event.long(1),
                "type": _enum(EVENT_TYPES, event.byte(2)),
                "realmId": event.string(3),
                "clientId": event.string(4),
                "userId": event.string(5),
                "sessionId": event.string(6),
                "ipAddress": event.string(7),
                "error": event.string(8),
                "details": details or None,
            }
        )
    except (IndexError, UnicodeDecodeError, ValueError, struct.error) as exc:
        raise FlatbufferError(f"not an Event flatbuffer: {exc}") from None


def read_admin_event(buf: bytes) -> dict[str, Any]:
    """An AdminEvent, as GET /admin-events would show it, plus the emitter's `uid`."""
    try:
        event = _Reader.root(buf)
        auth = event.table(3)
        auth_details = (
            _without_none(
                {
                    "realmId": auth.string(0),
                    "clientId": auth.string(1),
                    "userId": auth.string(2),
                    "ipAddress": auth.string(3),
                }
            )
            if auth
            else None
        )
        return _without_none(
            {
                "uid": str(event.long(0)),
                "time": event.long(1),
                "realmId": event.string(2),
                "authDetails": auth_details,
                "resourceType": _enum(RESOURCE_TYPES, event.byte(4)),
                "operationType": _enum(OPERATION_TYPES, event.byte(5)),
                "resourcePath": event.string(6),
                "representation": event.string(7),
                "error": event.string(8),
            }
        )
    except (IndexError, UnicodeDecodeError, ValueError, struct.error) as exc:
        raise FlatbufferError(f"not an AdminEvent flatbuffer: {exc}") from None
