"""What FUSE itself costs `nix hash path` here: the floor under bench/fuse_hash.py's ratio.

Each corpus tree is hashed through three fresh mounts, in the same run as on the tree itself:
- Cairn's mount over a local store holding the seven trees (as fuse_hash.py does);
- memfs: a pyfuse3 file system on Cairn's request loop (fuse.loop) that answers every request
  from dictionaries filled before it mounts, and pushes each file into the page cache at its
  first open as Cairn does: the cost of the round trips alone, with no store behind them;
- libfuse's own C example, passthrough_ll (single-threaded, cache=always), when gcc and
  libfuse3-dev are installed: a C daemon passing requests through to the original tree.
A tree is hashed once per fresh mount, best of 3 rounds; every hash is checked.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from common import ROOT, corpus_trees, fresh_dir
from fuse_hash import hash_path, import_corpus, mounted, serving

WORK = ROOT / "bench" / "out" / "fuse-floor"
ROUNDS = 3
PASSTHROUGH_SOURCE = Path("/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c")


def serve_memfs(source: str, mountpoint: str) -> None:
    """Mount a preloaded copy of `source` at `mountpoint` until unmounted (run in its own process)."""
    import pyfuse3
    import trio

    sys.path.insert(0, str(ROOT))
    from fuse import loop

    attrs: dict[int, pyfuse3.EntryAttributes] = {}
    listings: dict[int, list[tuple[bytes, pyfuse3.EntryAttributes]]] = {}
    contents: dict[int, bytes] = {}
    pushed: set[int] = set()

    def load(path: str, inode: int) -> int:
        st = os.lstat(path)
        a = attrs[inode] = pyfuse3.EntryAttributes()
        a.st_ino, a.st_mode, a.st_size, a.st_nlink = inode, st.st_mode, st.st_size, 1
        a.entry_timeout = a.attr_timeout = 86400.0
        following = inode + 1
        if stat.S_ISDIR(st.st_mode):
            children = []
            for name in sorted(os.listdir(path)):
                children.append((os.fsencode(name), following))
                following = load(os.path.join(path, name), following)
            listings[inode] = [(name, attrs[child]) for name, child in children]
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                contents[inode] = f.read()
        return following

    load(source, pyfuse3.ROOT_INODE)

    class MemFS(pyfuse3.Operations):
        async def getattr(self, inode, ctx):
            return attrs[inode]

        async def lookup(self, parent, name, ctx):
            for entry, a in listings[parent]:
                if entry == name:
                    return a
            raise pyfuse3.FUSEError(errno.ENOENT)

        async def opendir(self, inode, ctx):
            return inode

        async def readdir(self, fh, start, token):
            for i, (name, a) in enumerate(listings[fh][start:], start + 1):
                if not pyfuse3.readdir_reply(token, name, a, i):
                    return

        async def open(self, inode, flags, ctx):
            if inode not in pushed and contents[inode]:
                pyfuse3.notify_store(inode, 0, contents[inode])
            pushed.add(inode)
            return pyfuse3.FileInfo(fh=inode, keep_cache=True)

        async def read(self, fh, off, size):
            return contents[fh][off:off + size]

    async def serve() -> None:
        pyfuse3.init(MemFS(), mountpoint, {"ro", "default_permissions", "fsname=memfs"})
        try:
            await loop.main()
        finally:
            pyfuse3.close(unmount=True)

    trio.run(serve)


def build_passthrough() -> str | None:
    """passthrough_ll built from libfuse's example, or None when it cannot be built here."""
    if not PASSTHROUGH_SOURCE.exists() or shutil.which("gcc") is None:
        return None
    out = WORK / "passthrough_ll"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True, text=True)
    built = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(PASSTHROUGH_SOURCE),
                            *flags.stdout.split()], capture_output=True)
    return str(out) if flags.returncode == 0 and built.returncode == 0 else None


def main() -> None:
    fresh_dir(WORK)
    trees = corpus_trees()
    store, basenames = import_corpus(trees)
    passthrough = build_passthrough()
    expected = {t: hash_path(t)[1] for t in trees}
    best: dict[str, dict[Path, float]] = {k: {t: float("inf") for t in trees}
                                          for k in ("native", "cairn", "memfs", "passthrough_ll")}

    def measure(kind: str, tree: Path, path: Path) -> None:
        seconds, got = hash_path(path)
        if got != expected[tree]:
            raise AssertionError(f"{kind} {tree.name}: {got}, {expected[tree]} natively")
        best[kind][tree] = min(best[kind][tree], seconds)

    for _ in range(ROUNDS):
        for tree, basename in zip(trees, basenames):
            measure("native", tree, tree)
            with mounted(store, WORK / "cairn") as mountpoint:
                measure("cairn", tree, mountpoint / basename)
            with serving([sys.executable, __file__, "--serve", str(tree), str(WORK / "memfs")],
                         WORK / "memfs") as mountpoint:
                measure("memfs", tree, mountpoint)
            if passthrough:
                with serving([passthrough, "-f", "-s", "-o", f"source={tree},cache=always",
                              str(WORK / "passthrough")], WORK / "passthrough") as mountpoint:
                    measure("passthrough_ll", tree, mountpoint)
    kinds = [k for k in best if k != "native" and (k != "passthrough_ll" or passthrough)]
    for tree in [*trees, None]:
        times = {k: sum(best[k].values()) if tree is None else best[k][tree] for k in best}
        name = "all seven trees" if tree is None else tree.name
        print(f"nix hash path {name}: native {times['native']:.3f} s; "
              + "; ".join(f"{k} {times[k]:.3f} s ({times[k] / times['native']:.2f}x)" for k in kinds)
              + f"; cairn/memfs {times['cairn'] / times['memfs']:.2f}x")
    if not passthrough:
        print("passthrough_ll not measured: needs gcc, pkg-config and libfuse3-dev")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_memfs(sys.argv[2], sys.argv[3])
    else:
        main()
