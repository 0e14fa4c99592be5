"""The local store across processes: crashes lose nothing acknowledged, writers share a store,
and a huge blob imports in bounded memory."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from castore.blobs.local import LocalBlobService
from castore.digest import B3Digest
from castore.directories.local import LocalDirectoryService
from castore.local.packs import PACKS
from castore.local.registry import open_engine
from castore.storage.packs import pack_name

from tests.castore.local_seeded import blob_data, closure
from tests.castore.local_store import pack_files

ROOT = Path(__file__).resolve().parents[2]  # writer processes import tests.castore.local_seeded from here

WRITER = textwrap.dedent('''
    import sys
    from tests.castore.local_seeded import blob_data, closure
    from castore.url import open_castore

    store = open_castore("local://" + sys.argv[1])
    base = int(sys.argv[2])
    print("ready", flush=True)
    for n in range(10**9):
        seed = base + n * 100
        if n % 5 == 4:  # a batch: acknowledged when it exits
            acked = []
            with store.batch():
                for i in range(n % 7 + 1):
                    with store.blobs.open_write() as w:
                        w.write(blob_data(seed + i))
                        acked.append(f"B {seed + i} {w.close().hex()}")
                store.directories.put(closure(seed))
                acked.append(f"D {seed} {closure(seed)[-1].digest.hex()}")
            print("\\n".join(acked), flush=True)
        elif n % 5 == 2:
            root = store.directories.put(closure(seed))
            print(f"D {seed} {root.hex()}", flush=True)
        else:
            data = blob_data(seed)
            with store.blobs.open_write() as w:
                for i in range(0, len(data), 65_000):
                    w.write(data[i:i + 65_000])
                print(f"B {seed} {w.close().hex()}", flush=True)
''')


def acknowledged(output: bytes) -> list[tuple[str, int, B3Digest]]:
    """Complete lines only: a line cut by the kill was not acknowledged."""
    lines = output.decode().split("\n")[:-1]
    out = []
    for line in lines:
        kind, seed, digest = line.split()
        out.append((kind, int(seed), B3Digest(bytes.fromhex(digest))))
    return out


def check_store(path: Path, acked: list[tuple[str, int, B3Digest]]) -> None:
    blobs = LocalBlobService(open_engine(str(path)))
    dirs = LocalDirectoryService(open_engine(str(path)))
    try:
        for kind, seed, digest in acked:
            if kind == "B":
                data = blob_data(seed)
                assert digest == B3Digest.of(data)
                reader = blobs.open_read(digest)
                assert reader is not None, f"acknowledged blob {digest} (seed {seed}) lost"
                assert reader.read() == data
            else:
                leaf, mid, root = closure(seed)
                assert digest == root.digest
                assert list(dirs.get_recursive(digest)) == [root, leaf, mid], f"directory {digest} lost"
    finally:
        blobs.close()
        dirs.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rnd = random.Random(2024)
    acked: list[tuple[str, int, B3Digest]] = []
    deadline = time.monotonic() + 45
    kills = 0
    while kills < 25 and time.monotonic() < deadline:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(kills * 10**9)],
                                stdout=subprocess.PIPE, cwd=ROOT)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rnd.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        fresh = acknowledged(out)
        acked += fresh
        kills += 1
        check_store(store, fresh)  # a fresh engine each time: the killed one is gone
    check_store(store, acked)  # later writers appended after crash debris without harm
    assert kills >= 20
    assert sum(kind == "B" for kind, _, _ in acked) > 50
    assert sum(kind == "D" for kind, _, _ in acked) > 10


CONCURRENT = textwrap.dedent('''
    import sys
    from tests.castore.local_seeded import blob_data
    from castore.url import open_castore

    store = open_castore("local://" + sys.argv[1])
    base = int(sys.argv[2])
    def put(seed):
        with store.blobs.open_write() as w:
            w.write(blob_data(seed))
            print(f"B {seed} {w.close().hex()}", flush=True)
    put(base)  # holds a pack from here on
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(1, 60):
        if n % 10 == 0:
            with store.batch():
                for i in range(5):
                    put(base + n * 10 + i)
                    put(7 + i)  # the same data from both processes
        else:
            put(base + n * 10)
    store.close()
''')


def test_two_processes_write_the_same_store_at_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(store), str(base)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT) for base in (10**6, 2 * 10**6)]
    firsts = []
    for proc in procs:
        firsts.append(proc.stdout.readline())
        assert proc.stdout.readline() == b"ready\n"
    for proc in procs:  # both write packs now: never one with the same number, nor a shared file
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    acked = []
    for first, proc in zip(firsts, procs):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        acked += acknowledged(first + out)
    assert len(acked) > 100
    engine = open_engine(str(store))
    try:
        rows = list(engine.records.items(PACKS))
    finally:
        engine.close()
    files = pack_files(store)
    assert len(rows) == len({row[:32] for _, row in rows}) == len(files) > 50
    assert all(pack_name(path.read_bytes()) == path.stem for path in files)  # no writes interleaved
    check_store(store, acked)


MEMORY = textwrap.dedent('''
    import os, sys, time
    from castore.url import open_castore

    total = int(sys.argv[2])
    store = open_castore("local://" + sys.argv[1])
    start = time.perf_counter()
    with store.blobs.open_write() as w:
        for _ in range(total >> 20):
            w.write(os.urandom(1 << 20))  # unique: every chunk goes through frames and packs
        digest = w.close()
    elapsed = time.perf_counter() - start
    # VmHWM, not ru_maxrss: the latter carries the parent's size across fork and exec.
    peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(peak, store.blobs.stat(digest).size, elapsed)
''')


@pytest.mark.slow
def test_a_300_mib_blob_imports_in_bounded_memory(tmp_path: Path) -> None:
    size = 300 << 20
    out = subprocess.run([sys.executable, "-c", MEMORY, str(tmp_path / "store"), str(size)],
                         check=True, capture_output=True).stdout.split()
    peak, stored = int(out[0]), int(out[1])
    assert stored == size
    assert peak < 150 << 20, f"peak RSS {peak >> 20} MiB"
