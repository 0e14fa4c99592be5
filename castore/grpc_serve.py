"""Run a gRPC server on a `grpc+unix://` or `grpc+http://` URL until SIGTERM/SIGINT.

The runner knows no services: callers pass registrations (castore's from
`castore.grpc_server.castore_services`, the store layer adds PathInfoService).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

import grpc

from castore.errors import BackendError, ValidationError
from castore.grpc_common import CHANNEL_OPTIONS
from castore.grpc_server import Register
from castore.url import grpc_target

log = logging.getLogger(__name__)

MAX_WORKERS = max(16, 4 * (os.cpu_count() or 1))
"""Every open stream (a FUSE read, a NAR render) holds a worker thread for its length."""

SERVER_OPTIONS = CHANNEL_OPTIONS + (
    ("grpc.so_reuseport", 0),  # a second daemon on the same port must fail, not share it
)


@dataclass
class RunningServer:
    """A started server, the URL it listens on and (for unix sockets) the socket file."""

    server: grpc.Server
    url: str
    socket_path: str | None = None

    def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, let running ones finish for `grace` seconds, then cancel them."""
        self.server.stop(grace).wait()
        if self.socket_path and _is_socket(self.socket_path):
            os.unlink(self.socket_path)


def serve(listen_url: str, registrations: Iterable[Register], *,
          max_workers: int = MAX_WORKERS) -> RunningServer:
    """Start a server on `listen_url` with every registration applied; it runs until stop()."""
    target = grpc_target(listen_url)
    socket_path = urlsplit(listen_url).path if target.startswith("unix:") else None
    if socket_path:
        _remove_stale_socket(socket_path)
    server = grpc.server(ThreadPoolExecutor(max_workers, thread_name_prefix="grpc"),
                         options=SERVER_OPTIONS)
    for register in registrations:
        register(server)
    try:
        server.add_insecure_port(target)
    except RuntimeError as e:
        server.stop(None)
        raise BackendError(f"cannot listen on {listen_url}: {e}") from None
    server.start()
    return RunningServer(server, listen_url, socket_path)


def run_daemon(listen_url: str, registrations: Iterable[Register], *, grace: float = 5.0) -> int:
    """Serve until SIGTERM or SIGINT, stop gracefully, return the exit code (0).

    Call from the main thread: it installs the signal handlers for its duration.
    """
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        running = serve(listen_url, registrations)
        log.info("listening on %s", running.url)
        stopping.wait()
        log.info("stopping (grace %.0fs)", grace)
        running.stop(grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _remove_stale_socket(path: str) -> None:
    """Unlink a socket left by a dead daemon; refuse a live one or a non-socket file."""
    if not os.path.lexists(path):
        return
    if not _is_socket(path):
        raise ValidationError(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
            return
    raise BackendError(f"another server is listening on {path}")
