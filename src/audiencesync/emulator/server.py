"""Serving an :class:`Emulator` with uvicorn: in the foreground (the CLI) or in a thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from audiencesync.emulator.app import Emulator


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it from ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections; without
    # it Nagle and delayed ACKs add ~40 ms to every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def make_server(emulator: Emulator) -> uvicorn.Server:
    """A uvicorn server for the emulator, leaving the process's logging alone."""
    config = uvicorn.Config(
        emulator,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Uploads of 100,000 ids are ~7 MB: let keep-alive connections idle a while.
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def serve_forever(emulator: Emulator, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM; the snapshot (if any) is written on the way out."""
    make_server(emulator).run(sockets=[sock])


class ServerThread:
    """The emulator served from a daemon thread, for tests in the same process."""

    def __init__(self, emulator: Emulator, sock: socket.socket) -> None:
        self.server = make_server(emulator)
        self.sock = sock
        self.url = url_of(sock)
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [sock]},
            name="snapchat-emulator",
            daemon=True,
        )

    def start(self, timeout: float = 15.0) -> None:
        """Start serving; raises RuntimeError when the server is not up within ``timeout``."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the emulator server stopped while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the emulator server did not start within {timeout} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down gracefully (the snapshot is written), then close the socket."""
        self.server.should_exit = True
        self._thread.join(timeout)
        self.sock.close()
