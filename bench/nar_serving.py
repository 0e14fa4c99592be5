"""NAR serving like Mic92's cache-shootout: every NAR of the corpus's seven store paths, 3 times,
fetched by plain HTTP GETs (each narinfo's `URL:`, `Accept-Encoding: identity`) from nar-bridge
on the embedded store vs nginx serving the uncompressed `file://` cache of the same paths, with
1 and with 16 connections at once.

The bridge keeps hot rendered NARs in an on-disk cache (`--nar-cache`) it serves with sendfile,
as nginx serves its files; a first, cold run (every NAR once, 1 connection) has it render every
NAR from castore (empty NAR, closure and frame caches) and is printed apart. Runs alternate between the two servers; best of
RUNS throughputs each. Targets: at most 2.0x nginx's time with 1 and with 16 connections, and
16 connections never slower than 1. `--no-nar-cache` measures the bridge rendering every time.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator

from common import CAIRN, ROOT, add_to_nix, corpus_trees, file_cache, fresh_dir, free_port, nginx, running
from shootout import throughput

WORK = ROOT / "bench" / "out" / "nar-serving"
RUNS = 5
ROUNDS = 3
CONNECTIONS = (1, 16)
NAR_CACHE = "--no-nar-cache" not in sys.argv


@contextlib.contextmanager
def bridge(paths: list[str]) -> Iterator[str]:
    """nar-bridge over a fresh embedded store holding `paths`."""
    store = fresh_dir(WORK / "cairn-store")
    subprocess.run([CAIRN, "copy", "--store", f"local://{store}", *paths], check=True, stderr=subprocess.DEVNULL)
    port = free_port()
    argv = [CAIRN, "nar-bridge", "--read-only", "--listen", f"127.0.0.1:{port}", "--store", f"local://{store}"]
    if NAR_CACHE:
        argv += ["--nar-cache", str(fresh_dir(WORK / "nar-cache"))]
    with running(argv, f"http://127.0.0.1:{port}") as url:
        yield url


def main() -> None:
    paths = add_to_nix(corpus_trees())
    cache = file_cache(paths, WORK / "file-cache")
    best: dict[int, float] = {}
    with nginx(cache, fresh_dir(WORK / "nginx")) as nginx_url, bridge(paths) as bridge_url:
        cold_nginx, cold_bridge = throughput([nginx_url], paths, 1), throughput([bridge_url], paths, 1)
        print(f"NAR serving, cold (every NAR once, 1 connection; the bridge renders each): nar-bridge "
              f"{cold_bridge:.1f} MiB/s vs nginx {cold_nginx:.1f} MiB/s -> ratio {cold_nginx / cold_bridge:.2f}x")
        for connections in CONNECTIONS:
            runs = [(throughput([nginx_url], paths, connections, ROUNDS),
                     throughput([bridge_url], paths, connections, ROUNDS)) for _ in range(RUNS)]
            peer, ours = (max(column) for column in zip(*runs))
            best[connections] = ours
            r = peer / ours  # time ratio: the same bytes, so the inverse of the throughputs'
            print(f"NAR serving, {connections} connection(s): nar-bridge {ours:.1f} MiB/s vs nginx file:// cache "
                  f"{peer:.1f} MiB/s -> ratio {r:.2f}x nginx's time (target <= 2.0x: {'ok' if r <= 2.0 else 'MISSED'})")
            print("  (every run, nginx / nar-bridge: " + ", ".join(f"{n:.0f} / {b:.0f} MiB/s" for n, b in runs) + ")")
    one, many = best[CONNECTIONS[0]], best[CONNECTIONS[-1]]
    print(f"nar-bridge with {CONNECTIONS[-1]} connections vs 1: {many:.1f} vs {one:.1f} MiB/s "
          f"(target: never slower: {'ok' if many >= one else 'MISSED'})")


if __name__ == "__main__":
    main()
