"""Collection failures, classified by the cause an operator can act on."""

from enum import StrEnum


class Reason(StrEnum):
    """Values of the `reason` label of keycloak_monitor_collection_errors_total."""

    AUTH = "auth"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    CONNECT = "connect"
    SERVER_ERROR = "server_error"
    INVALID_RESPONSE = "invalid_response"
    CONFIG = "config"


class CollectionError(Exception):
    """A failure with a reason and a message fit for a status condition (never a credential)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"
