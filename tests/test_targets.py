"""The operator-wide target policy and the cleaning of far-side texts, on real sockets."""

import asyncio
import ipaddress
from email.message import EmailMessage

import httpx
import pytest

from keycloak_monitor.config import ConfigError, EmailTarget, WebhookTarget, parse_spec
from keycloak_monitor.far_side import clean
from keycloak_monitor.notify.senders import DeliveryError, send_email, send_webhook
from keycloak_monitor.targets import TargetPolicy, TargetRefused, guarded_transport, parse_rules

BASE = {"url": "https://sso.example.com", "realm": "shop", "credentialsSecret": {"name": "kc"}}


def addresses(*texts: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(t) for t in texts]


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"])
def test_link_local_is_denied_even_when_allowed(address: str) -> None:
    policy = TargetPolicy(allow=parse_rules(["0.0.0.0/0,::/0"]))
    with pytest.raises(TargetRefused, match=r"169\.254\.0\.0/16|fe80::/10"):
        policy.check("metadata", addresses(address))


def test_deny_wins_and_allow_rules_limit_by_name_or_every_address() -> None:
    policy = TargetPolicy(allow=parse_rules(["*.example.com", "10.0.0.0/8"]), deny=parse_rules(["admin.example.com"]))
    policy.check("sso.example.com", addresses("192.0.2.1"))
    policy.check("keycloak.svc", addresses("10.1.2.3"))
    with pytest.raises(TargetRefused, match=r"admin\.example\.com"):
        policy.check("admin.example.com", addresses("10.1.2.3"))
    with pytest.raises(TargetRefused, match="no allow rule"):
        policy.check("rebound.svc", addresses("10.1.2.3", "192.0.2.1"))


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_rules(["http://x/"])


class RecordingServer:
    """A loopback listener that counts the connections it accepts and closes them."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "RecordingServer":
        async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self._server = await asyncio.start_server(record, "127.0.0.2", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def test_a_denied_address_gets_no_connection_and_an_allowed_one_does() -> None:
    async def scenario() -> tuple[int, int, str]:
        async with RecordingServer() as server:
            denied = TargetPolicy(deny=parse_rules(["127.0.0.0/24"]))
            async with httpx.AsyncClient(transport=guarded_transport(denied)) as client:
                with pytest.raises(TargetRefused) as refused:
                    await client.get(f"http://127.0.0.2:{server.port}/")
            before = server.accepted
            async with httpx.AsyncClient(transport=guarded_transport(TargetPolicy())) as client:
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get(f"http://127.0.0.2:{server.port}/")
            return before, server.accepted, refused.value.condition or ""

    assert asyncio.run(scenario()) == (0, 1, "TargetRefused")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "https://admin:hunter2@sso.example.com"),
        ("realm", "../master"),
        ("realm", ".."),
        ("realm", "shop?x=1"),
        ("authRealm", "master#"),
    ],
)
def test_userinfo_and_path_tricks_are_refused_without_echoing_them(field: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_spec({**BASE, field: value})
    assert refused.value.field == field
    assert "hunter2" not in str(refused.value)


def test_far_side_texts_are_short_printable_and_free_of_userinfo() -> None:
    text = "boom\x1b[31m at https://scott:tiger@db.internal:5432/x\n" + "A" * 500
    cleaned = clean(text)
    assert "tiger" not in cleaned and "\x1b" not in cleaned and "\n" not in cleaned
    assert "https://***@db.internal" in cleaned
    assert len(cleaned) <= 160 and cleaned.endswith("...")


def test_a_webhook_to_a_denied_address_is_a_delivery_error_without_a_connection() -> None:
    async def scenario() -> tuple[str, int]:
        async with RecordingServer() as server:
            policy = TargetPolicy(deny=parse_rules(["127.0.0.2"]))
            async with httpx.AsyncClient(transport=guarded_transport(policy)) as client:
                with pytest.raises(DeliveryError) as refused:
                    await send_webhook(client, WebhookTarget(f"http://127.0.0.2:{server.port}/hook"), None, {}, "k1")
            return str(refused.value), server.accepted

    message, accepted = asyncio.run(scenario())
    assert "target policy" in message and accepted == 0


def test_mail_to_a_denied_server_is_a_delivery_error_without_a_connection() -> None:
    async def scenario() -> tuple[str, int]:
        async with RecordingServer() as server:
            target = EmailTarget(host="127.0.0.2", sender="kcm@example.org", to=("ops@example.org",), port=server.port)
            policy = TargetPolicy(deny=parse_rules(["127.0.0.2"]))
            with pytest.raises(DeliveryError) as refused:
                await send_email(target, ("user", "pw"), EmailMessage(), policy)
            return str(refused.value), server.accepted

    message, accepted = asyncio.run(scenario())
    assert "target policy" in message and accepted == 0
