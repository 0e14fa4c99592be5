"""The pyfuse3 request handlers: a read-only view of castore nodes under a root.

Handlers run on trio and never block it: every backend call goes to a worker thread
(see fuse.cache). No request can kill the mount: unknown names give ENOENT, writes
EROFS, and a backend failure EIO on that request alone, with a log line.

Most requests are answered from memory: opening a directory starts a walk that fetches
its tree ahead of the reader (fuse.walk), and opening a file whose contents are in memory
hands them to the kernel's page cache, so its reads need no request (fuse.pagecache).
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import pyfuse3
import trio

from castore.blobs.service import BlobService
from castore.directories.service import DirectoryService
from castore.errors import CastoreError
from castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from fuse.background import Background
from fuse.contents import BlobContents, OpenFile
from fuse.inodes import Entry, InodeTable
from fuse.listings import Listings
from fuse.pagecache import PageCache
from fuse.roots import RootSource
from fuse.walk import TreeWalker

log = logging.getLogger(__name__)

BACKEND_THREADS = 16
"""Backend calls in flight at once: a few slow blobs leave threads for everyone else."""
BLOB_DIGEST_XATTR = b"user.tvix.castore.blob.digest"
DIRECTORY_DIGEST_XATTR = b"user.tvix.castore.directory.digest"

H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


def _guarded(handler: H) -> H:
    """Turn a backend failure into EIO and a log line: one failed request, not a dead mount."""

    @functools.wraps(handler)
    async def guarded(*args: Any) -> Any:
        try:
            return await handler(*args)
        except pyfuse3.FUSEError:
            raise
        except CastoreError as e:
            log.error("%s: %s", handler.__name__, e)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except Exception:
            log.exception("%s failed", handler.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return guarded  # type: ignore[return-value]


class Operations(pyfuse3.Operations):
    def __init__(self, blobs: BlobService, directories: DirectoryService, root: DirectoryNode | RootSource,
                 nursery: trio.Nursery, *, xattr: bool = False) -> None:
        super().__init__()
        self._limiter = trio.CapacityLimiter(BACKEND_THREADS)
        ahead = Background(nursery)
        self._inodes = InodeTable(root)
        self._listings = Listings(directories, self._limiter)
        self._contents = BlobContents(blobs, self._limiter, ahead)
        self._walker = TreeWalker(self._listings, self._contents, ahead)
        self._page_cache = PageCache(self._contents)
        self._xattr = xattr
        self._handles = itertools.count(1)
        self._files: dict[int, OpenFile] = {}
        self._dirs: dict[int, tuple[int, Sequence[Node]]] = {}

    # -- names and attributes ------------------------------------------------------------

    @_guarded
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if name == b".":
            return self._inodes.attributes(parent_inode)
        if name == b"..":
            return self._inodes.attributes(self._inodes.parent(parent_inode))
        node = await self._find(self._inodes.entry(parent_inode), name)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._inodes.add(parent_inode, node)

    @_guarded
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._inodes.attributes(inode)

    @_guarded
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        entry = self._inodes.entry(inode)
        if not isinstance(entry, SymlinkNode):
            raise pyfuse3.FUSEError(errno.EINVAL)
        return entry.target

    async def _find(self, entry: Entry, name: bytes) -> Node | None:
        if isinstance(entry, RootSource):
            return await trio.to_thread.run_sync(entry.lookup, name, limiter=self._limiter)
        if isinstance(entry, DirectoryNode):
            return (await self._listings.get(entry.digest)).by_name.get(name)
        raise pyfuse3.FUSEError(errno.ENOTDIR)

    # -- directories ---------------------------------------------------------------------

    @_guarded
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        """A snapshot of the entries, so readdir's offsets stay valid for this handle.

        Ahead of a reader walking a tree its listings are in memory already (fuse.walk): then
        nothing is awaited."""
        entry = self._inodes.entry(inode)
        if isinstance(entry, DirectoryNode):
            listing = self._listings.cached(entry.digest) or await self._listings.get(entry.digest)
            nodes = listing.nodes
            self._walker.opened(entry)
        elif isinstance(entry, RootSource):
            nodes = await trio.to_thread.run_sync(lambda: tuple(entry.list()), limiter=self._limiter)
        else:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        fh = next(self._handles)
        self._dirs[fh] = (inode, nodes)
        return fh

    @_guarded
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        parent, nodes = self._dirs[fh]
        add, reply = self._inodes.add, pyfuse3.readdir_reply
        for i in range(start_id, len(nodes)):
            node = nodes[i]
            if not reply(token, node.name, add(parent, node), i + 1):
                return

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    # -- files ---------------------------------------------------------------------------

    @_guarded
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        entry = self._inodes.entry(inode)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise pyfuse3.FUSEError(errno.EROFS)
        if not isinstance(entry, FileNode):
            raise pyfuse3.FUSEError(errno.EISDIR)
        self._page_cache.offer(inode, entry)
        fh = next(self._handles)
        self._files[fh] = OpenFile(self._contents, entry)
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)  # contents never change

    @_guarded
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self._files[fh].read(off, size)

    async def release(self, fh: int) -> None:
        self._files.pop(fh, None)

    # -- extended attributes and statfs --------------------------------------------------

    @_guarded
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        for attr_name, value in self._xattrs(inode):
            if attr_name == name:
                return value
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    @_guarded
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [name for name, _ in self._xattrs(inode)]

    def _xattrs(self, inode: int) -> list[tuple[bytes, bytes]]:
        """The digest xattrs of Tvix; without --xattr, ENOSYS tells the kernel to stop asking."""
        if not self._xattr:
            raise pyfuse3.FUSEError(errno.ENOSYS)
        entry = self._inodes.entry(inode)
        if isinstance(entry, FileNode):
            return [(BLOB_DIGEST_XATTR, entry.digest.b3().encode())]
        if isinstance(entry, DirectoryNode):
            return [(DIRECTORY_DIGEST_XATTR, entry.digest.b3().encode())]
        return []

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        """No free space, no limits: enough for df and statvfs callers."""
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 4096
        data.f_namemax = 255
        return data

    # -- writes --------------------------------------------------------------------------

    async def _read_only(self, *args: Any) -> Any:
        """The mount is `ro`, so the kernel refuses writes itself; this answers any that get through."""
        raise pyfuse3.FUSEError(errno.EROFS)

    setattr = mknod = mkdir = unlink = rmdir = symlink = rename = link = _read_only
    create = write = setxattr = removexattr = _read_only
