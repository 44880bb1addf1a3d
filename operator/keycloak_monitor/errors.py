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
    KUBERNETES = "kubernetes"  # the apiserver failed or did not answer (Secret read, status write)
    INTERNAL = "internal"  # an exception nobody foresaw: a bug to report, not a Keycloak fault


class CollectionError(Exception):
    """A failure with a reason and a message fit for a status condition (never a credential)."""

    def __init__(self, reason: Reason, message: str, condition: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.condition = condition  # a finer status-condition reason, e.g. SecretNotFound

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CollectionError) and (self.reason, self.message) == (other.reason, other.message)

    def __hash__(self) -> int:
        return hash((self.reason, self.message))

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"
