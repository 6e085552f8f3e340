"""Real local alert receivers: an SMTP server (aiosmtpd) and an HTTP webhook receiver."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Webhook:
    """What the receiver got: each POST's path and JSON body."""

    port: int
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: called with (path, body) as each POST arrives, before it is answered.
    on_receive: Callable[[str, dict[str, Any]], None] | None = None

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def messages(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [body for got, body in self.received if got == path]


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    """An HTTP server on loopback that records every JSON POST and answers 200."""
    hook = Webhook(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length", "0")), 1_000_000)
            body = json.loads(self.rfile.read(length) or b"{}")
            if hook.on_receive is not None:
                hook.on_receive(self.path, body)
            hook.received.append((self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Mailbox:
    """What the SMTP server got: each message, parsed."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    def url(self, to: str = "ops@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=alerts@example.com&to={to}&mode=insecure"

    def texts(self) -> list[str]:
        """The plain-text part of each message."""
        found = []
        for message in self.messages:
            part = message.get_body(preferencelist=("plain",))
            found.append(part.get_content() if part is not None else "")
        return found


@contextmanager
def smtp_server(login: tuple[str, str] | None = None) -> Iterator[Mailbox]:
    """An SMTP server on loopback (aiosmtpd) that keeps every message it is sent.

    With ``login``, it accepts that user and password (over plain SMTP: loopback only).
    """
    box = Mailbox(port=free_port())

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and login is not None
            and (data.login.decode(), data.password.decode()) == login
        )
        return AuthResult(success=ok, handled=False)

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            content = envelope.content
            raw = content if isinstance(content, bytes) else str(content).encode()
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            box.messages.append(parsed)
            return "250 OK"

    controller = Controller(
        Handler(), hostname="127.0.0.1", port=box.port,
        authenticator=authenticate if login else None, auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
