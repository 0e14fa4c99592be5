"""Node kinds and Directory: validated at construction, canonical encoding, digest, size rule.

The canonical encoding is the protobuf serialisation of a freshly built message
(fields ascending, proto3 defaults omitted, lists sorted by name), so a digest never
covers unknown fields from the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, TypeVar, Union

from google.protobuf.message import DecodeError, Message

from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.proto import castore_pb2 as pb

U64_MAX = 2**64 - 1
M = TypeVar("M", bound=Message)
MAX_NAME = 255
MAX_TARGET = 4095


def validate_name(name: bytes, *, allow_empty: bool = False) -> None:
    """A directory entry name: 1..255 bytes, no '/', no NUL, not '.' or '..'."""
    if not name:
        if allow_empty:
            return
        raise ValidationError("empty name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"name longer than {MAX_NAME} bytes: {name[:32]!r}...")
    if b"/" in name or b"\0" in name:
        raise ValidationError(f"name contains '/' or NUL: {name!r}")
    if name in (b".", b".."):
        raise ValidationError(f"invalid name {name!r}")


@dataclass(frozen=True, slots=True)
class DirectoryNode:
    name: bytes
    digest: B3Digest
    size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", B3Digest(self.digest))
        if not 0 <= self.size <= U64_MAX:
            raise ValidationError(f"size out of range for {self.name!r}")

    def to_proto(self) -> pb.DirectoryNode:
        return pb.DirectoryNode(name=self.name, digest=self.digest, size=self.size)


@dataclass(frozen=True, slots=True)
class FileNode:
    name: bytes
    digest: B3Digest
    size: int
    executable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", B3Digest(self.digest))
        if not 0 <= self.size <= U64_MAX:
            raise ValidationError(f"size out of range for {self.name!r}")

    def to_proto(self) -> pb.FileNode:
        return pb.FileNode(name=self.name, digest=self.digest, size=self.size,
                           executable=self.executable)


@dataclass(frozen=True, slots=True)
class SymlinkNode:
    name: bytes
    target: bytes

    def __post_init__(self) -> None:
        if not 1 <= len(self.target) <= MAX_TARGET:
            raise ValidationError(f"symlink target of {self.name!r} must be 1..{MAX_TARGET} bytes")
        if b"\0" in self.target:
            raise ValidationError(f"symlink target of {self.name!r} contains NUL")

    def to_proto(self) -> pb.SymlinkNode:
        return pb.SymlinkNode(name=self.name, target=self.target)


Node = Union[DirectoryNode, FileNode, SymlinkNode]


def node_to_proto(node: Node) -> pb.Node:
    """Wrap a node in the `Node` oneof."""
    if isinstance(node, DirectoryNode):
        return pb.Node(directory=node.to_proto())
    if isinstance(node, FileNode):
        return pb.Node(file=node.to_proto())
    return pb.Node(symlink=node.to_proto())


def node_from_proto(msg: pb.Node, *, allow_empty_name: bool = True) -> Node:
    """Parse a `Node` oneof into a validated node (root nodes have an empty name)."""
    kind = msg.WhichOneof("node")
    if kind is None:
        raise ValidationError("node has no kind set")
    inner = getattr(msg, kind)
    validate_name(inner.name, allow_empty=allow_empty_name)
    if kind == "directory":
        return DirectoryNode(inner.name, inner.digest, inner.size)
    if kind == "file":
        return FileNode(inner.name, inner.digest, inner.size, inner.executable)
    return SymlinkNode(inner.name, inner.target)


def encode_node(node: Node) -> bytes:
    return node_to_proto(node).SerializeToString()


def parse_message(message_class: type[M], data: bytes) -> M:
    """Parse protobuf bytes from outside; malformed input is a ValidationError."""
    msg = message_class()
    try:
        msg.ParseFromString(data)
    except DecodeError as e:
        raise ValidationError(f"malformed {message_class.DESCRIPTOR.name}: {e}") from None
    return msg


def decode_node(data: bytes, *, allow_empty_name: bool = True) -> Node:
    return node_from_proto(parse_message(pb.Node, data), allow_empty_name=allow_empty_name)


def rename(node: Node, name: bytes) -> Node:
    """The same node under another name (e.g. the empty name of a root)."""
    if isinstance(node, DirectoryNode):
        return DirectoryNode(name, node.digest, node.size)
    if isinstance(node, FileNode):
        return FileNode(name, node.digest, node.size, node.executable)
    return SymlinkNode(name, node.target)


@dataclass(frozen=True)
class Directory:
    """One directory of the Merkle DAG. Construction validates; the digest is canonical."""

    directories: tuple[DirectoryNode, ...] = ()
    files: tuple[FileNode, ...] = ()
    symlinks: tuple[SymlinkNode, ...] = ()

    def __post_init__(self) -> None:
        seen: set[bytes] = set()
        for kind, entries in (("directories", self.directories), ("files", self.files),
                              ("symlinks", self.symlinks)):
            previous = None
            for entry in entries:
                validate_name(entry.name)
                if previous is not None and entry.name <= previous:
                    why = "duplicate" if entry.name == previous else "unsorted"
                    raise ValidationError(f"{why} name {entry.name!r} in {kind}")
                if entry.name in seen:
                    raise ValidationError(f"duplicate name {entry.name!r} across entry lists")
                seen.add(entry.name)
                previous = entry.name
        if self.size > U64_MAX:
            raise ValidationError("directory size overflows u64")

    @classmethod
    def of(cls, nodes: Iterable[Node]) -> Directory:
        """Build from nodes in any order: each list is sorted by name."""
        dirs, files, links = [], [], []
        for n in nodes:
            (dirs if isinstance(n, DirectoryNode) else files if isinstance(n, FileNode) else links).append(n)
        key = lambda n: n.name  # noqa: E731
        return cls(tuple(sorted(dirs, key=key)), tuple(sorted(files, key=key)),
                   tuple(sorted(links, key=key)))

    @classmethod
    def decode(cls, data: bytes) -> Directory:
        """Parse and validate a wire encoding (unknown fields are dropped)."""
        return cls.from_proto(parse_message(pb.Directory, data))

    @classmethod
    def from_proto(cls, msg: pb.Directory) -> Directory:
        return cls(
            tuple(DirectoryNode(d.name, d.digest, d.size) for d in msg.directories),
            tuple(FileNode(f.name, f.digest, f.size, f.executable) for f in msg.files),
            tuple(SymlinkNode(s.name, s.target) for s in msg.symlinks),
        )

    def to_proto(self) -> pb.Directory:
        return pb.Directory(directories=[d.to_proto() for d in self.directories],
                            files=[f.to_proto() for f in self.files],
                            symlinks=[s.to_proto() for s in self.symlinks])

    @cached_property
    def encoded(self) -> bytes:
        """The canonical encoding; its BLAKE3 is the digest."""
        return self.to_proto().SerializeToString()

    @cached_property
    def digest(self) -> B3Digest:
        return B3Digest.of(self.encoded)

    @cached_property
    def size(self) -> int:
        """2 per entry plus each child directory's size: the reference code's rule."""
        entries = len(self.directories) + len(self.files) + len(self.symlinks)
        return 2 * entries + sum(d.size for d in self.directories)

    def nodes(self) -> list[Node]:
        """All entries in NAR order: ascending by name across kinds."""
        return sorted((*self.directories, *self.files, *self.symlinks), key=lambda n: n.name)

    def as_node(self, name: bytes = b"") -> DirectoryNode:
        """The DirectoryNode that points at this directory."""
        return DirectoryNode(name, self.digest, self.size)
