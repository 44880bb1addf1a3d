"""Real notification targets on loopback: an HTTP receiver and an SMTP server (aiosmtpd), each
able to refuse on demand and recording what it took."""

import http.server
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

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

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusing:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    """aiosmtpd on a free loopback port; answers 451 to DATA while `refusing`."""

    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        self.port = free_port()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def close(self) -> None:
        self._controller.stop()
