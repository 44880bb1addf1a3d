"""Delivering one notification: an HTTP POST or an SMTP transaction."""

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

import httpx

from ..config import EmailTarget, WebhookTarget
from ..far_side import clean
from ..targets import TargetPolicy, TargetRefused, resolve

SIGNATURE_HEADER = "X-Keycloak-Monitor-Signature"
SMTP_TIMEOUT = 30.0  # seconds per SMTP step (connect, each command)


class DeliveryError(Exception):
    """The target did not take the notification; the message says why (never a secret)."""


async def send_webhook(
    http: httpx.AsyncClient, target: WebhookTarget, secret: str | None, document: dict[str, Any], key: str
) -> None:
    body = json.dumps(document, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    if secret:
        headers[SIGNATURE_HEADER] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    try:
        response = await http.post(target.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(clean(f"webhook {target.url}: {type(exc).__name__}")) from None
    except TargetRefused as exc:
        raise DeliveryError(clean(f"webhook {target.url}: {exc.message}")) from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(clean(f"webhook {target.url} answered {response.status_code}"))


def _send_mail(target: EmailTarget, login: tuple[str, str] | None, message: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if target.security == "tls":
        smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if target.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if login is not None:
            smtp.login(*login)
        smtp.send_message(message)


async def send_email(
    target: EmailTarget, login: tuple[str, str] | None, message: EmailMessage, targets: TargetPolicy | None = None
) -> None:
    try:
        # The mail server obeys the target rules too (checked once: smtplib resolves again itself).
        (targets or TargetPolicy()).check(target.host, await resolve(target.host, target.port))
        await asyncio.to_thread(_send_mail, target, login, message, SMTP_TIMEOUT)
    except TargetRefused as exc:
        raise DeliveryError(clean(f"mail via {target.host}:{target.port}: {exc.message}")) from None
    except (OSError, smtplib.SMTPException) as exc:
        # smtplib's errors carry the server's answer (never our password): shortened and cleaned.
        raise DeliveryError(clean(f"mail via {target.host}:{target.port}: {type(exc).__name__}: {exc}")) from None
