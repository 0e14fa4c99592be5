"""A full disk under a running engine (a real tmpfs, filled): the write that meets it fails with
BackendError, nothing half-written is recorded, and once there is room the same engine writes
again without being reopened."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from castore.blobs.local import LocalBlobService
from castore.digest import B3Digest
from castore.errors import BackendError
from castore.local.registry import open_engine
from tests.small_fs import fill, free_space, needs_root, tmpfs

pytestmark = needs_root


def put(blobs: LocalBlobService, data: bytes) -> B3Digest:
    writer = blobs.open_write()
    writer.write(data)
    return writer.close()


def clean(blobs: LocalBlobService) -> bool:
    return not list(blobs.verify_all())


@pytest.mark.parametrize("full", ["packs", "meta"])
def test_writes_work_again_once_the_full_disk_has_room(tmp_path: Path, full: str) -> None:
    """`packs`: the pack put fails; `meta`: the LMDB commit after it fails."""
    with tmpfs(tmp_path / "fs", 8 << 20) as fs:
        roomy = tmp_path / "roomy"
        url = (f"local://{fs}/store?packs=file://{roomy}" if full == "meta"
               else f"local://{roomy}/store?packs=file://{fs}/packs")
        blobs = LocalBlobService(open_engine(url))
        kept = put(blobs, b"before the disk filled up")
        fill(fs)
        lost = os.urandom(1 << 20)
        with pytest.raises(BackendError, match="No space left on device|the file system is full"):
            put(blobs, lost)  # LMDB on a full tmpfs may say EIO: the error then says the disk is full
        assert not blobs.has(B3Digest.of(lost))
        free_space(fs)
        after = put(blobs, os.urandom(1 << 20))
        assert blobs.read_all(after) is not None and blobs.read_all(kept) == b"before the disk filled up"
        assert put(blobs, lost) == B3Digest.of(lost)  # the lost write, written again
        assert clean(blobs)
        blobs.close()
        reopened = LocalBlobService(open_engine(url))
        assert reopened.read_all(B3Digest.of(lost)) == lost and clean(reopened)
        reopened.close()


def test_a_batch_under_way_when_a_commit_fails_fails_too(tmp_path: Path) -> None:
    """Another thread's batch staged records the failed commit discarded: its end says so,
    rather than acknowledging a blob that was not stored (or recording one half stored)."""
    with tmpfs(tmp_path / "fs", 8 << 20) as fs:
        blobs = LocalBlobService(open_engine(f"local://{tmp_path}/store?packs=file://{fs}/packs"))
        staged, failed, ended = threading.Event(), threading.Event(), []
        in_batch = os.urandom(1 << 20)

        def batch_writer() -> None:
            try:
                with blobs.batch():
                    put(blobs, in_batch)
                    staged.set()
                    failed.wait()
            except BackendError as e:
                ended.append(e)

        thread = threading.Thread(target=batch_writer)
        thread.start()
        staged.wait()
        fill(fs)
        with pytest.raises(BackendError):
            put(blobs, b"outside any batch")  # commits what is staged, the batch's records too
        free_space(fs)
        failed.set()
        thread.join()
        assert len(ended) == 1 and "write it again" in str(ended[0])
        assert not blobs.has(B3Digest.of(in_batch)) and clean(blobs)
        assert put(blobs, in_batch) == B3Digest.of(in_batch)
        blobs.close()
