"""Server reflection (grpcio-reflection), so `grpcurl list` and `grpcurl describe` work with no
.proto files, for every service under both package names.

The snix.* services are the tvix.* ones renamed (the same messages, the same bytes), so their
descriptors are the tvix files with the package renamed, built once and kept in a pool of
their own beside the generated ones.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection

from castore.grpc_server import PACKAGE_PREFIXES, Register, served_names

SERVICE_NAME = reflection.SERVICE_NAME


def reflection_service(services: Iterable[ServiceDescriptor], others: Iterable[ServiceDescriptor] = ()) -> Register:
    """The registration of reflection over `services` (tvix descriptors, served under every
    prefix, see castore.grpc_server.add_service) and `others` (served as they are)."""
    services, others = list(services), list(others)
    pool = DescriptorPool()
    for file in _files_deps_first([s.file for s in services + others]):
        pool.Add(_proto(file))
        if file.package.startswith(PACKAGE_PREFIXES[0]):
            for prefix in PACKAGE_PREFIXES[1:]:
                pool.Add(_renamed(_proto(file), PACKAGE_PREFIXES[0], prefix))
    names = [name for s in services for name in served_names(s)] + [s.full_name for s in others]
    names.append(SERVICE_NAME)

    def register(server: grpc.Server) -> None:
        reflection.enable_server_reflection(names, server, pool)
    return register


def _files_deps_first(files: list[FileDescriptor]) -> Iterator[FileDescriptor]:
    seen: set[str] = set()

    def visit(file: FileDescriptor) -> Iterator[FileDescriptor]:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            yield from visit(dependency)
        yield file

    for file in files:
        yield from visit(file)


def _proto(file: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto


def _renamed(proto: descriptor_pb2.FileDescriptorProto, old: str, new: str) -> descriptor_pb2.FileDescriptorProto:
    """`proto` with package `old...` (e.g. "tvix.") renamed `new...`, in its name, its
    dependencies and every type it refers to."""
    def path(name: str) -> str:
        return new.rstrip(".") + name[len(old) - 1:] if name.startswith(old.rstrip(".") + "/") else name

    def type_name(name: str) -> str:
        return "." + new + name[len(old) + 1:] if name.startswith("." + old) else name

    def messages(message_types) -> None:
        for message in message_types:
            for field in message.field:
                if field.HasField("type_name"):  # only messages and enums have one
                    field.type_name = type_name(field.type_name)
            messages(message.nested_type)

    proto.name = path(proto.name)
    proto.package = new + proto.package[len(old):]
    proto.dependency[:] = [path(d) for d in proto.dependency]
    messages(proto.message_type)
    for service in proto.service:
        for method in service.method:
            method.input_type = type_name(method.input_type)
            method.output_type = type_name(method.output_type)
    return proto
