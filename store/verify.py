"""`cairn verify`: re-check what the store holds against what it claims.

For each path the NAR is rendered again straight from castore (never a cached
CalculateNAR answer) and compared with the recorded NarHash and NarSize; with trusted keys,
each path needs a valid signature by one of them, or (content-addressed, as Nix accepts it) a
CA that gives its store path and its contents' hash. Chunk digests are checked through the
blob backend's optional `verify_all()`. Problems are values, reported as they are found;
nothing here stops at the first one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from castore.errors import CastoreError
from store.nar.render import render_nar
from store.pathinfo.model import PathInfo
from store.selfcertifying import gives_its_path, has_ca_hash
from store.signing import PublicKey
from store.storepath import StorePath
from store.url import Store

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Problem:
    """One thing wrong, about a store path or a chunk."""

    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass
class Tally:
    """What was checked, for the summary line."""

    paths: int = 0
    chunks_checked: bool = False
    chunk_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)


def verify_chunks(store: Store, tally: Tally, progress: Progress | None = None) -> Iterator[Problem]:
    """Every chunk's digest; yields nothing (and leaves `chunks_checked` false) when the blob
    service cannot list its chunks."""
    def counted(done: int, total: int) -> None:
        tally.chunk_bytes = done
        if progress:
            progress(done, total)

    errors = store.castore.blobs.verify_all(counted)
    if errors is None:
        return
    tally.chunks_checked = True
    for error in errors:
        yield _record(tally, Problem("castore", str(error)))


def verify_paths(store: Store, paths: Iterable[StorePath] | None, keys: list[PublicKey], tally: Tally,
                 progress: Progress | None = None) -> Iterator[Problem]:
    """Each path (every path when `paths` is None): NAR hash and size, and signatures when
    `keys` is not empty."""
    if paths is None:
        infos = list(store.pathinfo.list())
    else:
        infos = []
        for path in paths:
            info = store.pathinfo.get(path.digest)
            if info is None or info.store_path != path:
                yield _record(tally, Problem(path.absolute, "not in the store"))
            else:
                infos.append(info)
    total = sum(i.nar_size for i in infos)
    done = 0

    def rendered(n: int) -> None:
        if progress:
            progress(done + n, total)

    for info in infos:
        tally.paths += 1
        for problem in _verify_path(store, info, keys, rendered):
            yield _record(tally, problem)
        done += info.nar_size
        rendered(0)


def _verify_path(store: Store, info: PathInfo, keys: list[PublicKey],
                 progress: Callable[[int], None]) -> Iterator[Problem]:
    subject = info.store_path.absolute
    try:
        size, sha256 = _render_and_hash(store, info, progress)
    except CastoreError as e:
        yield Problem(subject, f"NAR cannot be rendered: {e}")
    else:
        if size != info.nar_size:
            yield Problem(subject, f"NAR size is {size}, recorded NarSize is {info.nar_size}")
        elif sha256 != info.nar_sha256:
            yield Problem(subject, f"NAR hash does not match recorded NarHash {info.nar_hash}")
    if keys and not _signed(info, keys) and not _self_certified(store, info):
        names = ", ".join(k.name for k in keys)
        ca = "" if info.ca is None else f", and its CA {info.ca} does not certify it"
        yield Problem(subject, f"no valid signature by a trusted key ({names}); "
                               f"has {len(info.signatures)} signature(s){ca}")


def _render_and_hash(store: Store, info: PathInfo, progress: Callable[[int], None]) -> tuple[int, bytes]:
    """Like calculate_nar, reporting bytes rendered so a large path moves the bar."""
    sha256 = hashlib.sha256()
    size = 0
    for piece in render_nar(store.castore, info.node):
        sha256.update(piece)
        size += len(piece)
        progress(size)
    return size, sha256.digest()


def _signed(info: PathInfo, keys: list[PublicKey]) -> bool:
    message = info.fingerprint()
    return any(key.verify(message, sig) for sig in info.signatures for key in keys)


def _self_certified(store: Store, info: PathInfo) -> bool:
    """An unsigned content-addressed path is trusted as Nix trusts it: its CA gives its store
    path and its contents have the CA hash."""
    try:
        return gives_its_path(info.store_path, info.ca, info.references) and has_ca_hash(store.castore, info)
    except CastoreError:  # contents that cannot be read; reported as such above
        return False


def _record(tally: Tally, problem: Problem) -> Problem:
    tally.problems.append(problem)
    return problem
