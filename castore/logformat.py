"""How the long-running services (daemon, nar-bridge) log to stderr: `--log-format text|json`.

JSON is for log shippers (one object a line); text is for people. A record may carry
`extra={"fields": {...}}` (an access log line's method, path, status, ...): JSON puts the
fields in the object, text has them in the message already. Building the command line needs
only the option, so logging itself is imported when a service starts (`cairn --help` stays short).
"""

from __future__ import annotations

import argparse

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=FORMATS, default="text",
                        help="stderr log lines as text or as JSON objects (default: %(default)s)")


def log_to_stderr(verbose: bool, log_format: str = "text") -> None:
    """Set up the root logger for a service."""
    import logging
    import sys

    from castore.logjson import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
