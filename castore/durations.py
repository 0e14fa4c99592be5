"""Durations on the command line (`90`, `30s`, `15m`, `1h`, `7d`, `2w`), and the servers' shared
patience with a stalled client."""

from __future__ import annotations

import argparse
import re

STALL_TIMEOUT = 60.0
"""Seconds a server waits on a client that takes (or sends) nothing, between two messages or
writes, before it ends the call: nginx's send_timeout and client_body_timeout."""

_DURATION = r"(\d+(?:\.\d+)?)([smhdw]?)"
"""Compiled (and cached by re) when a duration is parsed, not when every command builds its parser."""
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """Seconds of `90`, `30s`, `15m`, `1h`, `7d`, `2w` (an argparse type)."""
    match = re.fullmatch(_DURATION, text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 90s, 15m, 1h, 7d, 2w): {text!r}")
    return float(match[1]) * _UNIT[match[2]]


def positive_duration(text: str) -> float:
    """A duration that is more than nothing (an argparse type)."""
    seconds = duration(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"not a positive duration: {text!r}")
    return seconds
