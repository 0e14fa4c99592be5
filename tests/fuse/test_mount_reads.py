"""Reading through a real mount: random reads of a large file, lost chunks, slow blobs."""

from __future__ import annotations

import errno
import io
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from castore.blobs.service import BlobService, BlobStat, BlobWriter
from castore.digest import B3Digest
from castore.grpc_serve import serve
from castore.grpc_server import castore_services
from castore.local.engine import CHUNKS
from castore.local.registry import open_engine
from castore.url import open_castore
from fuse.contents import WHOLE
from store.grpc_server import pathinfo_services
from store.url import open_store
from tests.fuse.mounts import cairn, fuse_test, mounted

pytestmark = fuse_test

MiB = 1 << 20


def import_tree(tmp_path: Path, files: dict[str, bytes]) -> tuple[str, str]:
    """A local store holding a directory of `files`; its URL and the path's basename."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name, data in files.items():
        (tree / name).write_bytes(data)
    url = f"local://{tmp_path / 'store'}"
    return url, os.path.basename(cairn("import", "--store", url, str(tree)).stdout.decode().strip())


@pytest.mark.slow
def test_random_reads_from_several_threads_match_the_original(tmp_path: Path) -> None:
    data = random.Random(100).randbytes(100 * MiB)
    url, basename = import_tree(tmp_path, {"big.bin": data})
    mountpoint = tmp_path / "mnt"
    with mounted(["mount", str(mountpoint), "--store", url], mountpoint) as mount:
        path = mount.path(basename, "big.bin")
        assert path.stat().st_size == len(data)

        def reader(seed: int) -> int:
            rng = random.Random(seed)
            fd = os.open(path, os.O_RDONLY)
            try:
                for _ in range(40):
                    offset = rng.randrange(len(data))
                    size = rng.choice([1, 4096, 100_000, MiB])
                    assert os.pread(fd, size, offset) == data[offset:offset + size], (offset, size)
            finally:
                os.close(fd)
            return seed

        with ThreadPoolExecutor(8) as pool:
            assert sorted(pool.map(reader, range(8))) == list(range(8))


def test_files_handed_to_the_kernel_at_open_read_back_exactly(tmp_path: Path) -> None:
    """Small files a tree walk fetched go to the page cache with the open: page edges must hold."""
    rng = random.Random(6)
    files = {f"size-{n}": rng.randbytes(n) for n in (1, 4095, 4096, 4097, 65536, WHOLE - 1, WHOLE, WHOLE + 1)}
    url, basename = import_tree(tmp_path, files)
    mountpoint = tmp_path / "mnt"
    with mounted(["mount", str(mountpoint), "--store", url], mountpoint) as mount:
        root = mount.path(basename)
        assert sorted(os.listdir(root)) == sorted(files)  # starts the walk that fetches them
        time.sleep(0.5)
        for name, data in files.items():
            assert (root / name).read_bytes() == data, name
            fd = os.open(root / name, os.O_RDONLY)
            try:
                for offset in (0, 1, 4095, 4096, len(data) - 1):
                    assert os.pread(fd, 5000, offset) == data[offset:offset + 5000], (name, offset)
            finally:
                os.close(fd)


def lose_chunks(store: Path, digests: list[B3Digest]) -> None:
    """Delete chunk records from the local engine, as a damaged store would have lost them."""
    engine = open_engine(str(store))
    try:
        assert all(engine.metadata.get(CHUNKS, bytes(d)) is not None for d in digests), digests
        engine.metadata.commit({}, {CHUNKS: [bytes(d) for d in digests]})
    finally:
        engine.close()


def test_a_lost_chunk_gives_eio_for_its_reads_only(tmp_path: Path) -> None:
    lost, big = b"this file goes missing\n", random.Random(5).randbytes(4 * MiB)
    url, basename = import_tree(tmp_path, {"kept.txt": b"kept\n", "lost.txt": lost, "big.bin": big})
    with open_castore(url) as castore:
        chunks = castore.blobs.stat(B3Digest.of(big)).chunks
    middle = len(chunks) // 2
    start = sum(c.size for c in chunks[:middle])
    lose_chunks(tmp_path / "store", [B3Digest.of(lost), chunks[middle].digest])

    mountpoint = tmp_path / "mnt"
    with mounted(["mount", str(mountpoint), "--store", url], mountpoint) as mount:
        root = mount.path(basename)
        with pytest.raises(OSError) as raised:
            (root / "lost.txt").read_bytes()
        assert raised.value.errno == errno.EIO
        assert (root / "kept.txt").read_bytes() == b"kept\n"
        fd = os.open(root / "big.bin", os.O_RDONLY)
        try:
            # Far enough from the lost chunk that the kernel's read-ahead does not reach it.
            assert os.pread(fd, 4096, 0) == big[:4096]
            assert os.pread(fd, 4096, len(big) - 4096) == big[-4096:]
            with pytest.raises(OSError) as raised:
                os.pread(fd, 100, start + 10)
            assert raised.value.errno == errno.EIO
        finally:
            os.close(fd)
        assert sorted(os.listdir(root)) == ["big.bin", "kept.txt", "lost.txt"]  # the mount lives on
    log = mount.log.read_text()
    assert f"blob {B3Digest.of(lost)} not found" in log
    assert f"blob {chunks[middle].digest} not found" in log


class SlowBlobs(BlobService):
    """Delegates to `inner`, but takes `delay` seconds to open the blob `slow`."""

    def __init__(self, inner: BlobService, slow: B3Digest, delay: float) -> None:
        self._inner = inner
        self._slow = slow
        self._delay = delay

    def has(self, digest: B3Digest) -> bool:
        return self._inner.has(digest)

    def stat(self, digest: B3Digest) -> BlobStat | None:
        return self._inner.stat(digest)

    def open_read(self, digest: B3Digest) -> io.RawIOBase | None:
        if digest == self._slow:
            time.sleep(self._delay)
        return self._inner.open_read(digest)

    def open_write(self) -> BlobWriter:
        return self._inner.open_write()


def test_a_slow_blob_does_not_stall_other_readers(tmp_path: Path) -> None:
    slow = b"slow to arrive\n"
    others = {f"file-{i:02}": f"quick {i}\n".encode() for i in range(20)}
    url, basename = import_tree(tmp_path, {"slow.txt": slow, **others})
    delay = 3.0
    with open_store(url) as store:
        daemon = serve(f"grpc+unix://{tmp_path}/slow.sock", [
            castore_services(SlowBlobs(store.castore.blobs, B3Digest.of(slow), delay), store.castore.directories),
            pathinfo_services(store.pathinfo, store.castore)])
        try:
            mountpoint = tmp_path / "mnt"
            with mounted(["mount", str(mountpoint), "--store", f"grpc+unix://{tmp_path}/slow.sock"],
                         mountpoint) as mount:
                root = mount.path(basename)
                got: list[bytes] = []
                waiting = threading.Thread(target=lambda: got.append((root / "slow.txt").read_bytes()))
                started = time.monotonic()
                waiting.start()
                time.sleep(0.2)
                for name, data in others.items():
                    assert (root / name).read_bytes() == data
                assert time.monotonic() - started < delay / 2, "other files waited for the slow one"
                waiting.join()
                assert got == [slow] and time.monotonic() - started >= delay
        finally:
            daemon.stop(0)
