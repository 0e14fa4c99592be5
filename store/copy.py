"""`cairn copy --from URL --to URL`: path infos and their castore closures between two Cairn stores.

Only what the destination lacks travels: a path it has is skipped whole, a directory closure
whose root it has is not sent, a blob it has is not read. Each path is written in the order
that keeps the destination consistent (blobs, then directories, then the path info, each
durable before the next names it), after everything it refers to, so an interrupted copy
leaves complete paths only and the next run resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from castore.blobs.service import READ_SIZE
from castore.directories.closure import leaves_first
from castore.errors import CorruptionError, NotFoundError
from castore.nodes import DirectoryNode, FileNode, Node
from castore.postorder import children_first
from castore.uploads import SMALL, Uploads
from castore.url import CAStore
from store.pathinfo.model import PathInfo
from store.storepath import StorePath
from store.url import Store


@dataclass
class CopyReport:
    copied: list[StorePath] = field(default_factory=list)
    skipped: int = 0
    nar_bytes: int = 0
    blobs_sent: int = 0
    blob_bytes_sent: int = 0
    blobs_present: int = 0

    def summary(self) -> str:
        from castore.progress import human_bytes

        return (f"copied {len(self.copied)} paths ({human_bytes(self.nar_bytes)} of NAR), {self.skipped} already "
                f"there; sent {self.blobs_sent} blobs ({human_bytes(self.blob_bytes_sent)}), "
                f"{self.blobs_present} already there")


def closure_of(source: Store, roots: Iterable[StorePath] | None) -> list[PathInfo]:
    """The path infos to copy, references first: the closures of `roots`, or every path (None)."""
    if roots is None:
        infos = {i.store_path.digest: i for i in source.pathinfo.list()}
    else:
        infos = {}
        pending = list(roots)
        while pending:
            path = pending.pop()
            if path.digest in infos:
                continue
            info = source.pathinfo.get(path.digest)
            if info is None or info.store_path != path:
                raise NotFoundError(f"{path} is not in the source store")
            infos[path.digest] = info
            pending.extend(r for r in info.references if r.digest not in infos)
    return _references_first(infos)


def _references_first(infos: dict[bytes, PathInfo]) -> list[PathInfo]:
    return children_first(sorted(infos.values(), key=lambda i: i.store_path),
                          lambda i: (infos[r.digest] for r in i.references if r.digest in infos),
                          lambda i: i.store_path.digest)


def copy_paths(source: Store, dest: Store, infos: list[PathInfo], *,
               progress: Callable[[int, int], None] | None = None,
               copied: Callable[[StorePath], None] | None = None) -> CopyReport:
    """Copy each path (references first, as closure_of orders them) that `dest` lacks; `copied`
    is told of each once it is durable, so an interrupted copy has said what it need not redo."""
    report = CopyReport()
    total = sum(i.nar_size for i in infos)
    done = 0
    for info in infos:
        if dest.pathinfo.get(info.store_path.digest) is not None:
            report.skipped += 1
        else:
            with dest.castore.batch():
                _copy_node(source.castore, dest.castore, info.node, report)
                dest.pathinfo.put(info)
            report.copied.append(info.store_path)
            report.nar_bytes += info.nar_size
            if copied:
                copied(info.store_path)
        done += info.nar_size
        if progress:
            progress(done, total)
    return report


def _copy_node(source: CAStore, dest: CAStore, node: Node, report: CopyReport) -> None:
    """Blobs first (confirmed stored), then the directory closure that names them."""
    if isinstance(node, FileNode):
        with Uploads(dest.blobs) as uploads:
            _copy_blob(source, dest, uploads, node, report)
            uploads.wait()
    if not isinstance(node, DirectoryNode) or dest.directories.get(node.digest) is not None:
        return
    closure = list(source.directories.get_recursive(node.digest))
    if not closure:
        raise NotFoundError(f"directory {node.digest} is not in the source store")
    files = {bytes(f.digest): f for directory in closure for f in directory.files}  # each blob once
    with Uploads(dest.blobs) as uploads:
        for file in files.values():
            _copy_blob(source, dest, uploads, file, report)
        uploads.wait()
    dest.directories.put(leaves_first(closure))


def _copy_blob(source: CAStore, dest: CAStore, uploads: Uploads, file: FileNode, report: CopyReport) -> None:
    if dest.blobs.has(file.digest):
        report.blobs_present += 1
        return
    if file.size <= SMALL:
        data = source.blobs.read_all(file.digest)
        if data is None:
            raise NotFoundError(f"blob {file.digest} is not in the source store")
        uploads.put(data)  # confirmed against its digest in wait()
    else:
        reader = source.blobs.open_read(file.digest)
        if reader is None:
            raise NotFoundError(f"blob {file.digest} is not in the source store")
        with reader, dest.blobs.open_write() as writer:
            while piece := reader.read(READ_SIZE):
                writer.write(piece)
            if writer.close() != file.digest:
                raise CorruptionError(f"blob {file.digest} read from the source has another digest")
    report.blobs_sent += 1
    report.blob_bytes_sent += file.size
