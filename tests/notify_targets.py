"""Real notification targets on loopback: an HTTP receiver and an SMTP server (aiosmtpd), each
able to refuse on demand and recording what it took."""

import http.server
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.operator_process import free_port


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """Answers 503 while `refusing`, else 200 and records the request."""

    def __init__(self) -> None:
        self.refusing = False
        self.received: list[Delivery] = []
        self.refused = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.refusing:
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.received.append(Delivery(dict(self.headers), body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class _Mailbox:
    refusing: bool = False
    refused: int = 0
    messages: list[Message] = field(default_factory=list)
    sessions: list[tuple[bool, Any]] = field(default_factory=list)  # (over TLS, login) per message

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusing:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.content))
        self.sessions.append((session.ssl is not None, session.auth_data))
        return "250 OK"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl), to serve STARTTLS."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class SmtpServer:
    """aiosmtpd on a free loopback port; answers 451 to DATA while `refusing`. With `tls`
    (certificate, key) it offers STARTTLS and requires it, with `login` it requires AUTH."""

    def __init__(self, tls: tuple[Path, Path] | None = None, login: tuple[str, str] | None = None) -> None:
        self.mailbox = _Mailbox()
        self.port = free_port()
        options: dict[str, Any] = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            options.update(tls_context=context, require_starttls=True)
        if login is not None:
            expected = (login[0].encode(), login[1].encode())

            def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                given = (getattr(data, "login", None), getattr(data, "password", None))
                return AuthResult(success=given == expected, auth_data=given[0])

            options.update(auth_required=True, authenticator=check)
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def close(self) -> None:
        self._controller.stop()
