"""The remote gRPC path against the local store: `cairn dump` and `cairn castore import` over
`grpc+unix://` (a `cairn daemon` on the same machine) vs the same command on `local://`.

The remote dump asks the daemon to render (Cairn's NarService); the import streams blobs and the
tree's directories through PutMany. Django-5.0 (3,653 small files) and numpy-2.1.0 (fewer,
larger files). Runs alternate between
the two sides; best of 5 (dump) and of 3 (import, each into a fresh store, the daemon's stopped
before its store is measured). Targets: each time ratio <= 1.5x; stored bytes (packs and
index) of the import within 2%. The dump of a one-byte file shows the part of a remote dump that
does not depend on its size.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

from common import CAIRN, ROOT, corpus_trees, fresh_dir, ratio_line, timed

WORK = ROOT / "bench" / "out" / "remote-castore"
TREES = ("Django-5.0", "numpy-2.1.0")


@contextlib.contextmanager
def daemon(store: Path, path: Path) -> Iterator[str]:
    """A `cairn daemon` serving `store` on a unix socket, once it accepts connections; stopped by SIGTERM."""
    url = f"grpc+unix://{path}"
    proc = subprocess.Popen([CAIRN, "daemon", "--listen", url, "--store", f"local://{store}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not listening(path):
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with status {proc.returncode}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def stored_bytes(store: Path) -> int:
    stats = subprocess.run([CAIRN, "stats", "--json", "--store", f"local://{store}"], check=True,
                           capture_output=True, text=True).stdout
    return json.loads(stats)["storedBytes"]


def dumps(trees: list[Path]) -> None:
    """Each tree's dump, and a one-byte file's: what a remote dump costs whatever its size (the
    client's start with grpcio and protobuf, a connection, two calls), so the rest of each
    tree's dump can be compared on its own."""
    store = fresh_dir(WORK / "dump-store")
    tiny = fresh_dir(WORK / "tiny") / "one-byte"
    tiny.write_bytes(b"x")
    paths = {tree.name: subprocess.run([CAIRN, "import", "--store", f"local://{store}", str(tree)], check=True,
                                       capture_output=True, text=True).stdout.strip() for tree in [*trees, tiny]}
    with daemon(store, WORK / "dump.sock") as url:
        times = {}
        for name, path in paths.items():
            local, remote = [], []
            for _ in range(5):
                local.append(timed([CAIRN, "dump", "--store", f"local://{store}", path]))
                remote.append(timed([CAIRN, "dump", "--store", url, path]))
            times[name] = min(remote), min(local)
    fixed_remote, fixed_local = times.pop(tiny.name)
    print(ratio_line("dump of a one-byte file over grpc+unix (the fixed cost)", fixed_remote, fixed_local,
                     "local://", None))
    for name, (remote, local) in times.items():
        print(ratio_line(f"dump {name} over grpc+unix", remote, local, "local://", 1.5))
        print(ratio_line("  the same beyond the one-byte dump", remote - fixed_remote, local - fixed_local,
                         "local://", None))


def imports(trees: list[Path]) -> None:
    for tree in trees:
        local, remote, local_bytes, remote_bytes = [], [], 0, 0
        for _ in range(3):
            store = fresh_dir(WORK / "import-local")
            local.append(timed([CAIRN, "castore", "import", "--store", f"local://{store}", str(tree)]))
            local_bytes = stored_bytes(store)
            store = fresh_dir(WORK / "import-remote")
            with daemon(store, WORK / "import.sock") as url:
                remote.append(timed([CAIRN, "castore", "import", "--store", url, str(tree)]))
            remote_bytes = stored_bytes(store)
        print(ratio_line(f"castore import {tree.name} over grpc+unix", min(remote), min(local), "local://", 1.5))
        print(ratio_line(f"stored bytes of {tree.name} imported over grpc+unix", remote_bytes / 1e6,
                         local_bytes / 1e6, "local://", 1.02, unit="MB"))


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    trees = [t for t in corpus_trees() if t.name in TREES]
    dumps(trees)
    imports(trees)


if __name__ == "__main__":
    main()
