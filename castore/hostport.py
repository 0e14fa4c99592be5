"""`HOST:PORT` options (nar-bridge's --listen, --metrics): parsed where they enter."""

from __future__ import annotations

from castore.errors import ValidationError


def parse_host_port(text: str, option: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT`; ValidationError naming `option` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError(f"{option} wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)
