"""The client of the cache-shootout style figures (Mic92's cache-shootout): every NAR of some store
paths fetched by plain HTTP GETs of each narinfo's `URL:`, `Accept-Encoding: identity`, with a
given number of connections at once; its throughput in MiB/s.

The GETs are curl's (`--parallel`, bodies to /dev/null): a client in Python costs as much CPU per
byte as the servers measured, and on a small machine would measure itself."""

from __future__ import annotations

import math
import subprocess
import time
import urllib.request

MiB = 1 << 20


def nar_urls(server: str, paths: list[str]) -> list[str]:
    """The NAR URL of each path, relative to a server, from its narinfo."""
    urls = []
    for path in paths:
        digest = path.removeprefix("/nix/store/")[:32]
        with urllib.request.urlopen(f"{server}/{digest}.narinfo") as reply:
            lines = reply.read().decode().splitlines()
        urls.append(dict(line.split(": ", 1) for line in lines if ": " in line)["URL"])
    return urls


def throughput(servers: list[str], paths: list[str], connections: int, rounds: int = 1) -> float:
    """MiB/s of fetching every NAR `rounds` times (more when needed to give each connection two
    requests), `connections` at a time, spread over the servers in turn."""
    nars = nar_urls(servers[0], paths)
    work = [nar for _ in range(max(rounds, math.ceil(2 * connections / len(nars)))) for nar in nars]
    argv = ["curl", "--silent", "--show-error", "--fail", "--parallel", "--parallel-immediate",
            "--parallel-max", str(connections), "--header", "Accept-Encoding: identity",
            "--write-out", "%{size_download}\\n"]
    for i, nar in enumerate(work):
        argv += ["--output", "/dev/null", f"{servers[i % len(servers)]}/{nar}"]
    start = time.perf_counter()
    sizes = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
    elapsed = time.perf_counter() - start
    if len(sizes) != len(work):
        raise RuntimeError(f"curl reported {len(sizes)} transfers of {len(work)}")
    return sum(map(int, sizes)) / MiB / elapsed
