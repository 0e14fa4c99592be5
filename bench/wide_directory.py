"""Memory for one wide directory: a NAR of a single directory holding N empty files (default
1,000,000: about 92 KB as xz). Each step runs in a fresh `cairn nar-bridge` over the same store,
and the figure is its peak RSS (VmHWM) above its RSS when idle:

- ingest: PUT nar/<FileHash>.nar.xz, then PUT the narinfo;
- NAR: GET nar/<NarHash>.nar, the whole NAR read and dropped;
- listing: GET <hash>.ls, read and dropped.

`--source DIR` runs the code in DIR instead (an export of another commit, e.g.
`git archive main | tar -x -C DIR`), for before/after figures in the same run:

    cd bench && ../.venv/bin/python wide_directory.py --source /tmp/cairn-main
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import lzma
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from common import CAIRN, free_port, wait_until_up
from store import nixbase32
from store.nar.wire import CLOSE, DIRECTORY_OPEN, NAR_HEADER, entry_open, regular_header, regular_trailer

READ = 1 << 20


def write_nar(entries: int, out: Path) -> tuple[int, bytes, int, bytes]:
    """The xz NAR of one directory of `entries` empty files: NarSize, NarHash, FileSize, FileHash."""
    nar_sha, file_sha = hashlib.sha256(), hashlib.sha256()
    nar_size = file_size = 0
    xz = lzma.LZMACompressor()
    with open(out, "wb") as f:
        def put(data: bytes) -> None:
            nonlocal nar_size, file_size
            nar_sha.update(data)
            nar_size += len(data)
            packed = xz.compress(data)
            file_sha.update(packed)
            file_size += len(packed)
            f.write(packed)

        put(NAR_HEADER + DIRECTORY_OPEN)
        empty_file = regular_header(0, False) + regular_trailer(0) + CLOSE
        batch = []
        for i in range(entries):
            batch.append(entry_open(b"%07d" % i) + empty_file)
            if len(batch) == 10_000:
                put(b"".join(batch))
                batch.clear()
        put(b"".join(batch) + CLOSE)
        tail = xz.flush()
        file_sha.update(tail)
        file_size += len(tail)
        f.write(tail)
    return nar_size, nar_sha.digest(), file_size, file_sha.digest()


def memory_kb(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Vm")}


class Bridge:
    def __init__(self, store: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([CAIRN, "nar-bridge", "--listen", f"127.0.0.1:{self.port}", "--store", store],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until_up(f"http://127.0.0.1:{self.port}", self.proc)
        time.sleep(0.5)
        self.idle_kb = memory_kb(self.proc.pid)["VmRSS"]

    def request(self, method: str, path: str, body=None, headers: dict[str, str] | None = None) -> tuple[int, int]:
        """Status and body length; the body is read in pieces and dropped."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3600)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            length = 0
            while piece := response.read(READ):
                length += len(piece)
            return response.status, length
        finally:
            conn.close()

    def peak_mb(self) -> float:
        return (memory_kb(self.proc.pid)["VmHWM"] - self.idle_kb) / 1024

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--source", help="run the code in this directory (default: this checkout)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.source:
        env["PYTHONPATH"] = str(Path(args.source).resolve())
    with tempfile.TemporaryDirectory(prefix="cairn-wide-") as work_dir:
        work = Path(work_dir)
        nar = work / "wide.nar.xz"
        nar_size, nar_hash, file_size, file_hash = write_nar(args.entries, nar)
        print(f"{args.entries} entries: NAR {nar_size} bytes, {file_size} bytes as xz")
        store = f"local://{work}/store"
        digest = hashlib.sha256(b"wide %d" % args.entries).digest()[:20]
        hash_part = nixbase32.encode(digest)
        url = f"nar/{nixbase32.encode(file_hash)}.nar.xz"
        narinfo = (f"StorePath: /nix/store/{hash_part}-wide\nURL: {url}\nCompression: xz\n"
                   f"FileHash: sha256:{nixbase32.encode(file_hash)}\nFileSize: {file_size}\n"
                   f"NarHash: sha256:{nixbase32.encode(nar_hash)}\nNarSize: {nar_size}\nReferences: \n")
        steps = [
            ("ingest", lambda b: [b.request("PUT", f"/{url}", nar.open("rb"), {"Content-Length": str(file_size)}),
                                  b.request("PUT", f"/{hash_part}.narinfo", narinfo.encode())]),
            ("NAR", lambda b: [b.request("GET", f"/nar/{nixbase32.encode(nar_hash)}.nar")]),
            ("listing", lambda b: [b.request("GET", f"/{hash_part}.ls")]),
        ]
        for name, step in steps:
            bridge = Bridge(store, env)
            try:
                start = time.perf_counter()
                replies = step(bridge)
                seconds = time.perf_counter() - start
                print(f"{name}: peak RSS +{bridge.peak_mb():.0f} MB above idle ({bridge.idle_kb // 1024} MB), "
                      f"{seconds:.1f} s, replies {replies}", flush=True)
            finally:
                bridge.stop()


if __name__ == "__main__":
    main()
