from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Directory(_message.Message):
    __slots__ = ("directories", "files", "symlinks")
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    SYMLINKS_FIELD_NUMBER: _ClassVar[int]
    directories: _containers.RepeatedCompositeFieldContainer[DirectoryNode]
    files: _containers.RepeatedCompositeFieldContainer[FileNode]
    symlinks: _containers.RepeatedCompositeFieldContainer[SymlinkNode]
    def __init__(self, directories: _Optional[_Iterable[_Union[DirectoryNode, _Mapping]]] = ..., files: _Optional[_Iterable[_Union[FileNode, _Mapping]]] = ..., symlinks: _Optional[_Iterable[_Union[SymlinkNode, _Mapping]]] = ...) -> None: ...

class DirectoryNode(_message.Message):
    __slots__ = ("name", "digest", "size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    digest: bytes
    size: int
    def __init__(self, name: _Optional[bytes] = ..., digest: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...

class FileNode(_message.Message):
    __slots__ = ("name", "digest", "size", "executable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    digest: bytes
    size: int
    executable: bool
    def __init__(self, name: _Optional[bytes] = ..., digest: _Optional[bytes] = ..., size: _Optional[int] = ..., executable: _Optional[bool] = ...) -> None: ...

class SymlinkNode(_message.Message):
    __slots__ = ("name", "target")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    target: bytes
    def __init__(self, name: _Optional[bytes] = ..., target: _Optional[bytes] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("directory", "file", "symlink")
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_FIELD_NUMBER: _ClassVar[int]
    directory: DirectoryNode
    file: FileNode
    symlink: SymlinkNode
    def __init__(self, directory: _Optional[_Union[DirectoryNode, _Mapping]] = ..., file: _Optional[_Union[FileNode, _Mapping]] = ..., symlink: _Optional[_Union[SymlinkNode, _Mapping]] = ...) -> None: ...
