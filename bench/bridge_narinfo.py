"""Narinfo latency: 1000 GETs of distinct narinfos from nar-bridge vs nginx serving the same narinfo
files of the `file://` cache, sequentially (one keep-alive connection) and 16 at a time. The same
aiohttp client drives both servers; best of 3 rounds each, rounds alternating.

The bridge answers a narinfo it served in the last few seconds from memory: the first round
after a pause is the cold case (a lookup in the store on a worker thread per request), printed
too; later rounds are hot.

Target: ratio <= 2x.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bridge_copy import WORK, servers
from common import add_to_nix, fresh_dir, ratio_line
from nar_bridge.bridge import RECENT_SECONDS

REQUESTS = 1000
ROUNDS = 3


def tiny_trees() -> list:
    """REQUESTS small distinct files, so each GET asks for another store path."""
    root = fresh_dir(WORK / "narinfo-trees")
    trees = []
    for i in range(REQUESTS):
        tree = root / f"narinfo-bench-{i:04d}"
        tree.write_text(f"narinfo benchmark file {i}\n")
        trees.append(tree)
    return trees


async def get_narinfos(base: str, hash_parts: list[str], concurrency: int) -> float:
    """Wall seconds to GET every narinfo, `concurrency` in flight; every answer must be a 200."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = [f"{base}/{h}.narinfo" for h in hash_parts]

        async def worker() -> None:
            while queue:
                async with session.get(queue.pop()) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{response.url}: HTTP {response.status}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def main() -> None:
    with servers(add_to_nix(tiny_trees())) as s:
        hash_parts = [p.rsplit("/", 1)[1][:32] for p in s.paths]
        for concurrency, what in ((1, "sequential"), (16, "16 at a time")):
            time.sleep(RECENT_SECONDS + 1)  # nothing recently served: the first round is cold
            times = [(asyncio.run(get_narinfos(s.nginx, hash_parts, concurrency)),
                      asyncio.run(get_narinfos(s.bridge, hash_parts, concurrency))) for _ in range(ROUNDS)]
            nginx, bridge = (min(column) for column in zip(*times))
            print(ratio_line(f"{REQUESTS} narinfo GETs, {what}", bridge, nginx, "nginx", 2.0))
            print(ratio_line("  the same, first (cold) round", times[0][1], times[0][0], "nginx", 2.0))


if __name__ == "__main__":
    main()
