"""A running daemon and nar-bridge over a store whose packs' disk fills up (a real tmpfs): the
write that meets it is a clean UNAVAILABLE / 503 with the reason, and once there is room the same
process accepts writes again (before, one ENOSPC failed every write until a restart)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from nar_bridge.names import NarFile
from store import api, nixbase32
from tests.fuse.mounts import daemon
from tests.nar_bridge.conftest import CAIRN, make_upload, small_tree
from tests.conftest import make_zoo
from tests.small_fs import fill, free_space, needs_root, tmpfs

pytestmark = needs_root


def test_the_daemon_writes_again_once_the_disk_has_room(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", 16 << 20) as fs:
        store = f"local://{tmp_path}/store?packs=file://{fs}/packs"
        with daemon(store, tmp_path / "daemon.sock") as url:
            blob = tmp_path / "blob"
            blob.write_bytes(os.urandom(1 << 20))
            put = [CAIRN, "castore", "import", "--store", url, str(blob)]
            fill(fs)
            done = subprocess.run(put, capture_output=True, text=True)
            assert done.returncode == 1 and done.stderr.count("\n") == 1
            assert "UNAVAILABLE" in done.stderr and "No space left on device" in done.stderr
            free_space(fs)
            done = subprocess.run(put, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            digest = done.stdout.split()[1]  # "file b3:... size=... node=..."
            again = subprocess.run([CAIRN, "castore", "cat", "--store", url, digest], capture_output=True)
            assert again.stdout == blob.read_bytes()


def test_the_bridge_accepts_uploads_again_once_the_disk_has_room(tmp_path: Path, start_bridge) -> None:
    upload = make_upload(small_tree(tmp_path / "tree", "full"))
    nar_file = NarFile(hashlib.sha256(upload.nar).digest(), "none")
    with tmpfs(tmp_path / "fs", 16 << 20) as fs:
        bridge = start_bridge(f"local://{tmp_path}/store?packs=file://{fs}/packs")
        fill(fs)
        reply = bridge.put(f"/{nar_file.url}", upload.nar)
        assert reply.status == 503 and b"No space left on device" in reply.body
        free_space(fs)
        assert bridge.put(f"/{nar_file.url}", upload.nar).status == 200
        assert bridge.put(upload.narinfo_path, upload.narinfo(nar_file).encode()).status == 200
        assert bridge.get(f"/{nar_file.url}").body == upload.nar
        bridge.stop()


def test_a_nar_cache_on_a_full_disk_costs_the_cache_its_copy_not_the_client_its_nar(tmp_path: Path,
                                                                                     start_bridge) -> None:
    """Before, the first request's render went into the cache file first: a full disk failed it."""
    tree = make_zoo(tmp_path / "zoo", big=3 << 20)
    with api.open_store(f"local://{tmp_path}/store") as store:
        info = api.import_path(store, tree)
        whole = b"".join(api.dump(store, info.store_path))
    with tmpfs(tmp_path / "fs", 16 << 20) as fs:
        bridge = start_bridge(f"local://{tmp_path}/store", "--nar-cache", str(fs / "nars"))
        fill(fs)
        path = f"/nar/{nixbase32.encode(info.nar_sha256)}.nar"
        reply = bridge.get(path, Accept_Encoding="identity")
        assert reply.status == 200 and reply.body == whole
        assert os.listdir(fs / "nars") == []
        free_space(fs)
        assert bridge.get(path, Accept_Encoding="identity").body == whole
        assert os.listdir(fs / "nars") == [info.nar_sha256.hex()]
        bridge.stop()
