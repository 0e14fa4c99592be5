"""NAR serving in the manner of Mic92's cache-shootout: every NAR of the corpus fetched by plain
HTTP GETs (the `URL:` of each path's narinfo, `Accept-Encoding: identity`), through two
nar-bridges on the cluster (PostgreSQL + S3 packs on SeaweedFS, each bridge with an on-disk
cache of the pack ranges it reads, `packs-cache=`, unless --no-range-cache; requests alternate
between them) vs one nar-bridge on the embedded store, with 1 and with 16 connections at once.
Every bridge keeps hot rendered NARs in an on-disk cache of its own (`--nar-cache`), unless
--no-nar-cache.

Each NAR is fetched ROUNDS times per run (with 16 connections more, so there are at least two
requests per connection). Runs alternate between the two setups; best of 3 throughputs each (the first run
of a bridge is also its cold start: its closure cache is empty). Target: ratio >= 0.8x.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator

from cluster_services import cluster
from common import CAIRN, ROOT, corpus_trees, fresh_dir, free_port, running
from shootout import throughput

WORK = ROOT / "bench" / "out" / "cluster-serving"
RUNS = 3
ROUNDS = 3
CONNECTIONS = (1, 16)
RANGE_CACHE = "--no-range-cache" not in sys.argv
NAR_CACHE = "--no-nar-cache" not in sys.argv


def import_trees(store_url: str) -> list[str]:
    done = subprocess.run([CAIRN, "import", "--store", store_url, *map(str, corpus_trees())], check=True,
                          capture_output=True, text=True)
    return done.stdout.split()


@contextlib.contextmanager
def bridges(store_url: str, name: str, count: int, range_cache: bool = False) -> Iterator[list[str]]:
    """`count` nar-bridges on one store; their base URLs. With `range_cache` each keeps the pack
    ranges it reads in an on-disk cache of its own (`packs-cache=`), as one per machine would."""
    with contextlib.ExitStack() as stack:
        urls = []
        for i in range(count):
            port = free_port()
            url = f"{store_url}&packs-cache={fresh_dir(WORK / f'range-cache-{i}')}" if range_cache else store_url
            argv = [CAIRN, "nar-bridge", "--read-only", "--listen", f"127.0.0.1:{port}", "--store", url]
            if NAR_CACHE:
                argv += ["--nar-cache", str(fresh_dir(WORK / f"nar-cache-{name}-{i}"))]
            urls.append(stack.enter_context(running(argv, f"http://127.0.0.1:{port}")))
        yield urls


def main() -> None:
    with cluster() as c:
        embedded_url, cluster_url = f"local://{fresh_dir(WORK / 'embedded')}", c.store_url()
        paths = import_trees(embedded_url)
        if import_trees(cluster_url) != paths:
            raise RuntimeError("the two stores gave different store paths")
        with bridges(embedded_url, "embedded", 1) as one, bridges(cluster_url, "cluster", 2, RANGE_CACHE) as two:
            for connections in CONNECTIONS:
                runs = [(throughput(one, paths, connections, ROUNDS), throughput(two, paths, connections, ROUNDS))
                        for _ in range(RUNS)]
                embedded, clustered = (max(column) for column in zip(*runs))
                r = clustered / embedded
                print(f"NAR serving, {connections} connection(s): cluster (two bridges) {clustered:.1f} MiB/s vs "
                      f"embedded (one bridge) {embedded:.1f} MiB/s -> ratio {r:.2f}x "
                      f"(target >= 0.8x: {'ok' if r >= 0.8 else 'MISSED'})")
                print("  (every run, embedded / cluster: " + ", ".join(f"{e:.0f} / {k:.0f} MiB/s" for e, k in runs)
                      + ")")


if __name__ == "__main__":
    main()
