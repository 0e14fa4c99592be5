"""The store porcelain: the verbs of `cairn import|dump|path-info|copy` for programs.

    from store import api
    with api.open_store("local:///var/lib/cairn") as store:
        info = api.import_path(store, "./src")          # like `nix-store --add`
        for piece in api.dump(store, info.store_path):  # the NAR, streamed
            ...
"""

from __future__ import annotations

import contextlib
import os
from typing import BinaryIO, Callable, Iterator, NamedTuple

from castore.errors import BackendError, NotFoundError, ValidationError
from castore.nodes import DirectoryNode, Node
from store.contentaddress import CAMethod, ContentAddress
from store.nixhash import HashAlgo, NixHash
from store.pathinfo.model import PathInfo
from store.storepath import STORE_DIR, StorePath, make_source_path
from store.url import Store, open_store

__all__ = ["Store", "open_store", "import_path", "dump", "dump_to", "path_info", "parse_store_path",
           "copy_from_nix", "CopyResult", "split_store_path"]


def parse_store_path(text: str) -> StorePath:
    """An absolute store path (anything below it is refused) or a basename."""
    return StorePath.parse(text) if text.startswith("/") else StorePath.from_basename(text)


def import_path(store: Store, path: str | os.PathLike, *,
                progress: Callable[[int, int], None] | None = None) -> PathInfo:
    """Add a file or tree as `nix-store --add` does: recursive sha256 CA, same store path.

    One pass: the tree is serialised as a NAR and ingested as it is made, so every file is
    read once and the NAR hash covers exactly the bytes stored. `progress(NAR bytes, 0)`
    is called as it goes (the total is not known in advance).
    """
    from store.nar.fs import fs_events  # the writing side: not loaded for a dump
    from store.nar.ingest import ingest_nar
    from store.nar.writer import PiecesReader, write_nar

    name = os.path.basename(os.path.abspath(path))
    pieces = write_nar(fs_events(path))
    if progress:
        pieces = _counted(pieces, progress)
    with store.castore.batch():
        result = ingest_nar(store.castore, PiecesReader(pieces))
        info = PathInfo(make_source_path(name, result.nar_sha256), result.node, result.nar_size,
                        result.nar_sha256,
                        ca=ContentAddress(CAMethod.NAR, NixHash(HashAlgo.SHA256, result.nar_sha256)))
        return store.pathinfo.put(info)


def _counted(pieces: Iterator[bytes], progress: Callable[[int, int], None]) -> Iterator[bytes]:
    done = 0
    for piece in pieces:
        done += len(piece)
        progress(done, 0)
        yield piece


def path_info(store: Store, store_path: StorePath) -> PathInfo:
    info = store.pathinfo.get(store_path.digest)
    if info is None or info.store_path != store_path:
        raise NotFoundError(f"{store_path} is not in the store")
    return info


def dump(store: Store, store_path: StorePath, below: str = "") -> Iterator[bytes]:
    """The NAR of a store path, or of the file, directory or symlink `below` it (`bin/hello`), as
    `nix-store --dump` writes it, in pieces."""
    return store.pathinfo.nar(store.castore, _descend(store, store_path, below))


def _descend(store: Store, store_path: StorePath, below: str) -> Node:
    """The node at `below` in the path: every step but the last must be a directory (a symlink
    on the way would lead out of what the store path holds)."""
    node = path_info(store, store_path).node
    walked = store_path.absolute
    for name in filter(None, below.split("/")):
        if not isinstance(node, DirectoryNode):
            raise ValidationError(f"{walked} is not a directory")
        directory = store.castore.directories.get(node.digest)
        if directory is None:
            raise NotFoundError(f"directory {node.digest} of {walked} is missing from the store")
        walked = f"{walked}/{name}"
        node = next((n for n in directory.nodes() if n.name == os.fsencode(name)), None)
        if node is None:
            raise NotFoundError(f"{walked} does not exist")
    return node


def split_store_path(text: str) -> tuple[StorePath, str]:
    """`/nix/store/<basename>[/below]` (or a basename): the store path and what lies below it."""
    absolute = text.startswith("/")
    if absolute and not text.startswith(STORE_DIR + "/"):
        raise ValidationError(f"{text[:120]!r} is not in {STORE_DIR}")
    basename, _, below = text[len(STORE_DIR) + 1 if absolute else 0:].partition("/")
    return StorePath.from_basename(basename), below


def dump_to(store: Store, store_path: StorePath, out: BinaryIO, below: str = "") -> None:
    """Write the NAR of a store path (or of what is `below` it) to `out` (and flush it); the render
    ends before this returns."""
    with contextlib.closing(dump(store, store_path, below)) as pieces:
        for piece in pieces:
            out.write(piece)
    out.flush()


class CopyResult(NamedTuple):
    copied: list[StorePath]
    skipped: list[StorePath]
    nar_bytes: int


def copy_from_nix(store: Store, paths: list[StorePath], *,
                  progress: Callable[[int, int], None] | None = None) -> CopyResult:
    """Copy paths and their closures from the local Nix store, keeping all metadata.

    Metadata comes from `nix path-info --json --recursive`; contents from `nix-store --dump`,
    ingested while streaming and checked against the recorded NAR hash and size.
    """
    infos = _nix_path_infos(paths)
    copied: list[StorePath] = []
    skipped: list[StorePath] = []
    nar_bytes = 0
    total = sum(i["narSize"] for i in infos)
    for meta in infos:
        path = StorePath.parse(meta["path"])
        if store.pathinfo.get(path.digest) is not None:
            skipped.append(path)
        else:
            nar_bytes += _copy_one(store, path, meta)
            copied.append(path)
        if progress:
            progress(nar_bytes, total)
    return CopyResult(copied, skipped, nar_bytes)


def _nix_path_infos(paths: list[StorePath]) -> list[dict]:
    import json
    import subprocess

    cmd = ["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive",
           *(p.absolute for p in paths)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise BackendError("nix is not installed (needed to read the local Nix store)") from None
    if out.returncode != 0:
        raise NotFoundError(_nix_error(out.stderr) or "nix path-info failed")
    infos = json.loads(out.stdout)
    by_path = {i["path"]: i for i in infos}
    return [by_path[p] for p in _references_first(by_path)]


def _nix_error(stderr: str) -> str:
    """Nix's last line without its own `error: `: the command line adds `cairn: error: `."""
    lines = stderr.strip().splitlines()
    return lines[-1].removeprefix("error: ") if lines else ""


def _references_first(by_path: dict[str, dict]) -> list[str]:
    """Topological order, so a path is copied after everything it refers to."""
    from castore.postorder import children_first

    return children_first(sorted(by_path), lambda p: (r for r in by_path[p].get("references", []) if r in by_path),
                          lambda p: p)


def _copy_one(store: Store, path: StorePath, meta: dict) -> int:
    import subprocess

    from store.nar.ingest import ingest_nar
    from store.signing import Signature

    nar_hash = NixHash.parse(meta["narHash"])
    with subprocess.Popen(["nix-store", "--dump", path.absolute], stdout=subprocess.PIPE) as proc:
        with store.castore.batch():
            result = ingest_nar(store.castore, proc.stdout)
    if proc.returncode != 0:
        raise BackendError(f"nix-store --dump {path} failed")
    if result.nar_sha256 != nar_hash.digest or result.nar_size != meta["narSize"]:
        raise ValidationError(f"{path}: NAR hash or size differs from what Nix recorded")
    deriver = meta.get("deriver")
    info = PathInfo(
        path, result.node, result.nar_size, result.nar_sha256,
        references=tuple(StorePath.parse(r) for r in meta.get("references", [])),
        signatures=tuple(Signature.parse(s) for s in meta.get("signatures", [])),
        deriver=StorePath.parse(deriver) if deriver else None,
        ca=ContentAddress.parse(meta["ca"]) if meta.get("ca") else None)
    store.pathinfo.put(info)
    return result.nar_size
