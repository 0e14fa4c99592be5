"""Write the seed inputs of every fuzz target into tests/fuzz/seeds/<target>/ (run once; kept in git).

NARs come from the real `nix-store --dump` of small trees, narinfos from cache.nixos.org's
(SPEC test data), directories and names from the SPEC vectors, so the fuzzer starts from
inputs that pass each parser and mutates from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import zstandard

from store.compression import compressing

SEEDS = Path(__file__).parent / "seeds"
TESTDATA = Path(os.environ.get("CAIRN_TESTDATA", Path(__file__).parents[3] / "shared" / "testdata"))


def write(target: str, data: bytes) -> None:
    directory = SEEDS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha256(data).hexdigest()[:16]).write_bytes(data)


def nars() -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "file").write_bytes(b"hello\n")
        (root / "exec").write_bytes(b"#!/bin/sh\n")
        (root / "exec").chmod(0o755)
        (root / "link").symlink_to("file")
        (root / "tree" / "a" / "b").mkdir(parents=True)
        (root / "tree" / "a" / "b" / "c").write_bytes(bytes(range(256)) * 3)
        (root / "tree" / "empty").mkdir()
        (root / "tree" / "z").write_bytes(b"")
        return [subprocess.run(["nix-store", "--dump", str(root / name)], check=True, capture_output=True).stdout
                for name in ("file", "exec", "link", "tree")]


def main() -> None:
    vectors = json.loads((TESTDATA / "vectors.json").read_text())
    for nar in nars():
        write("nar_reader", nar)
        write("nar_ingest", nar)
        for compression in ("xz", "zstd", "bzip2", "br"):
            write(f"decompress_{compression}", b"".join(compressing([nar], compression)))
    text = zstandard.ZstdDecompressor().stream_reader((TESTDATA / "cache-nixos-org-narinfos.zst").open("rb")).read()
    for doc in text.decode().split("\n\n")[:8]:
        write("narinfo", doc.strip().encode() + b"\n")
    write("narinfo", vectors["narinfo"]["text"].encode())
    for entry in vectors["nixbase32"]:
        if "nixbase32" in entry:
            write("nix_names", entry["nixbase32"].encode())
    for entry in vectors["store_paths"][:4]:
        write("nix_names", entry["path"].encode())
        write("nix_names", entry["path"].rsplit("/", 1)[1].encode())
    for ca in ("fixed:r:sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0",
               "text:sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0",
               "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="):
        write("nix_names", ca.encode())
    for entry in vectors["directories"] + vectors["root_nodes"]:
        write("castore_wire", bytes.fromhex(entry["proto_hex"]))
    for header in ("bytes=0-99", "bytes=100-", "bytes=-500", "bytes=5-1\nnar/tvix-castore/x",
                   "nar/1wcwacrb5q36hpsx1shk0dkm26hwbmqmgi0nm973h9jqkdz3jz89.nar.xz",
                   "1wcwacrb5q36hpsx1shk0dkm26hwbmqmgi0nm973h9jqkdz3jz89.nar",
                   "vxjiwkjkn7x4079qvh1jkl5pn05j2aw0",
                   vectors["root_nodes"][0]["base64url_nopad"] + "\n136"):
        write("http_names", header.encode())
    out = "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo"
    drv_id = "sha256:" + "ab" * 32 + "!out"
    write("realisation", f'{drv_id}\n{{"id":"{drv_id}","outPath":"{out}","signatures":[],'
                         f'"dependentRealisations":{{}}}}'.encode())
    write("realisation", f'{drv_id}\n{{"outPath":"{out}","signatures":[{{"keyName":"k","sig":"AAAA"}}]}}'.encode())


if __name__ == "__main__":
    sys.exit(main())
