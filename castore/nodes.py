"""Node kinds and Directory: validated at construction, canonical encoding, digest, size rule.

The canonical encoding (fields ascending, proto3 defaults omitted, lists sorted by name) is
written by castore.wire, so a digest never covers unknown fields from the wire. Stored
bytes are read back by its strict reader; protobuf (imported on first use) parses input in
any other form and builds the messages gRPC sends.
"""

from __future__ import annotations

from collections import namedtuple
from functools import cached_property
from operator import attrgetter
from types import ModuleType
from typing import TYPE_CHECKING, Iterable, TypeVar, Union

from castore import limits, wire
from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.value import Value

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from castore.proto import castore_pb2 as pb

U64_MAX = 2**64 - 1
_new_tuple = tuple.__new__
"""Builds a node from its checked fields (and, in decode_stored, from stored ones)."""
M = TypeVar("M", bound="Message")
MAX_NAME = 255
MAX_TARGET = 4095


def _pb() -> ModuleType:
    """The generated protobuf module, loaded when a message is first built or parsed."""
    from castore.proto import castore_pb2

    return castore_pb2


def validate_name(name: bytes, *, allow_empty: bool = False) -> None:
    """A directory entry name: 1..255 bytes, no '/', no NUL, not '.' or '..'."""
    if 0 < len(name) <= MAX_NAME and b"/" not in name and b"\0" not in name and name != b"." and name != b"..":
        return
    if not name:
        if allow_empty:
            return
        raise ValidationError("empty name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"name longer than {MAX_NAME} bytes: {name[:32]!r}...")
    if b"/" in name or b"\0" in name:
        raise ValidationError(f"name contains '/' or NUL: {name!r}")
    raise ValidationError(f"invalid name {name!r}")


class DirectoryNode(Value, namedtuple("DirectoryNode", "name digest size")):
    __slots__ = ()
    name: bytes
    digest: B3Digest
    size: int

    def __new__(cls, name: bytes, digest: bytes, size: int) -> DirectoryNode:
        if type(digest) is not B3Digest:
            digest = B3Digest(digest)
        if not 0 <= size <= U64_MAX:
            raise ValidationError(f"size out of range for {name!r}")
        return _new_tuple(cls, (name, digest, size))

    def to_proto(self) -> pb.DirectoryNode:
        return _pb().DirectoryNode(name=self.name, digest=self.digest, size=self.size)

    def encode(self) -> bytes:
        return wire.encode_entry(self.name, self.digest, self.size)


class FileNode(Value, namedtuple("FileNode", "name digest size executable")):
    __slots__ = ()
    name: bytes
    digest: B3Digest
    size: int
    executable: bool

    def __new__(cls, name: bytes, digest: bytes, size: int, executable: bool = False) -> FileNode:
        if type(digest) is not B3Digest:
            digest = B3Digest(digest)
        if not 0 <= size <= U64_MAX:
            raise ValidationError(f"size out of range for {name!r}")
        return _new_tuple(cls, (name, digest, size, executable))

    def to_proto(self) -> pb.FileNode:
        return _pb().FileNode(name=self.name, digest=self.digest, size=self.size, executable=self.executable)

    def encode(self) -> bytes:
        return wire.encode_entry(self.name, self.digest, self.size, self.executable)


class SymlinkNode(Value, namedtuple("SymlinkNode", "name target")):
    __slots__ = ()
    name: bytes
    target: bytes

    def __new__(cls, name: bytes, target: bytes) -> SymlinkNode:
        if not 1 <= len(target) <= MAX_TARGET:
            raise ValidationError(f"symlink target of {name!r} must be 1..{MAX_TARGET} bytes")
        if b"\0" in target:
            raise ValidationError(f"symlink target of {name!r} contains NUL")
        return _new_tuple(cls, (name, target))

    def to_proto(self) -> pb.SymlinkNode:
        return _pb().SymlinkNode(name=self.name, target=self.target)

    def encode(self) -> bytes:
        return wire.encode_entry(self.name, self.target)


Node = Union[DirectoryNode, FileNode, SymlinkNode]
_KINDS = (DirectoryNode, FileNode, SymlinkNode)
"""In the order of their field numbers in `Directory` and in the `Node` oneof."""


def node_to_proto(node: Node) -> pb.Node:
    """Wrap a node in the `Node` oneof."""
    if isinstance(node, DirectoryNode):
        return _pb().Node(directory=node.to_proto())
    if isinstance(node, FileNode):
        return _pb().Node(file=node.to_proto())
    return _pb().Node(symlink=node.to_proto())


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


def _node_of(kind: int, fields: tuple[bytes, bytes, int, bool]) -> Node:
    """A node from castore.wire's fields of a node message of `kind` (1, 2 or 3)."""
    name, second, size, executable = fields
    if kind == 2:
        return FileNode(name, B3Digest(second), size, executable)
    if kind == 1:
        return DirectoryNode(name, B3Digest(second), size)
    return SymlinkNode(name, second)


def encode_node(node: Node) -> bytes:
    return wire.length_delimited(_KINDS.index(type(node)) + 1, node.encode())


def parse_message(message_class: type[M], data: bytes) -> M:
    """Parse protobuf bytes from outside; malformed input is a ValidationError."""
    from google.protobuf.message import DecodeError

    msg = message_class()
    try:
        msg.ParseFromString(data)
    except DecodeError as e:
        raise ValidationError(f"malformed {message_class.DESCRIPTOR.name}: {e}") from None
    return msg


def decode_node(data: bytes, *, allow_empty_name: bool = True) -> Node:
    """A `Node`; canonical bytes are read without protobuf, any other form with it."""
    try:
        return decode_canonical_node(data, allow_empty_name=allow_empty_name)
    except wire.NotCanonical:
        return node_from_proto(parse_message(_pb().Node, data), allow_empty_name=allow_empty_name)


def decode_canonical_node(data: bytes, *, allow_empty_name: bool = True) -> Node:
    """A `Node` in its canonical encoding (as stored); wire.NotCanonical for any other form."""
    kind, fields = wire.node(data)
    validate_name(fields[0], allow_empty=allow_empty_name)
    return _node_of(kind, fields)


def rename(node: Node, name: bytes) -> Node:
    """The same node under another name (e.g. the empty name of a root)."""
    if isinstance(node, DirectoryNode):
        return DirectoryNode(name, node.digest, node.size)
    if isinstance(node, FileNode):
        return FileNode(name, node.digest, node.size, node.executable)
    return SymlinkNode(name, node.target)


class Directory:
    """One directory of the Merkle DAG. Construction validates; the digest is canonical.

    A plain class, not a frozen dataclass: loading `dataclasses` was a tenth of a short command.
    Its fields live in the instance dict beside the cached encoding and digest."""

    directories: tuple[DirectoryNode, ...]
    files: tuple[FileNode, ...]
    symlinks: tuple[SymlinkNode, ...]
    size: int
    """2 per entry plus each child directory's size: the reference code's rule."""

    def __init__(self, directories: tuple[DirectoryNode, ...] = (), files: tuple[FileNode, ...] = (),
                 symlinks: tuple[SymlinkNode, ...] = ()) -> None:
        limits.check_entries(len(directories) + len(files) + len(symlinks))
        _check_names("directories", directories)
        _check_names("files", files)
        _check_names("symlinks", symlinks)
        if (directories and (files or symlinks)) or (files and symlinks):
            entries = (*directories, *files, *symlinks)
            if len({n.name for n in entries}) != len(entries):
                raise ValidationError(f"duplicate name {_first_repeated(entries)!r} across entry lists")
        size = 2 * (len(directories) + len(files) + len(symlinks)) + sum(d.size for d in directories)
        if size > U64_MAX:
            raise ValidationError("directory size overflows u64")
        _set_dict(self, {"directories": directories, "files": files, "symlinks": symlinks, "size": size})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of an immutable Directory")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of an immutable Directory")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Directory:
            return NotImplemented
        return (self.directories, self.files, self.symlinks) == (other.directories, other.files, other.symlinks)

    def __hash__(self) -> int:
        return hash((self.directories, self.files, self.symlinks))

    def __repr__(self) -> str:
        return f"Directory(directories={self.directories!r}, files={self.files!r}, symlinks={self.symlinks!r})"

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
        try:
            return cls.decode_canonical(data)
        except wire.NotCanonical:
            return cls.from_proto(parse_message(_pb().Directory, data))

    @classmethod
    def decode_canonical(cls, data: bytes, digest: B3Digest | None = None) -> Directory:
        """The directory whose canonical encoding `data` is (as stored); wire.NotCanonical for
        bytes in any other form, so they never pass for a directory with their digest.

        `digest`, when the caller has verified it is the BLAKE3 of `data`, is kept, not recomputed.
        """
        dirs, files, links = wire.directory(data, _node_of)
        directory = cls(tuple(dirs), tuple(files), tuple(links))
        directory.__dict__["encoded"] = bytes(data)  # the cached properties' values
        if digest is not None:
            directory.__dict__["digest"] = B3Digest(digest)
        return directory

    @classmethod
    def decode_stored(cls, data: bytes, digest: B3Digest) -> Directory:
        """The directory a store holds under `digest`, with none of construction's checks: only
        for `data` that the store validated as a Directory when it was put (so these very bytes
        passed every check of decode_canonical then) and verified against `digest`, their BLAKE3,
        as it read them back (so they are still those bytes). Checking them again was most of
        laying out a NAR. Bytes from anywhere else (a client, a remote service, a chunk never put
        as a directory) go through decode or decode_canonical."""
        dirs, files, links = wire.stored_directory(data, _stored_directory_node, _stored_file_node,
                                                   _stored_symlink_node)
        directory = _new(cls)
        _set_dict(directory, {"directories": tuple(dirs), "files": tuple(files), "symlinks": tuple(links),
                              "size": 2 * (len(dirs) + len(files) + len(links)) + sum(map(_size, dirs)),
                              "encoded": data, "digest": digest})  # the fields and the cached properties
        return directory

    @classmethod
    def from_proto(cls, msg: pb.Directory) -> Directory:
        return cls(
            tuple(DirectoryNode(d.name, d.digest, d.size) for d in msg.directories),
            tuple(FileNode(f.name, f.digest, f.size, f.executable) for f in msg.files),
            tuple(SymlinkNode(s.name, s.target) for s in msg.symlinks),
        )

    def to_proto(self) -> pb.Directory:
        return _pb().Directory(directories=[d.to_proto() for d in self.directories],
                               files=[f.to_proto() for f in self.files],
                               symlinks=[s.to_proto() for s in self.symlinks])

    @cached_property
    def encoded(self) -> bytes:
        """The canonical encoding; its BLAKE3 is the digest. Appended entry by entry: a join would
        hold every entry's bytes object as well (three times the encoding, for a wide directory)."""
        out = bytearray()
        for number, nodes in ((1, self.directories), (2, self.files), (3, self.symlinks)):
            for node in nodes:
                out += wire.length_delimited(number, node.encode())
        return bytes(out)

    @cached_property
    def digest(self) -> B3Digest:
        return B3Digest.of(self.encoded)

    def nodes(self) -> list[Node]:
        """All entries in NAR order: ascending by name across kinds."""
        entries = [*self.directories, *self.files, *self.symlinks]
        entries.sort(key=_name)
        return entries

    def as_node(self, name: bytes = b"") -> DirectoryNode:
        """The DirectoryNode that points at this directory."""
        return DirectoryNode(name, self.digest, self.size)


_new = object.__new__
_set_dict = Directory.__dict__["__dict__"].__set__
_digest = bytes.__new__
_name = attrgetter("name")
_size = attrgetter("size")


def _stored_directory_node(name: bytes, digest: bytes, size: int) -> DirectoryNode:
    """A node of Directory.decode_stored, its fields as read (they were checked when put)."""
    return _new_tuple(DirectoryNode, (name, _digest(B3Digest, digest), size))


def _stored_file_node(name: bytes, digest: bytes, size: int, executable: bool) -> FileNode:
    return _new_tuple(FileNode, (name, _digest(B3Digest, digest), size, executable))


def _stored_symlink_node(name: bytes, target: bytes) -> SymlinkNode:
    return _new_tuple(SymlinkNode, (name, target))


def _check_names(kind: str, entries: tuple[Node, ...]) -> None:
    """Each name valid, and strictly ascending within its list."""
    previous = None
    for entry in entries:
        name = entry.name
        validate_name(name)
        if previous is not None and name <= previous:
            raise ValidationError(f"{'duplicate' if name == previous else 'unsorted'} name {name!r} in {kind}")
        previous = name


def _first_repeated(nodes: Iterable[Node]) -> bytes:
    seen: set[bytes] = set()
    for node in nodes:
        if node.name in seen:
            return node.name
        seen.add(node.name)
    raise AssertionError("no name repeats")
