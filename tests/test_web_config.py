"""Standalone /metrics behind Prometheus' web-config file: HTTPS and bcrypt basic-auth users."""

import asyncio
import ssl
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml

from keycloak_monitor.config import ConfigError
from keycloak_monitor.exposition import MetricsStore
from keycloak_monitor.metrics_tls import CertificateFiles, self_signed_context, self_signed_pem
from keycloak_monitor.server import make_app, start_server
from keycloak_monitor.web_config import load_web_config
from tests.operator_process import free_port


def write_certificate(folder: Path) -> None:
    certificate, key = self_signed_pem(["localhost"], ["127.0.0.1"])
    (folder / "server.crt").write_bytes(certificate)
    (folder / "server.key").write_bytes(key)


async def test_https_and_bcrypt_users_guard_the_metrics(tmp_path: Path) -> None:
    write_certificate(tmp_path)
    hashed = bcrypt.hashpw(b"scrape-Pw-1", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
    config = {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
        "basic_auth_users": {"prometheus": hashed},
    }
    (tmp_path / "web.yml").write_text(yaml.safe_dump(config))
    web = load_web_config(tmp_path / "web.yml")
    port = free_port()
    runner = await start_server(make_app(MetricsStore(), guard=web), "127.0.0.1", port, web.ssl_context)
    try:
        url = f"https://127.0.0.1:{port}/metrics"
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=tmp_path / "server.crt")) as client:
            assert (await client.get(url)).status_code == 401
            assert (await client.get(url, auth=("prometheus", "wrong"))).status_code == 401
            assert (await client.get(url, auth=("nobody", "scrape-Pw-1"))).status_code == 401
            answer = await client.get(url, auth=("prometheus", "scrape-Pw-1"))
            assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
            assert (await client.get(f"https://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        await runner.cleanup()


def test_a_plain_password_instead_of_a_hash_is_refused(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": "plain"}}))
    with pytest.raises(ConfigError, match="bcrypt"):
        load_web_config(tmp_path / "web.yml")


async def test_a_renewed_certificate_applies_to_new_connections_without_a_restart(tmp_path: Path) -> None:
    write_certificate(tmp_path)
    files = CertificateFiles(tmp_path / "server.crt", tmp_path / "server.key")
    port = free_port()
    runner = await start_server(make_app(MetricsStore()), "127.0.0.1", port, files.context)

    async def served() -> bytes:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=unverified())
        certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        return bytes(certificate)

    try:
        first = await served()
        assert not files.reload_if_changed()  # nothing changed yet
        renewed = tmp_path / "renewed"
        renewed.mkdir()
        write_certificate(renewed)  # the Secret renewed: new files renamed over the old ones
        for name in ("server.crt", "server.key"):
            (renewed / name).replace(tmp_path / name)
        assert files.reload_if_changed()
        assert await served() != first
    finally:
        await runner.cleanup()


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


async def test_a_self_signed_certificate_is_made_at_start_for_https() -> None:
    port = free_port()
    runner = await start_server(make_app(MetricsStore()), "127.0.0.1", port, self_signed_context(["keycloak-monitor"]))
    try:
        async with httpx.AsyncClient(verify=unverified()) as client:
            assert (await client.get(f"https://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        await runner.cleanup()
