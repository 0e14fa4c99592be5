"""An upload in progress: a NAR whose contents are in castore, waiting for its narinfo.

nar-bridge keeps one per uploaded NAR file (by file name) in the "staged" records, so a
restart between the NAR and its narinfo loses nothing, and a GC can keep what it names.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from castore.nodes import Node, decode_node, encode_node

_STAGED = struct.Struct("<QQ32s")


@dataclass(frozen=True, slots=True)
class StagedNar:
    """Its root node (empty name), NarSize and NarHash, and the size of the file as uploaded."""

    node: Node
    nar_size: int
    nar_sha256: bytes
    file_size: int

    def encode(self) -> bytes:
        return _STAGED.pack(self.nar_size, self.file_size, self.nar_sha256) + encode_node(self.node)

    @classmethod
    def decode(cls, data: bytes) -> StagedNar:
        size, file_size, sha256 = _STAGED.unpack_from(data)
        return cls(decode_node(data[_STAGED.size:]), size, sha256, file_size)
