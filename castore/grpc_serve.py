"""Run a gRPC server on a `grpc+unix://`, `grpc+http://` or `grpc+https://` URL until SIGTERM/SIGINT.

The runner knows no services: callers pass registrations (castore's from
`castore.grpc_server.castore_services`, the store layer adds PathInfoService) and
interceptors (access control, metrics), applied in the order given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import grpc

from castore import signals
from castore.errors import BackendError, ValidationError
from castore.grpc_common import CHANNEL_OPTIONS
from castore.grpc_server import Register
from castore.grpc_slots import StreamSlots
from castore.url import grpc_target

log = logging.getLogger(__name__)

MAX_STREAMS = max(16, 4 * (os.cpu_count() or 1))
"""Streams (a FUSE read, a NAR render) running at once; each holds a worker for its length (one
whose client stalls, for the daemon's stall timeout at most: castore/grpc_stall.py)."""
MAX_WORKERS = 8 * MAX_STREAMS
"""Threads, started as calls need them: streams waiting for a slot sleep in theirs, and the rest
answer every other call (castore/grpc_slots.py)."""

SERVER_OPTIONS = CHANNEL_OPTIONS + (
    ("grpc.so_reuseport", 0),  # a second daemon on the same port must fail, not share it
)


@dataclass(frozen=True)
class TlsIdentity:
    """The server's certificate chain and private key, PEM (for `grpc+https://`)."""

    cert_chain: bytes
    private_key: bytes

    @classmethod
    def load(cls, cert_file: str, key_file: str) -> TlsIdentity:
        """Read both files; a missing or unreadable one is a one-line error."""
        def read(path: str, what: str) -> bytes:
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as e:
                raise ValidationError(f"cannot read TLS {what} {path}: {e.strerror}") from None
        return cls(read(cert_file, "certificate"), read(key_file, "key"))


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


def serve(listen_url: str, registrations: Iterable[Register], *, max_workers: int = MAX_WORKERS,
          max_streams: int = MAX_STREAMS, interceptors: Sequence[grpc.ServerInterceptor] = (),
          tls: TlsIdentity | None = None, socket_mode: int | None = None) -> RunningServer:
    """Start a server on `listen_url` with every registration applied; it runs until stop().
    Streams take one of `max_streams` slots, after the `interceptors` (so a refused call takes none).

    `tls` is required for (and only for) `grpc+https://`; `socket_mode` (only for
    `grpc+unix://`) is the socket file's permission bits, set before anyone can connect.
    """
    target = grpc_target(listen_url)
    scheme = urlsplit(listen_url).scheme
    if (scheme == "grpc+https") != (tls is not None):
        raise ValidationError(f"{listen_url}: grpc+https:// and a TLS certificate and key go together")
    socket_path = urlsplit(listen_url).path if scheme == "grpc+unix" else None
    if socket_mode is not None and socket_path is None:
        raise ValidationError(f"{listen_url}: a socket mode is for grpc+unix:// only")
    if socket_path:
        _remove_stale_socket(socket_path)
    server = grpc.server(ThreadPoolExecutor(max_workers, thread_name_prefix="grpc"),
                         interceptors=[*interceptors, StreamSlots(max_streams)], options=SERVER_OPTIONS)
    for register in registrations:
        register(server)
    try:
        with _socket_umask(socket_mode):
            if tls is None:
                server.add_insecure_port(target)
            else:
                server.add_secure_port(target, grpc.ssl_server_credentials([(tls.private_key, tls.cert_chain)]))
    except RuntimeError as e:
        server.stop(None)
        raise BackendError(f"cannot listen on {listen_url}: {e}") from None
    server.start()
    return RunningServer(server, listen_url, socket_path)


@contextlib.contextmanager
def _socket_umask(mode: int | None) -> Iterator[None]:
    """Create files (the socket, bound by add_port) with exactly `mode`: a chmod afterwards would
    leave a moment in which the socket is open to anyone the umask lets in."""
    if mode is None:
        yield
        return
    previous = os.umask(0o777 & ~mode)
    try:
        yield
    finally:
        os.umask(previous)


def run_daemon(listen_url: str, registrations: Iterable[Register], *, grace: float = 5.0, **options) -> int:
    """Serve (`options` as for serve()) until SIGTERM or SIGINT, stop gracefully, return the exit code (0).

    Call from the main thread: it catches the signals for its duration (see castore/signals.py).
    """
    with signals.catching(signal.SIGTERM, signal.SIGINT) as caught:
        running = serve(listen_url, registrations, **options)
        log.info("listening on %s", running.url)
        received = caught.wait()
        log.info("stopping on %s (grace %.0fs)", received.name, grace)
        running.stop(grace)
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
