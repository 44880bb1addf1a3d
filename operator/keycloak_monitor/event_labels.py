"""Label values of the event counters, bounded whatever traffic Keycloak records.

Anyone can make Keycloak store a LOGIN_ERROR event carrying a client id of their choosing
(an authorization request with a random `client_id`), so label values taken from events
are folded into a few fixed values: a client not in the realm's client list, an error
string Keycloak does not define, an event type or resource type that does not look like
Keycloak's own enum names.
"""

import re
from collections.abc import Collection, Mapping
from typing import Any

UNKNOWN_CLIENT = "(unknown)"  # a client id the realm does not have
OTHER = "(other)"  # an error, event type or resource type outside the known forms
OVERFLOW = "(overflow)"  # every label of the one series that takes counts past the series cap

USER_LABELS = ("client_id", "event", "error")
ADMIN_LABELS = ("operation", "resource_type")

# The error strings Keycloak's own flows record (org.keycloak.events.Errors and the
# authenticators' errors, Keycloak 22 to 26).
KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "client_disabled",
        "client_not_found",
        "code_verifier_missing",
        "consent_denied",
        "cookie_not_found",
        "credential_setup_required",
        "delegation_failed",
        "different_user_authenticated",
        "display_unsupported",
        "email_in_use",
        "email_send_failed",
        "expired_code",
        "federated_identity_account_exists",
        "generic_authentication_error",
        "identity_provider_error",
        "identity_provider_login_failure",
        "illegal_origin",
        "invalid_authentication_session",
        "invalid_authn_request",
        "invalid_client",
        "invalid_client_credentials",
        "invalid_client_session",
        "invalid_code",
        "invalid_code_challenge_method",
        "invalid_code_verifier",
        "invalid_config",
        "invalid_email",
        "invalid_form",
        "invalid_issuer",
        "invalid_logout_request",
        "invalid_logout_response",
        "invalid_redirect_uri",
        "invalid_registration",
        "invalid_request",
        "invalid_saml_response",
        "invalid_signature",
        "invalid_token",
        "invalid_token_type",
        "invalid_user",
        "invalid_user_credentials",
        "not_allowed",
        "not_logged_in",
        "password_confirm_error",
        "password_missing",
        "password_rejected",
        "pkce_verification_failed",
        "realm_disabled",
        "registration_disabled",
        "rejected_by_user",
        "reset_credential_disabled",
        "resolve_required_actions",
        "session_expired",
        "ssl_required",
        "unknown_identity_provider",
        "user_conflict",
        "user_disabled",
        "user_not_found",
        "user_session_not_found",
        "user_temporarily_disabled",
        "username_in_use",
        "username_missing",
    }
)
ADMIN_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "ACTION"})
_ENUM_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def _enum(value: Any) -> str:
    text = str(value or "")
    return text if not text or _ENUM_NAME.fullmatch(text) else OTHER


def user_key(event: Mapping[str, Any], clients: Collection[str]) -> tuple[str, str, str]:
    """(client_id, event, error) of a user event; `clients` are the realm's client ids."""
    client = str(event.get("clientId") or "")
    if client and client not in clients:
        client = UNKNOWN_CLIENT
    error = str(event.get("error") or "")
    if error and error not in KNOWN_ERRORS:
        error = OTHER
    return (client, _enum(event.get("type")), error)


def admin_key(event: Mapping[str, Any]) -> tuple[str, str]:
    """(operation, resource_type) of an admin event."""
    operation = str(event.get("operationType") or "")
    return (operation if not operation or operation in ADMIN_OPERATIONS else OTHER, _enum(event.get("resourceType")))


def zero_user_keys(clients: Collection[str]) -> list[tuple[str, str, str]]:
    """Series served at 0 before their first event, so rate() sees that first event: the
    sign-in outcomes of every known client."""
    return [
        key
        for client in sorted(clients)
        for key in ((client, "LOGIN", ""), (client, "LOGIN_ERROR", "invalid_user_credentials"))
    ]
