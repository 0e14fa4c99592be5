"""Figure "Full disk": a store on small tmpfs file systems, filled at eleven points of a write.

The store keeps its metadata (LMDB) on one tmpfs and its packs on another, so each point fills
exactly the one it means. A daemon and a nar-bridge serve the store throughout. At each point:
fill the file system, make the write (a `cairn` command, a gRPC call through `cairn --store
grpc+unix://`, an HTTP upload), and check that it fails cleanly (one `cairn: error:` line and
exit 1, or an HTTP 5xx with a one-line reason), that the store still reads (`cairn path-info` of
a path stored before) and verifies (`cairn verify --all`), then free the space and make the same
write again: it must succeed, through the same daemon and nar-bridge (never restarted).

Run as root (it mounts tmpfs): `cd bench && ../.venv/bin/python full_disk.py` (about two
minutes). Prints the table and exits 1 if any point fails. The quick regression tests of the
same behaviour are tests/castore/test_full_disk.py, tests/store/test_cli_full_disk.py and
tests/nar_bridge/test_full_disk.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nar_bridge.names import NarFile  # noqa: E402  (bench scripts run from bench/)
from tests.fuse.mounts import daemon  # noqa: E402
from tests.nar_bridge.conftest import Bridge, make_upload, small_tree  # noqa: E402
from tests.small_fs import fill, free_space, tmpfs  # noqa: E402

CAIRN = str(Path(sys.executable).parent / "cairn")
FS_BYTES = 64 << 20
"""Each tmpfs: room for two packs (24 MiB each), so a large import fills it between seals."""
TREE_FILES = 4000


@dataclass
class Outcome:
    ok: bool
    said: str  # what the client saw: the one line, or the HTTP status and reason
    clean: bool = False  # a failure as the edge must give it: exit 1 with one `cairn: error:` line, or a 5xx


@dataclass
class Row:
    point: str
    full: str  # which file system was full: packs or meta
    failed: Outcome
    readable: bool
    verified: bool
    again: Outcome

    @property
    def good(self) -> bool:
        return self.failed.clean and self.readable and self.verified and self.again.ok


def _one_line(said: str) -> bool:
    return "\n" not in said.strip() and "Traceback" not in said


def cairn(*args: str) -> Outcome:
    done = subprocess.run([CAIRN, *args], capture_output=True, text=True, timeout=300)
    said = (done.stderr if done.returncode else done.stdout).strip()
    clean = done.returncode == 1 and said.startswith("cairn: error: ") and _one_line(said)
    return Outcome(done.returncode == 0, said, clean)


def http(reply) -> Outcome:
    return Outcome(reply.status == 200, f"HTTP {reply.status}: {reply.body.decode(errors='replace').strip()}",
                   500 <= reply.status < 600)


class Site:
    """The two file systems, the store over them, and the daemon and nar-bridge serving it."""

    def __init__(self, work: Path, stack: contextlib.ExitStack) -> None:
        self.work = work
        self.meta = stack.enter_context(tmpfs(work / "meta-fs", FS_BYTES))
        self.packs = stack.enter_context(tmpfs(work / "packs-fs", FS_BYTES))
        self.store = f"local://{self.meta}/store?packs=file://{self.packs}/packs"
        self.grpc = stack.enter_context(daemon(self.store, work / "daemon.sock"))
        self.bridge = Bridge(self.store, [], work / "bridge.log").start()
        stack.callback(self.bridge.stop)
        self.inputs = work / "inputs"
        self.inputs.mkdir()
        self.kept = self.path_of("kept", b"stored before any disk filled up\n")

    def path_of(self, name: str, data: bytes) -> str:
        """Import a file while there is room; its store path."""
        (self.inputs / name).write_bytes(data)
        outcome = cairn("import", "--store", self.store, str(self.inputs / name))
        assert outcome.ok, outcome.said
        return outcome.said

    def file(self, name: str, size: int) -> str:
        path = self.inputs / name
        path.write_bytes(os.urandom(size))
        return str(path)

    def tree(self, name: str, files: int = TREE_FILES) -> str:
        """Many small files in many directories: thousands of records, so LMDB must grow its file
        (a small commit fits in the pages it has free and never meets the full disk)."""
        root = self.inputs / name
        for i in range(files):
            folder = root / f"d{i % (files // 20)}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{i}").write_bytes(os.urandom(100))
        return str(root)

    def check(self, point: str, full: str, write: Callable[[], Outcome], leave: int = 0) -> Row:
        fs = self.meta if full == "meta" else self.packs
        fill(fs, leave)
        try:
            failed = write()
            readable = cairn("path-info", "--store", self.store, self.kept).ok
            verified = self.verified()
        finally:
            free_space(fs)
        return Row(point, full, failed, readable, verified, write())

    def verified(self) -> bool:
        verify = subprocess.run([CAIRN, "verify", "--all", "--store", self.store], capture_output=True, text=True,
                                timeout=300)
        return verify.returncode == 0 and ": 0 problems" in verify.stdout + verify.stderr


def points(site: Site) -> Iterator[Row]:
    store, grpc, bridge = site.store, site.grpc, site.bridge
    big = site.file("big", 1 << 20)
    yield site.check("CLI import: pack put", "packs", lambda: cairn("import", "--store", store, big))
    tree = site.tree("tree")
    yield site.check("CLI import: metadata commit", "meta", lambda: cairn("import", "--store", store, tree))
    castore = site.file("castore", 1 << 20)
    yield site.check("CLI castore import: pack put", "packs",
                     lambda: cairn("castore", "import", "--store", store, castore))
    sealed = site.file("sealed", 40 << 20)
    yield site.check("CLI import: pack sealed mid-import", "packs",
                     lambda: cairn("import", "--store", store, sealed), leave=30 << 20)
    blob = site.file("blob", 1 << 20)
    yield site.check("daemon BlobService.Put: pack put", "packs",
                     lambda: cairn("castore", "import", "--store", grpc, blob))
    dirs = site.tree("dirs")
    yield site.check("daemon Blob/DirectoryService.Put: metadata commit", "meta",
                     lambda: cairn("castore", "import", "--store", grpc, dirs))
    path = site.tree("path")
    yield site.check("daemon import (castore + PathInfoService.Put): metadata commit", "meta",
                     lambda: cairn("import", "--store", grpc, path))
    small = make_upload(small_tree(site.inputs / "upload", "full-disk"))
    small_nar = NarFile(hashlib.sha256(small.nar).digest(), "none")
    yield site.check("nar-bridge NAR upload: pack put", "packs",
                     lambda: http(bridge.put(f"/{small_nar.url}", small.nar)))
    many = make_upload(Path(site.tree("many-upload")))
    many_nar = NarFile(hashlib.sha256(many.nar).digest(), "none")
    yield site.check("nar-bridge NAR upload: metadata commit", "meta",
                     lambda: http(bridge.put(f"/{many_nar.url}", many.nar)))
    copied = site.tree("copied")
    source = f"local://{site.work}/source"
    copied_path = cairn("import", "--store", source, copied).said
    yield site.check("CLI copy between stores: metadata commit", "meta",
                     lambda: cairn("copy", "--from", source, "--to", store, copied_path))
    yield site.check("nar-bridge narinfo upload (after its NAR)", "meta",
                     lambda: http(bridge.put(many.narinfo_path, many.narinfo(many_nar).encode())))


def run(work: Path) -> tuple[list[Row], bool]:
    """The rows, and whether the store verifies once every write was made again."""
    with contextlib.ExitStack() as stack:
        site = Site(work, stack)
        rows = list(points(site))
        return rows, site.verified()


def table(rows: list[Row]) -> str:
    lines = ["| # | point | full | failure seen by the client | one line | readable | verify clean | "
             "write after freeing (same daemon/bridge) |", "|---|---|---|---|---|---|---|---|"]
    for n, row in enumerate(rows, 1):
        lines_said = row.failed.said.splitlines() or [""]
        said = lines_said[0] if len(lines_said[0]) < 140 else lines_said[0][:137] + "..."
        said = said.replace("|", "\\|") + (f" (+{len(lines_said) - 1} lines)" if len(lines_said) > 1 else "")
        lines.append(f"| {n} | {row.point} | {row.full} | {said} | {_yes(row.failed.clean)} | "
                     f"{_yes(row.readable)} | {_yes(row.verified)} | "
                     f"{_yes(row.again.ok)}{'' if row.again.ok else ': ' + row.again.said.splitlines()[0][:100]} |")
    good = sum(row.good for row in rows)
    lines.append(f"\n{good} of {len(rows)} points clean")
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cairn-full-disk-") as work:
        rows, verified = run(Path(work))
    print(table(rows))
    print(f"cairn verify --all after every write was made again: {'clean' if verified else 'PROBLEMS'}")
    return 0 if verified and all(row.good for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
