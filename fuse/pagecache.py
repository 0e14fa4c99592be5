"""Handing file contents to the kernel with the open, before they are read (FUSE's notify_store).

A file that is opened is read next. When its contents are in memory already (most small
files are, once a tree walk fetched them; see fuse.walk), storing them in the kernel's page
cache for its inode while answering the open spares the read request: the kernel answers
the read alone, and keeps the pages (opens keep the cache, and contents never change).

Only an inode's first open stores it. notify_store waits for the pages it fills to be
unlocked, and a page is locked while a read of it waits for this very loop to answer:
that wait would never end. Before the first open no read of the inode can be under way.
"""

from __future__ import annotations

import logging

import pyfuse3

from castore.nodes import FileNode
from fuse.contents import BlobContents

log = logging.getLogger(__name__)


class PageCache:
    def __init__(self, contents: BlobContents) -> None:
        self._contents = contents
        self._opened: set[int] = set()

    def offer(self, inode: int, node: FileNode) -> None:
        """`inode` (showing `node`) is being opened: at its first open, store its contents if they
        are in memory."""
        if inode in self._opened:
            return
        self._opened.add(inode)
        data = self._contents.cached_whole(node)
        if data is not None:
            try:
                pyfuse3.notify_store(inode, 0, data)
            except OSError as e:  # the read will ask for them
                log.debug("storing inode %d in the page cache: %s", inode, e)
