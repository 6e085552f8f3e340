"""A one-shot loopback HTTP server that catches the OAuth redirect for the CLI."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from audiencesync.errors import UserInputError

_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>audiencesync</title>"
    b"<p>Snapchat sign-in received. You can close this window and return to the terminal.</p>"
)


@dataclass
class Callback:
    code: str
    state: str
    error: str


class CallbackServer:
    """Listens on the redirect URI's loopback host and port for one redirect."""

    def __init__(self, redirect_uri: str) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise UserInputError(
                f"the redirect URI {redirect_uri} is not a loopback address the command line can "
                "listen on: set AUDIENCESYNC_SNAPCHAT_REDIRECT_URI to http://127.0.0.1:PORT/... "
                "(registered on the Snapchat OAuth app), or connect from the web UI."
            )
        self.path = parts.path or "/"
        self._received = threading.Event()
        self.result: Callback | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != outer.path:
                    self.send_error(404)
                    return
                query = parse_qs(url.query)
                outer.result = Callback(
                    code=query.get("code", [""])[0],
                    state=query.get("state", [""])[0],
                    error=query.get("error", [""])[0],
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(_PAGE)))
                self.end_headers()
                self.wfile.write(_PAGE)
                outer._received.set()

            def log_message(self, format: str, *args: object) -> None:
                return  # the query holds the code: never log it

        try:
            self._server = HTTPServer((parts.hostname or "127.0.0.1", parts.port or 80), Handler)
        except OSError as error:
            raise UserInputError(
                f"cannot listen on {parts.hostname}:{parts.port} for the Snapchat redirect "
                f"({error.strerror}): free that port or change AUDIENCESYNC_SNAPCHAT_REDIRECT_URI."
            ) from None
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> Callback:
        """The redirect's parameters; UserInputError when none came in ``timeout`` seconds."""
        if not self._received.wait(timeout) or self.result is None:
            raise UserInputError(
                f"no answer from Snapchat within {int(timeout)} seconds: run the command again "
                "and finish signing in in the browser."
            )
        if self.result.error:
            raise UserInputError(
                f"Snapchat sign-in was not completed ({self.result.error}): run the command "
                "again and approve the access."
            )
        return self.result
