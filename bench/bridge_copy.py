"""Substitution speed: `nix copy --from http://<nar-bridge>` of the corpus's seven store paths into a
fresh local store, vs the same command reading nginx serving the uncompressed `file://` binary cache
of the same paths.

The bridge renders every NAR from castore; it keeps recently served directory closures
(content-addressed, never stale), so its first run is printed too. Runs alternate between the
two servers (the machine is shared, so both see the same conditions); best of 3 wall times each,
a fresh Nix cache and destination per run. The destination is on tmpfs when there is one: the
client's disk writes are the same for both servers and would only blur the difference.

Target: ratio <= 1.5x.
"""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from common import (CAIRN, ROOT, add_to_nix, copy_from, corpus_trees, file_cache, fresh_dir, free_port, nginx,
                    ratio_line, running)

WORK = ROOT / "bench" / "out" / "bridge"
RUNS = 3


@dataclass
class Servers:
    bridge: str
    nginx: str
    paths: list[str]
    cache: Path  # the file:// binary cache nginx serves


@contextlib.contextmanager
def servers(paths: list[str]) -> Iterator[Servers]:
    """The paths in a fresh Cairn store served by nar-bridge, and in an uncompressed file://
    cache served by nginx."""
    store = fresh_dir(WORK / "cairn-store")
    subprocess.run([CAIRN, "copy", "--store", f"local://{store}", *paths], check=True, stderr=subprocess.DEVNULL)
    cache = file_cache(paths, WORK / "cache")
    bridge_port = free_port()
    bridge = [CAIRN, "nar-bridge", "--listen", f"127.0.0.1:{bridge_port}", "--store", f"local://{store}"]
    with nginx(cache, WORK) as nginx_url, running(bridge, f"http://127.0.0.1:{bridge_port}") as bridge_url:
        yield Servers(bridge_url, nginx_url, paths, cache)


def main() -> None:
    with servers(add_to_nix(corpus_trees())) as s:
        times = [(copy_from(s.nginx, s.paths), copy_from(s.bridge, s.paths)) for _ in range(RUNS)]
    nginx_best, bridge_best = (min(column) for column in zip(*times))
    print(ratio_line("nix copy --from, seven paths", bridge_best, nginx_best, "nginx file:// cache", 1.5))
    print(f"  (the bridge's first run, before its closure cache held these trees: {times[0][1]:.3f} s)")


if __name__ == "__main__":
    main()
