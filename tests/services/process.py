"""Stopping a server process the tests started, as a supervisor would."""

from __future__ import annotations

import signal
import subprocess


def stop(process: subprocess.Popen, seconds: float = 15) -> None:
    """SIGTERM (unless it exited), then SIGKILL if it is still running after `seconds`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
