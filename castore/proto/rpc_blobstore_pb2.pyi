from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatBlobRequest(_message.Message):
    __slots__ = ("digest", "send_chunks", "send_bao")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SEND_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    SEND_BAO_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    send_chunks: bool
    send_bao: bool
    def __init__(self, digest: _Optional[bytes] = ..., send_chunks: _Optional[bool] = ..., send_bao: _Optional[bool] = ...) -> None: ...

class StatBlobResponse(_message.Message):
    __slots__ = ("chunks", "bao")
    class ChunkMeta(_message.Message):
        __slots__ = ("digest", "size")
        DIGEST_FIELD_NUMBER: _ClassVar[int]
        SIZE_FIELD_NUMBER: _ClassVar[int]
        digest: bytes
        size: int
        def __init__(self, digest: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BAO_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[StatBlobResponse.ChunkMeta]
    bao: bytes
    def __init__(self, chunks: _Optional[_Iterable[_Union[StatBlobResponse.ChunkMeta, _Mapping]]] = ..., bao: _Optional[bytes] = ...) -> None: ...

class ReadBlobRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    def __init__(self, digest: _Optional[bytes] = ...) -> None: ...

class BlobChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class PutBlobResponse(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    def __init__(self, digest: _Optional[bytes] = ...) -> None: ...
