"""PathInfo: a store path's root node and its Nix metadata, validated at construction.

References are kept as full store paths: the proto's `references` (20-byte digests)
and `reference_names` (basenames) are two views of them, checked against each other
when a message from the wire is parsed. Stored records are read without protobuf (see
castore.wire); it is imported when a message is built or a record in another form is parsed.
"""

from __future__ import annotations

from collections import namedtuple
from types import ModuleType
from typing import TYPE_CHECKING

from castore import wire
from castore.errors import ValidationError
from castore.nodes import Node, decode_canonical_node, node_from_proto, node_to_proto, parse_message, rename
from castore.value import Value
from store.contentaddress import ContentAddress
from store.nixhash import HashAlgo, NixHash
from store.storepath import StorePath

if TYPE_CHECKING:
    from store.narinfo import NarinfoExtras
    from store.proto import pathinfo_pb2 as pb
    from store.signing import Signature

DRV_SUFFIX = ".drv"


class PathInfo(Value, namedtuple("PathInfo", "store_path node nar_size nar_sha256 references signatures deriver ca "
                                              "extras")):
    """A store path's root node (named for the path) and its Nix metadata; `_replace` checks anew."""

    __slots__ = ()
    store_path: StorePath
    node: Node
    nar_size: int
    nar_sha256: bytes
    references: tuple[StorePath, ...]
    signatures: tuple[Signature, ...]
    deriver: StorePath | None
    ca: ContentAddress | None
    extras: NarinfoExtras | None
    """Narinfo lines the protobuf form has no place for: kept by stores with narinfo records,
    dropped by encode() and so by gRPC."""

    def __new__(cls, store_path: StorePath, node: Node, nar_size: int, nar_sha256: bytes,
                references: tuple[StorePath, ...] = (), signatures: tuple[Signature, ...] = (),
                deriver: StorePath | None = None, ca: ContentAddress | None = None,
                extras: NarinfoExtras | None = None) -> PathInfo:
        node = rename(node, store_path.basename.encode())
        if len(nar_sha256) != 32:
            raise ValidationError(f"nar_sha256 must be 32 bytes, got {len(nar_sha256)}")
        if nar_size <= 0:
            raise ValidationError("nar_size must be positive")
        if deriver is not None and not deriver.name.endswith(DRV_SUFFIX):
            raise ValidationError(f"deriver {deriver.basename} is not a .drv")
        return tuple.__new__(cls, (store_path, node, nar_size, nar_sha256, references, signatures, deriver, ca,
                                   extras))

    @property
    def nar_hash(self) -> NixHash:
        return NixHash(HashAlgo.SHA256, self.nar_sha256)

    def fingerprint(self) -> bytes:
        """What Nix signatures sign."""
        from store.signing import fingerprint

        return fingerprint(self.store_path, self.nar_sha256, self.nar_size, self.references)

    def with_signatures(self, signatures: tuple[Signature, ...]) -> PathInfo:
        """The same info with these signatures added (each once, order kept)."""
        merged = tuple(dict.fromkeys(self.signatures + tuple(signatures)))
        return self._replace(signatures=merged)

    def to_proto(self) -> pb.PathInfo:
        pb = _pb()
        narinfo = pb.NARInfo(
            nar_size=self.nar_size, nar_sha256=self.nar_sha256,
            signatures=[pb.NARInfo.Signature(name=s.key_name, data=s.data) for s in self.signatures],
            reference_names=[r.basename for r in self.references])
        if self.deriver is not None:
            narinfo.deriver.CopyFrom(pb.StorePath(name=self.deriver.name[:-len(DRV_SUFFIX)],
                                                  digest=self.deriver.digest))
        if self.ca is not None:
            narinfo.ca.CopyFrom(pb.NARInfo.CA(type=int(self.ca.proto_hash_type), digest=self.ca.hash.digest))
        return pb.PathInfo(node=node_to_proto(self.node), references=[r.digest for r in self.references],
                           narinfo=narinfo)

    def encode(self) -> bytes:
        return self.to_proto().SerializeToString()

    @classmethod
    def from_proto(cls, msg: pb.PathInfo) -> PathInfo:
        """Validate a message from the wire or disk (SPEC 3, PathInfo validation)."""
        if not msg.HasField("narinfo"):
            raise ValidationError("PathInfo has no narinfo")
        if not msg.HasField("node"):
            raise ValidationError("PathInfo has no node")
        ni = msg.narinfo
        return cls._validated(
            node_from_proto(msg.node, allow_empty_name=False), list(msg.references), list(ni.reference_names),
            ni.nar_size, ni.nar_sha256, [(s.name, s.data) for s in ni.signatures],
            (ni.deriver.name, ni.deriver.digest) if ni.HasField("deriver") else None,
            (ni.ca.type, ni.ca.digest) if ni.HasField("ca") else None)

    @classmethod
    def decode(cls, data: bytes) -> PathInfo:
        """An encoded PathInfo: the canonical form (as stored) is read without protobuf."""
        try:
            return cls._decode_canonical(data)
        except wire.NotCanonical:
            return cls.from_proto(parse_message(_pb().PathInfo, data))

    @classmethod
    def _decode_canonical(cls, data: bytes) -> PathInfo:
        info = wire.message_fields(data, 3, repeated=(2,))  # node, references, narinfo
        if 3 not in info:
            raise ValidationError("PathInfo has no narinfo")
        if 1 not in info:
            raise ValidationError("PathInfo has no node")
        # nar_size, nar_sha256, signatures, reference_names, deriver, ca
        ni = wire.message_fields(info.one(3), 6, varints=(1,), repeated=(3, 4))
        try:
            reference_names = [name.decode() for name in ni.all(4)]
            signatures = [_string_and_bytes(s) for s in ni.all(3)]
            deriver = _string_and_bytes(ni.one(5)) if 5 in ni else None
        except UnicodeDecodeError:
            raise wire.NotCanonical("a string that is not UTF-8") from None
        ca = None
        if 6 in ni:
            fields = wire.message_fields(ni.one(6), 2, varints=(1,))  # type, digest
            ca = fields.one(1, 0), fields.one(2)
        return cls._validated(decode_canonical_node(info.one(1), allow_empty_name=False), info.all(2),
                              reference_names, ni.one(1, 0), ni.one(2), signatures, deriver, ca)

    @classmethod
    def _validated(cls, node: Node, references: list[bytes], reference_names: list[str], nar_size: int,
                   nar_sha256: bytes, signatures: list[tuple[str, bytes]], deriver: tuple[str, bytes] | None,
                   ca: tuple[int, bytes] | None) -> PathInfo:
        """SPEC 3, PathInfo validation, of the fields of a message (deriver: name without .drv, digest;
        ca: hash type, digest)."""
        try:
            store_path = StorePath.from_basename(node.name.decode())
        except UnicodeDecodeError:
            raise ValidationError(f"node name {node.name!r} is not a store path basename") from None
        if len(references) != len(reference_names):
            raise ValidationError(f"{len(references)} references but {len(reference_names)} reference names")
        refs = []
        for digest, name in zip(references, reference_names):
            if len(digest) != 20:
                raise ValidationError(f"reference digest must be 20 bytes, got {len(digest)}")
            ref = StorePath.from_basename(name)
            if ref.digest != digest:
                raise ValidationError(f"reference name {name} does not match its digest")
            refs.append(ref)
        return cls(store_path, node, nar_size, nar_sha256, tuple(refs),
                   _signatures(signatures),
                   None if deriver is None else StorePath(deriver[1], deriver[0] + DRV_SUFFIX),
                   None if ca is None else ContentAddress.from_proto(*ca))


def _signatures(pairs: list[tuple[str, bytes]]) -> tuple[Signature, ...]:
    """Signature values of (key name, data) pairs; the signing module (keys, verification) is
    loaded for a signed path only: a dump of an unsigned one needs none of it."""
    if not pairs:
        return ()
    from store.signing import Signature

    return tuple(Signature(name, data) for name, data in pairs)


def _string_and_bytes(data: bytes) -> tuple[str, bytes]:
    """A Signature (name, data) or StorePath (name, digest) message."""
    fields = wire.message_fields(data, 2)
    return fields.one(1).decode(), fields.one(2)


def _pb() -> ModuleType:
    """The generated protobuf module, loaded when a message is first built or parsed."""
    from store.proto import pathinfo_pb2

    return pathinfo_pb2
