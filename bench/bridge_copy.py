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
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from common import CAIRN, NIX_FLAGS, ROOT, corpus_trees, fresh_dir, ratio_line, timed

WORK = ROOT / "bench" / "out" / "bridge"
DEST = Path("/dev/shm/cairn-bench-bridge") if Path("/dev/shm").is_dir() else WORK
RUNS = 3


@dataclass
class Servers:
    bridge: str
    nginx: str
    paths: list[str]
    cache: Path  # the file:// binary cache nginx serves


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str) -> None:
    for _ in range(400):
        try:
            urllib.request.urlopen(f"{url}/nix-cache-info", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def running(argv: list[str], url: str, stop: int = signal.SIGTERM) -> Iterator[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(url)
        yield url
    finally:
        proc.send_signal(stop)
        proc.wait(30)


def add_to_nix(trees: list[Path]) -> list[str]:
    """`nix-store --add` of each tree: their store paths, in order."""
    done = subprocess.run(["nix-store", "--add", *map(str, trees)], check=True, capture_output=True, text=True)
    return done.stdout.split()


@contextlib.contextmanager
def servers(paths: list[str]) -> Iterator[Servers]:
    """The paths in a fresh Cairn store served by nar-bridge, and in an uncompressed file://
    cache served by nginx (one worker, sendfile: its best static-file setup)."""
    store = fresh_dir(WORK / "cairn-store")
    subprocess.run([CAIRN, "copy", "--store", f"local://{store}", *paths], check=True, stderr=subprocess.DEVNULL)
    cache = fresh_dir(WORK / "cache")
    subprocess.run(["nix", *NIX_FLAGS, "copy", "--to", f"file://{cache}?compression=none", *paths], check=True,
                   stderr=subprocess.DEVNULL)
    nginx_port, bridge_port = free_port(), free_port()
    conf = WORK / "nginx.conf"
    conf.write_text(f"""
        daemon off; worker_processes 1; user root; pid {WORK}/nginx.pid; error_log {WORK}/nginx-error.log;
        events {{ worker_connections 256; }}
        http {{
          access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
          types {{ text/x-nix-narinfo narinfo; application/x-nix-nar nar; }}
          client_body_temp_path {WORK}; proxy_temp_path {WORK}; fastcgi_temp_path {WORK};
          uwsgi_temp_path {WORK}; scgi_temp_path {WORK};
          server {{ listen 127.0.0.1:{nginx_port}; root {cache}; }}
        }}""")
    nginx = ["nginx", "-c", str(conf), "-p", str(WORK)]
    bridge = [CAIRN, "nar-bridge", "--listen", f"127.0.0.1:{bridge_port}", "--store", f"local://{store}"]
    with running(nginx, f"http://127.0.0.1:{nginx_port}", signal.SIGQUIT) as nginx_url, \
            running(bridge, f"http://127.0.0.1:{bridge_port}") as bridge_url:
        yield Servers(bridge_url, nginx_url, paths, cache)


def copy_from(url: str, paths: list[str]) -> float:
    """One `nix copy --from url` into a fresh local store, with a fresh Nix narinfo cache."""
    dest = fresh_dir(DEST / "dest")
    env = dict(os.environ, XDG_CACHE_HOME=str(fresh_dir(DEST / "xdg-cache")))
    try:
        return timed(["nix", *NIX_FLAGS, "copy", "--no-check-sigs", "--from", url, "--to", f"local?root={dest}",
                      *paths], env=env)
    finally:
        shutil.rmtree(DEST, ignore_errors=True)


def main() -> None:
    with servers(add_to_nix(corpus_trees())) as s:
        times = [(copy_from(s.nginx, s.paths), copy_from(s.bridge, s.paths)) for _ in range(RUNS)]
    nginx, bridge = (min(column) for column in zip(*times))
    print(ratio_line("nix copy --from, seven paths", bridge, nginx, "nginx file:// cache", 1.5))
    print(f"  (the bridge's first run, before its closure cache held these trees: {times[0][1]:.3f} s)")


if __name__ == "__main__":
    main()
