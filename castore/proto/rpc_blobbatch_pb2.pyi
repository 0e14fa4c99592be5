from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetClosureRequest(_message.Message):
    __slots__ = ("root_digest",)
    ROOT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    root_digest: bytes
    def __init__(self, root_digest: _Optional[bytes] = ...) -> None: ...

class Encodings(_message.Message):
    __slots__ = ("directories",)
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    directories: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, directories: _Optional[_Iterable[bytes]] = ...) -> None: ...

class HasManyRequest(_message.Message):
    __slots__ = ("digests",)
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    digests: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, digests: _Optional[_Iterable[bytes]] = ...) -> None: ...

class HasManyResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, found: _Optional[_Iterable[bool]] = ...) -> None: ...

class ReadManyRequest(_message.Message):
    __slots__ = ("digests",)
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    digests: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, digests: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ReadManyResponse(_message.Message):
    __slots__ = ("parts",)
    PARTS_FIELD_NUMBER: _ClassVar[int]
    parts: _containers.RepeatedCompositeFieldContainer[BlobPart]
    def __init__(self, parts: _Optional[_Iterable[_Union[BlobPart, _Mapping]]] = ...) -> None: ...

class BlobPart(_message.Message):
    __slots__ = ("head", "data")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    head: BlobHead
    data: bytes
    def __init__(self, head: _Optional[_Union[BlobHead, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class BlobHead(_message.Message):
    __slots__ = ("found", "size", "chunks", "inline", "data")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    INLINE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    found: bool
    size: int
    chunks: _containers.RepeatedCompositeFieldContainer[ChunkMeta]
    inline: bool
    data: bytes
    def __init__(self, found: _Optional[bool] = ..., size: _Optional[int] = ..., chunks: _Optional[_Iterable[_Union[ChunkMeta, _Mapping]]] = ..., inline: _Optional[bool] = ..., data: _Optional[bytes] = ...) -> None: ...

class ChunkMeta(_message.Message):
    __slots__ = ("digest", "size")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    size: int
    def __init__(self, digest: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...

class PutManyRequest(_message.Message):
    __slots__ = ("blobs", "sync", "directories", "blob_piece", "blob_end")
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    BLOB_PIECE_FIELD_NUMBER: _ClassVar[int]
    BLOB_END_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedScalarFieldContainer[bytes]
    sync: bool
    directories: _containers.RepeatedScalarFieldContainer[bytes]
    blob_piece: bytes
    blob_end: bool
    def __init__(self, blobs: _Optional[_Iterable[bytes]] = ..., sync: _Optional[bool] = ..., directories: _Optional[_Iterable[bytes]] = ..., blob_piece: _Optional[bytes] = ..., blob_end: _Optional[bool] = ...) -> None: ...

class PutManyResponse(_message.Message):
    __slots__ = ("digests", "root_digest")
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    ROOT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    digests: _containers.RepeatedScalarFieldContainer[bytes]
    root_digest: bytes
    def __init__(self, digests: _Optional[_Iterable[bytes]] = ..., root_digest: _Optional[bytes] = ...) -> None: ...
