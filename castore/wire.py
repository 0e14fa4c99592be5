"""The canonical protobuf wire form of stored messages, written and read without the protobuf runtime.

Digests cover the canonical encoding (SPEC 2): fields in ascending number, proto3 defaults
omitted, minimal varints, no unknown fields. Whatever a store wrote is in that form, so
this strict reader is all that reading it back needs: it is faster than protobuf's parser
plus its message objects, and it keeps `google.protobuf` (about 15 ms to import) out of
commands that only read, such as `cairn dump`. Bytes in any other form raise NotCanonical;
a caller that must accept them (input from the wire) parses them with protobuf instead.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")
U64_MAX = 2**64 - 1
_LEN, _VARINT = 2, 0
NODE_FIELDS = {1: 3, 2: 4, 3: 2}
"""Per kind of node (its field number in `Directory` and in the `Node` oneof: directory, file,
symlink), the last field it has: name 1, digest or target 2, size 3, executable 4."""
_ENTRY_WIRE = (-1, _LEN, _LEN, _VARINT, _VARINT)


class NotCanonical(ValueError):
    """Bytes that are not the canonical encoding of the expected message."""


def _long_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A varint of two or more bytes at `pos`; it must be minimal and fit in 64 bits."""
    value = shift = 0
    end = len(data)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if (byte == 0 and shift) or value > U64_MAX:
                raise NotCanonical("a varint is not minimal or overflows 64 bits")
            return value, pos
        shift += 7
    raise NotCanonical("truncated varint")


def fields(data: bytes) -> list[tuple[int, bytes | int]]:
    """(field number, value) in order: bytes of a length-delimited field, int of a varint.

    Numbers never descend (a repeated field repeats its number); other wire types are refused.
    Which fields may repeat, and which values are defaults, is the caller's to check.
    """
    out: list[tuple[int, bytes | int]] = []
    pos, end, last = 0, len(data), 0
    while pos < end:
        key, pos = (data[pos], pos + 1) if data[pos] < 0x80 else _long_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number < last or pos >= end:
            raise NotCanonical("fields out of order or truncated")
        last = number
        value, pos = (data[pos], pos + 1) if data[pos] < 0x80 else _long_varint(data, pos)
        if wire == _LEN:
            if pos + value > end:
                raise NotCanonical("truncated field")
            out.append((number, data[pos:pos + value]))
            pos += value
        elif wire == _VARINT:
            out.append((number, value))
        else:
            raise NotCanonical(f"wire type {wire}")
    return out


def node(data: bytes) -> tuple[int, tuple[bytes, bytes, int, bool]]:
    """A `Node` oneof: the kind (1 directory, 2 file, 3 symlink) and the fields of entry()."""
    found = fields(data)
    if len(found) != 1 or found[0][0] not in NODE_FIELDS or type(found[0][1]) is not bytes:
        raise NotCanonical("a Node holds exactly one directory, file or symlink")
    kind, body = found[0]
    return kind, entry(body, 0, len(body), NODE_FIELDS[kind])


def directory(data: bytes, make: Callable[[int, tuple[bytes, bytes, int, bool]], T]) -> tuple[list[T], ...]:
    """`make(kind, entry() fields)` of each of a `Directory`'s directories, files and symlinks,
    made as it is read: a directory of a million entries never holds their fields as well."""
    lists: tuple[list[T], ...] = ([], [], [])
    pos, end, last = 0, len(data), 1
    while pos < end:
        key = data[pos]
        kind = key >> 3
        if key & 7 != _LEN or not last <= kind <= 3 or pos + 1 >= end:
            raise NotCanonical("not a Directory field, or out of order")
        last = kind
        length, pos = (data[pos + 1], pos + 2) if data[pos + 1] < 0x80 else _long_varint(data, pos + 1)
        stop = pos + length
        if stop > end:
            raise NotCanonical("truncated entry")
        lists[kind - 1].append(make(kind, entry(data, pos, stop, NODE_FIELDS[kind])))
        pos = stop
    return lists


def stored_directory(data: bytes, make_directory: Callable[[bytes, bytes, int], T],
                     make_file: Callable[[bytes, bytes, int, bool], T],
                     make_symlink: Callable[[bytes, bytes], T]) -> tuple[list[T], ...]:
    """directory() without its checks of the form, for bytes that are a canonical encoding of a
    valid Directory: what a store validated when they were put, read back verified against their
    digest. It reads fields where the canonical form puts them, so any other bytes would be
    misread, never refused: give it nothing else.

    What it relies on: an entry is shorter than 16 KiB, a name than 256 bytes and a target than
    4 KiB (their lengths are varints of one or two bytes); a name and a digest or target are
    never empty, so always there; a size is there unless 0, executable only when true, and
    neither of their keys is an entry's, so the entry's own length is not needed to find its end.

    `make_directory(name, digest, size)`, `make_file(name, digest, size, executable)` and
    `make_symlink(name, target)` build each entry as it is read."""
    lists: tuple[list[T], ...] = ([], [], [])
    directories, files, symlinks = lists
    pos, end = 0, len(data)
    while pos < end:
        kind = data[pos]
        pos += 3 if data[pos + 1] < 0x80 else 4  # the entry's key and length, the name's key
        length = data[pos]
        if length < 0x80:
            pos += 1
        else:
            length = length & 0x7F | data[pos + 1] << 7
            pos += 2
        name = data[pos:pos + length]
        pos += length
        if kind == _SYMLINK_KEY:
            length = data[pos + 1]
            if length < 0x80:
                pos += 2
            else:
                length = length & 0x7F | data[pos + 2] << 7
                pos += 3
            symlinks.append(make_symlink(name, data[pos:pos + length]))
            pos += length
            continue
        digest = data[pos + 2:pos + 34]  # after its key and its length, 32
        pos += 34
        size = 0
        if pos < end and data[pos] == _SIZE_KEY:
            size = data[pos + 1]
            pos += 2
            if size >= 0x80:
                size, pos = _long_varint(data, pos - 1)
        if kind == _DIRECTORY_KEY:
            directories.append(make_directory(name, digest, size))
        elif pos < end and data[pos] == _EXECUTABLE_KEY:
            files.append(make_file(name, digest, size, True))
            pos += 2
        else:
            files.append(make_file(name, digest, size, False))
    return lists


_DIRECTORY_KEY, _SYMLINK_KEY = 1 << 3 | _LEN, 3 << 3 | _LEN
_SIZE_KEY, _EXECUTABLE_KEY = 3 << 3 | _VARINT, 4 << 3 | _VARINT


def entry(data: bytes, pos: int, end: int, last_field: int) -> tuple[bytes, bytes, int, bool]:
    """name, digest or target, size, executable of the node message in data[pos:end]: each field
    at most once, in order, up to `last_field`, and never at its default."""
    name = second = b""
    size = 0
    executable = False
    last = 0
    while pos < end:
        key = data[pos]
        number = key >> 3
        if not last < number <= last_field or key & 7 != _ENTRY_WIRE[number] or pos + 1 >= end:
            raise NotCanonical("not a node field, out of order, or repeated")
        last = number
        value, pos = (data[pos + 1], pos + 2) if data[pos + 1] < 0x80 else _long_varint(data, pos + 1)
        if not value:
            raise NotCanonical("a field at its default value")
        if number <= 2:
            stop = pos + value
            if stop > end:
                raise NotCanonical("truncated field")
            if number == 1:
                name = data[pos:stop]
            else:
                second = data[pos:stop]
            pos = stop
        elif number == 3:
            size = value
        elif value == 1:
            executable = True
        else:
            raise NotCanonical("a bool other than 1")
    if pos != end:
        raise NotCanonical("a field runs past its message")
    return name, second, size, executable


def varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]


def length_delimited(number: int, body: bytes) -> bytes:
    """Field `number` (below 16) holding `body`: a string, bytes or a message."""
    return _SMALL[number << 3 | _LEN] + varint(len(body)) + body


def encode_entry(name: bytes, second: bytes, size: int = 0, executable: bool = False) -> bytes:
    """A DirectoryNode, FileNode or SymlinkNode message; defaults are left out."""
    out = length_delimited(1, name) if name else b""
    if second:
        out += length_delimited(2, second)
    if size:
        out += b"\x18" + varint(size)
    if executable:
        out += b"\x20\x01"
    return out


class Fields(dict[int, list[bytes | int]]):
    """The values of each field number of a message, in order."""

    def one(self, number: int, default: bytes | int = b"") -> bytes | int:
        """A singular field's value, or its default when absent."""
        return self[number][0] if number in self else default

    def all(self, number: int) -> list[bytes | int]:
        return self.get(number, [])


def message_fields(data: bytes, last: int, *, varints: tuple[int, ...] = (),
                   repeated: tuple[int, ...] = ()) -> Fields:
    """The fields of a canonical message with fields 1..`last`: varints where listed,
    length-delimited otherwise; only `repeated` ones may occur more than once, and a singular
    one is never at its default (an empty message counts as one)."""
    found = Fields()
    for number, value in fields(data):
        if not 1 <= number <= last or (type(value) is int) != (number in varints):
            raise NotCanonical(f"field {number} unknown or of the wrong wire type")
        if number not in repeated and (number in found or not value):
            raise NotCanonical(f"field {number} repeated or at its default")
        found.setdefault(number, []).append(value)
    return found
