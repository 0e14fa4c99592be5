"""RootSource: the entries of a mount point that is not itself a castore directory.

A store mount's root holds store paths, found by name through a service of the Nix
layer; this interface keeps that layer out of the FUSE code (a castore mount's root is
simply its DirectoryNode). Methods may block: the mount calls them in worker threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable

from castore.nodes import Node


class RootSource(ABC):
    @abstractmethod
    def lookup(self, name: bytes) -> Node | None:
        """The node called `name`, or None, also for names that can never exist."""

    @abstractmethod
    def list(self) -> Iterable[Node]:
        """Every entry, or none at all for a root that is not to be listed."""
