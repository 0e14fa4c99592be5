"""nar-bridge in front of a `cairn daemon` (`--store grpc+unix://`, Snix's usual set-up) vs
nar-bridge on the same store embedded: every NAR of the corpus's seven store paths, twice, by
plain HTTP GETs (see shootout), with 1 and with 16 connections, no NAR cache (every NAR rendered).

Over the daemon a whole NAR is rendered by the daemon, in its own store, and the bridge relays its
bytes (NarService); a range is read from the blobs it overlaps. Runs alternate between the two
bridges; best of RUNS each. No target: the figure says what the remote hop costs.
"""

from __future__ import annotations

import contextlib
import subprocess
from typing import Iterator

from common import CAIRN, ROOT, add_to_nix, corpus_trees, fresh_dir, free_port, running
from remote_castore import daemon
from shootout import throughput

WORK = ROOT / "bench" / "out" / "bridge-over-daemon"
RUNS = 3
ROUNDS = 2


@contextlib.contextmanager
def bridge(store_url: str) -> Iterator[str]:
    port = free_port()
    argv = [CAIRN, "nar-bridge", "--read-only", "--listen", f"127.0.0.1:{port}", "--store", store_url]
    with running(argv, f"http://127.0.0.1:{port}") as url:
        yield url


def main() -> None:
    paths = add_to_nix(corpus_trees())
    store = fresh_dir(WORK / "store")
    subprocess.run([CAIRN, "copy", "--store", f"local://{store}", *paths], check=True, stderr=subprocess.DEVNULL)
    with daemon(store, WORK / "daemon.sock") as daemon_url, \
            bridge(daemon_url) as remote, bridge(f"local://{store}") as local:
        throughput([remote], paths, 1), throughput([local], paths, 1)  # warm the page cache and both bridges
        for connections in (1, 16):
            runs = [(throughput([local], paths, connections, ROUNDS), throughput([remote], paths, connections, ROUNDS))
                    for _ in range(RUNS)]
            peer, ours = (max(column) for column in zip(*runs))
            print(f"nar-bridge over a daemon, {connections} connection(s): {ours:.1f} MiB/s vs the bridge on the "
                  f"embedded store {peer:.1f} MiB/s -> ratio {peer / ours:.2f}x its time")
            print("  (every run, embedded / over the daemon: "
                  + ", ".join(f"{a:.0f} / {b:.0f} MiB/s" for a, b in runs) + ")")


if __name__ == "__main__":
    main()
