"""Small bodies read whole, with a limit: narinfos (2 MiB) and logs, sent to us or fetched upstream."""

from __future__ import annotations

from aiohttp import StreamReader

from castore.errors import ValidationError


class BodyTooLarge(ValidationError):
    """A body past its limit (the edge answers 413)."""


async def read_limited(stream: StreamReader, limit: int, declared: int | None = None) -> bytes:
    """The whole body; BodyTooLarge past `limit` bytes, whether declared (Content-Length) or counted."""
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit}")
    body = bytearray()
    while piece := await stream.read(limit + 1 - len(body)):
        body += piece
        if len(body) > limit:
            raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
    return bytes(body)
