"""PieceChannel (nar_bridge/threads.py): pieces from a worker thread to the event loop, bounded."""

from __future__ import annotations

import asyncio
import threading

from nar_bridge.threads import PieceChannel


def test_views_and_bytes_alike_free_the_room_they_took() -> None:
    """Ten times the channel's limit, in views (a daemon's NAR messages) and bytes: all arrive, in order."""
    pieces = [memoryview(bytes([i]) * 1000) if i % 2 else bytes([i]) * 1000 for i in range(40)]

    async def consume() -> list[bytes]:
        channel = PieceChannel(asyncio.get_running_loop(), limit=4000)
        producer = threading.Thread(target=channel.feed, args=(iter(pieces),))
        producer.start()
        got = []
        while (piece := await asyncio.wait_for(channel.get(), 10)) is not None:
            got.append(bytes(piece))
        producer.join()
        return got

    assert asyncio.run(consume()) == [bytes(p) for p in pieces]
