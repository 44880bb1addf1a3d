"""Notifications of registrations (seed 003's use): a user signs up through Keycloak's real form
and exactly one signed webhook call and one e-mail say who, when, from which client and IP,
with a link to the user, also when the targets refuse at first and the process is killed and
restarted in between."""

import hashlib
import hmac
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.notify_targets import SmtpServer, WebhookReceiver, self_signed_certificate
from tests.realms import PASSWORD, Realm, make_realm
from tests.registration import enable_registration, register
from tests.standalone_process import StandaloneProcess

pytestmark = pytest.mark.keycloak

WEBHOOK_SECRET = "notify-Secret-3"


@pytest.fixture(scope="module")
def realm(kc_admin) -> Realm:
    realm = make_realm(kc_admin, "signup", users=0)
    enable_registration(kc_admin, realm.name)
    return realm


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


def labels(realm: str, monitor: str = "notify", **extra: str) -> str:
    pairs = {"namespace": "standalone", "monitor": monitor, "realm": realm, **extra}
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def notifier(
    keycloak, realm: Realm, webhook: WebhookReceiver, smtp: SmtpServer, tmp_path, name: str = "notify"
) -> StandaloneProcess:
    monitor: dict[str, Any] = {
        "name": name,
        "url": keycloak.base_url,
        "realm": realm.name,
        "interval": "5s",
        "timeout": "4s",
        "credentials": {"username": keycloak.admin_user, "passwordEnv": "KC_TEST_PASSWORD"},
        "notifications": {
            "userEvents": ["REGISTER"],
            "webhook": {"url": webhook.url, "secretEnv": "NOTIFY_SECRET"},
            "email": {
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "from": "keycloak-monitor@example.org",
                "to": ["admins@example.org"],
            },
        },
    }
    env = {"KC_TEST_PASSWORD": keycloak.admin_password, "NOTIFY_SECRET": WEBHOOK_SECRET}
    process = StandaloneProcess(tmp_path, [monitor], env)
    return process


def test_a_registration_is_notified_once_across_refusals_and_a_kill(
    keycloak, kc_admin, realm, webhook, smtp, tmp_path
) -> None:
    webhook.refusing = smtp.mailbox.refusing = True
    process = notifier(keycloak, realm, webhook, smtp, tmp_path)
    ready = f"keycloak_users{labels(realm.name)}"
    process.start(ready)
    try:
        location = register(keycloak.base_url, realm.name, "newcomer", PASSWORD)
        assert "code=" in location
        user_id = kc_admin.user_id(realm.name, "newcomer")

        # Both targets refuse: the failures are counted, nothing is delivered.
        failed = {
            c: f"keycloak_monitor_notifications_total{labels(realm.name, channel=c, result='failed')}"
            for c in ("webhook", "email")
        }
        process.wait_for(
            lambda _: all((process.value(s) or 0) >= 1 for s in failed.values()), 60, "failed deliveries counted"
        )
        assert webhook.refused >= 1 and smtp.mailbox.refused >= 1
        assert webhook.received == [] and smtp.mailbox.messages == []

        process.stop(signal.SIGKILL)  # killed with the notification still owed
        webhook.refusing = smtp.mailbox.refusing = False
        process.start(ready)
        process.wait_for(lambda _: webhook.received and smtp.mailbox.messages, 60, "the webhook call and the mail")

        # Two more collections and another kill and restart: still exactly one of each.
        cycles = f"keycloak_monitor_collection_duration_seconds_count{labels(realm.name)}"
        done = process.value(cycles) or 0
        process.wait_for(lambda _: (process.value(cycles) or 0) >= done + 2, 30, "two more collections")
        process.stop(signal.SIGKILL)
        process.start(ready)
        done = process.value(cycles) or 0
        process.wait_for(lambda _: (process.value(cycles) or 0) >= done + 2, 30, "two collections after restart")
    finally:
        process.stop()

    assert len(webhook.received) == 1 and len(smtp.mailbox.messages) == 1
    call = webhook.received[0]
    signature = hmac.new(WEBHOOK_SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    assert call.headers["X-Keycloak-Monitor-Signature"] == f"sha256={signature}"
    document = json.loads(call.body)
    assert call.headers["Idempotency-Key"] == document["id"]
    assert document["type"] == "REGISTER" and document["realm"] == realm.name
    assert document["event"]["userId"] == user_id and document["event"]["clientId"] == "signup"
    assert document["event"]["details"]["username"] == "newcomer"

    mail = smtp.mailbox.messages[0]
    text = mail.get_payload(decode=True).decode()
    assert "newcomer" in mail["Subject"] and mail["To"] == "admins@example.org"
    for needle in ("newcomer", "newcomer@example.org", "Client:    signup", "From IP:   127.0.0.1", "UTC"):
        assert needle in text, needle
    assert f"{keycloak.base_url}/admin/master/console/#/{realm.name}/users/{user_id}/settings" in text


def test_mail_goes_over_starttls_with_the_configured_login(keycloak, kc_admin, realm, tmp_path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    smtp = SmtpServer(tls=(cert, key), login=("mailer", "smtp-Pass-5"))
    webhook = WebhookReceiver()
    try:
        process = notifier(keycloak, realm, webhook, smtp, tmp_path, name="notify-tls")
        config = yaml.safe_load(process.config.read_text())
        email = config["monitors"][0]["notifications"]["email"]
        email.update(security="starttls", credentials={"username": "mailer", "passwordEnv": "SMTP_PASSWORD"})
        process.config.write_text(yaml.safe_dump(config))
        # The test server's certificate is trusted the way an operator trusts a private CA.
        process.env.update(SSL_CERT_FILE=str(cert), SMTP_PASSWORD="smtp-Pass-5")
        process.start(f"keycloak_users{labels(realm.name, monitor='notify-tls')}")
        try:
            register(keycloak.base_url, realm.name, "tlsuser", PASSWORD)
            process.wait_for(lambda _: smtp.mailbox.messages, 60, "the mail over STARTTLS")
        finally:
            process.stop()
        assert smtp.mailbox.sessions == [(True, b"mailer")]
        assert "tlsuser" in smtp.mailbox.messages[0]["Subject"]
    finally:
        smtp.close()
        webhook.close()
