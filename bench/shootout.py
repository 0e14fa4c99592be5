"""The client of the cache-shootout style figures (Mic92's cache-shootout): every NAR of some store
paths fetched by plain HTTP GETs of each narinfo's `URL:`, `Accept-Encoding: identity`, with a
given number of connections at once, its throughput in MiB/s."""

from __future__ import annotations

import asyncio
import math
import time

import aiohttp

PIECE = 1 << 20
MiB = 1 << 20


async def nar_urls(session: aiohttp.ClientSession, server: str, paths: list[str]) -> list[str]:
    """The NAR URL of each path, relative to a server, from its narinfo."""
    urls = []
    for path in paths:
        digest = path.removeprefix("/nix/store/")[:32]
        async with session.get(f"{server}/{digest}.narinfo") as reply:
            reply.raise_for_status()
            fields = dict(line.split(": ", 1) for line in (await reply.text()).splitlines() if ": " in line)
        urls.append(fields["URL"])
    return urls


async def fetch_all(servers: list[str], paths: list[str], connections: int, rounds: int = 1) -> float:
    """MiB/s of fetching every NAR `rounds` times (more when needed to give each connection two
    requests), `connections` at a time, spread over the servers in turn."""
    headers = {"Accept-Encoding": "identity"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers, auto_decompress=False,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        nars = await nar_urls(session, servers[0], paths)
        work = [nar for _ in range(max(rounds, math.ceil(2 * connections / len(nars)))) for nar in nars]
        gate = asyncio.Semaphore(connections)
        total = 0

        async def fetch(i: int, nar: str) -> None:
            nonlocal total
            async with gate, session.get(f"{servers[i % len(servers)]}/{nar}") as reply:
                reply.raise_for_status()
                async for piece in reply.content.iter_chunked(PIECE):
                    total += len(piece)

        start = time.perf_counter()
        await asyncio.gather(*(fetch(i, nar) for i, nar in enumerate(work)))
        return total / MiB / (time.perf_counter() - start)


def throughput(servers: list[str], paths: list[str], connections: int, rounds: int = 1) -> float:
    return asyncio.run(fetch_all(servers, paths, connections, rounds))
