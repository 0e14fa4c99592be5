"""A real `cairn daemon` process on a unix socket, for tests that need a store to go away and
come back (stop() and start() keep its store, socket and arguments)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from tests.services.process import stop

CAIRN = str(Path(sys.executable).parent / "cairn")
START_SECONDS = 20.0


class Daemon:
    def __init__(self, store: str, socket: Path, *args: str) -> None:
        self.store = store
        self.socket = socket
        self.args = list(args)
        self.log = socket.with_suffix(".log")
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"grpc+unix://{self.socket}"

    def start(self) -> Daemon:
        with open(self.log, "ab") as out:
            self._process = subprocess.Popen([CAIRN, "daemon", "--listen", self.url, "--store", self.store, *self.args],
                                             stdout=subprocess.DEVNULL, stderr=out)
        deadline = time.monotonic() + START_SECONDS
        while not self.socket.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"cairn daemon did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM, as a supervisor stops it; the daemon removes its socket."""
        if self._process is not None:
            stop(self._process)
        self._process = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
