"""Read-through substitution: `nix copy --from` a nar-bridge whose path infos read through nginx
serving a signed `file://` cache of the corpus's seven store paths, vs `nix copy --from` that
nginx directly.

Cold: every round starts the bridge on a fresh, empty store, so every narinfo asked for is a
miss: the bridge fetches it from nginx, checks its signature, ingests the NAR, keeps the path,
and renders the NAR it serves from castore. Runs alternate between the two servers (the machine
is shared); best of 3 wall times each, a fresh Nix cache and destination per run (as in
bridge_copy.py). No target: the figure is new.

The bridge reads through with `--upstream nix+http://...?trusted-public-keys=NAME:KEY`: a near/far
`cache` of path infos whose near side is the bridge's store and whose far side is the nix+http
read-through, so a path is fetched once and then served (and found by its NAR hash) locally.
"""

from __future__ import annotations

import contextlib
from typing import Iterator
from urllib.parse import quote

from common import (CAIRN, ROOT, add_to_nix, copy_from, corpus_trees, file_cache, fresh_dir, free_port, nginx,
                    ratio_line, running, signing_key)

WORK = ROOT / "bench" / "out" / "readthrough"
RUNS = 3


@contextlib.contextmanager
def cold_bridge(upstream: str) -> Iterator[str]:
    """nar-bridge on a fresh, empty local store, reading through `upstream`; its URL."""
    store = fresh_dir(WORK / "cairn-store")
    port = free_port()
    argv = [CAIRN, "nar-bridge", "--listen", f"127.0.0.1:{port}", "--store", f"local://{store}", "--upstream", upstream]
    with running(argv, f"http://127.0.0.1:{port}") as url:
        yield url


def main() -> None:
    paths = add_to_nix(corpus_trees())
    secret, public = signing_key(fresh_dir(WORK / "key"), "cairn-bench-1")
    cache = file_cache(paths, WORK / "cache", secret)
    with nginx(cache, WORK) as nginx_url:
        upstream = f"nix+{nginx_url}/?trusted-public-keys={quote(public, safe=':')}"
        times = []
        for _ in range(RUNS):
            direct = copy_from(nginx_url, paths)
            with cold_bridge(upstream) as bridge_url:
                times.append((direct, copy_from(bridge_url, paths)))
    direct_best, through_best = (min(column) for column in zip(*times))
    print(ratio_line("nix copy --from, seven paths, read through (cold)", through_best, direct_best,
                     "nginx file:// cache", None))
    print(f"  (every round, through the bridge: {', '.join(f'{t:.3f}' for _, t in times)} s)")


if __name__ == "__main__":
    main()
