"""PathInfo: a store path's root node and its Nix metadata, validated at construction.

References are kept as full store paths: the proto's `references` (20-byte digests)
and `reference_names` (basenames) are two views of them, checked against each other
when a message from the wire is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from castore.errors import ValidationError
from castore.nodes import Node, node_from_proto, node_to_proto, parse_message, rename
from store.contentaddress import ContentAddress
from store.nixhash import HashAlgo, NixHash
from store.proto import pathinfo_pb2 as pb
from store.signing import Signature, fingerprint
from store.storepath import StorePath

DRV_SUFFIX = ".drv"


@dataclass(frozen=True)
class PathInfo:
    store_path: StorePath
    node: Node
    nar_size: int
    nar_sha256: bytes
    references: tuple[StorePath, ...] = ()
    signatures: tuple[Signature, ...] = ()
    deriver: StorePath | None = None
    ca: ContentAddress | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node", rename(self.node, self.store_path.basename.encode()))
        if len(self.nar_sha256) != 32:
            raise ValidationError(f"nar_sha256 must be 32 bytes, got {len(self.nar_sha256)}")
        if self.nar_size <= 0:
            raise ValidationError("nar_size must be positive")
        if self.deriver is not None and not self.deriver.name.endswith(DRV_SUFFIX):
            raise ValidationError(f"deriver {self.deriver.basename} is not a .drv")

    @property
    def nar_hash(self) -> NixHash:
        return NixHash(HashAlgo.SHA256, self.nar_sha256)

    def fingerprint(self) -> bytes:
        """What Nix signatures sign."""
        return fingerprint(self.store_path, self.nar_sha256, self.nar_size, self.references)

    def with_signatures(self, signatures: tuple[Signature, ...]) -> PathInfo:
        """The same info with these signatures added (each once, order kept)."""
        merged = tuple(dict.fromkeys(self.signatures + tuple(signatures)))
        return PathInfo(self.store_path, self.node, self.nar_size, self.nar_sha256,
                        self.references, merged, self.deriver, self.ca)

    def to_proto(self) -> pb.PathInfo:
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
        node = node_from_proto(msg.node, allow_empty_name=False)
        try:
            store_path = StorePath.from_basename(node.name.decode())
        except UnicodeDecodeError:
            raise ValidationError(f"node name {node.name!r} is not a store path basename") from None
        ni = msg.narinfo
        if len(msg.references) != len(ni.reference_names):
            raise ValidationError(f"{len(msg.references)} references but {len(ni.reference_names)} reference names")
        references = []
        for digest, name in zip(msg.references, ni.reference_names):
            if len(digest) != 20:
                raise ValidationError(f"reference digest must be 20 bytes, got {len(digest)}")
            ref = StorePath.from_basename(name)
            if ref.digest != digest:
                raise ValidationError(f"reference name {name} does not match its digest")
            references.append(ref)
        deriver = None
        if ni.HasField("deriver"):
            deriver = StorePath(ni.deriver.digest, ni.deriver.name + DRV_SUFFIX)
        ca = ContentAddress.from_proto(ni.ca.type, ni.ca.digest) if ni.HasField("ca") else None
        signatures = tuple(Signature(s.name, s.data) for s in ni.signatures)
        return cls(store_path, node, ni.nar_size, ni.nar_sha256, tuple(references), signatures, deriver, ca)

    @classmethod
    def decode(cls, data: bytes) -> PathInfo:
        return cls.from_proto(parse_message(pb.PathInfo, data))
