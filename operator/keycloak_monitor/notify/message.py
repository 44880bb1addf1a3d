"""What a notification says: the webhook's JSON document and the e-mail."""

from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from ..config import EmailTarget, MonitorKey


def _when(event: Mapping[str, Any]) -> str:
    return datetime.fromtimestamp(int(event.get("time") or 0) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    details = event.get("details")
    return details if isinstance(details, Mapping) else {}


def event_name(kind: str, event: Mapping[str, Any]) -> str:
    if kind == "user":
        return str(event.get("type"))
    return f"{event.get('operationType')}/{event.get('resourceType')}"


def user_link(console_url: str, realm: str, user_id: str) -> str:
    """The user's page in the admin console (Keycloak 19+ console routes)."""
    return f"{console_url}/admin/master/console/#/{quote(realm)}/users/{quote(user_id)}/settings"


def webhook_document(
    key: MonitorKey, realm: str, kind: str, event_key: str, event: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "id": event_key,
        "monitor": {"namespace": key.namespace, "name": key.name},
        "realm": realm,
        "kind": kind,
        "type": event_name(kind, event),
        "time": event.get("time"),
        "event": dict(event),
    }


def email_message(
    target: EmailTarget, realm: str, console_url: str, kind: str, event_key: str, event: Mapping[str, Any]
) -> EmailMessage:
    details = _details(event)
    name = event_name(kind, event)
    if kind == "user":
        username = str(details.get("username") or event.get("userId") or "unknown user")
        user_id = str(event.get("userId") or "")
        full_name = " ".join(str(details[k]) for k in ("first_name", "last_name") if details.get(k))
        lines = [
            f"Keycloak recorded {name} in realm {realm}.",
            "",
            f"User:      {username}" + (f" ({full_name})" if full_name else ""),
            f"E-mail:    {details.get('email') or '-'}",
            f"User id:   {user_id or '-'}",
            f"When:      {_when(event)}",
            f"Client:    {event.get('clientId') or '-'}",
            f"From IP:   {event.get('ipAddress') or '-'}",
        ]
        if event.get("error"):
            lines.append(f"Error:     {event['error']}")
        if user_id:
            lines += ["", f"Admin console: {user_link(console_url, realm, user_id)}"]
        subject = f"[Keycloak {realm}] {name}: {username}"
    else:
        auth = event.get("authDetails") if isinstance(event.get("authDetails"), Mapping) else {}
        lines = [
            f"Keycloak recorded the admin change {name} in realm {realm}.",
            "",
            f"Resource:  {event.get('resourcePath') or '-'}",
            f"By user:   {auth.get('userId') or '-'} (client {auth.get('clientId') or '-'})",
            f"When:      {_when(event)}",
            f"From IP:   {auth.get('ipAddress') or '-'}",
        ]
        subject = f"[Keycloak {realm}] {name}: {event.get('resourcePath') or ''}"
    lines += ["", f"Event id: {event_key}"]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = target.sender
    message["To"] = ", ".join(target.to)
    message["Message-ID"] = f"<{event_key}@keycloak-monitor>"  # the same event is the same mail
    message.set_content("\n".join(lines) + "\n")
    return message
