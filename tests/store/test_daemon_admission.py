"""The daemon admits a PathInfo only when the store backs it (store/pathinfo/checked.py): each
attack of issue 14 (defect 1), sent by a gRPC client to a real daemon, is refused and changes
nothing; honest writers (import, copy) still get through."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from castore.digest import B3Digest
from castore.errors import ValidationError
from castore.grpc_serve import serve
from castore.ingest import import_path
from castore.nodes import Directory, DirectoryNode, FileNode, node_to_proto
from store import api
from store.copy import closure_of, copy_paths
from store.grpc_server import daemon_services
from store.pathinfo.model import PathInfo
from store.proto import rpc_pathinfo_pb2_grpc
from store.signing import SecretKey
from store.storepath import StorePath
from store.url import Store, open_store

ATTACKER = StorePath.from_basename("00bgd045z0d4icpbc2yyz4gx48ak44la-attacker")
TOP = StorePath.from_basename("7nn1mg7sbg5c7rs9nzcfks9almxk6m5x-top")


@pytest.fixture(params=["memory", "local"])
def daemon(request, tmp_path: Path) -> Iterator[tuple[Store, Store, str]]:
    """The store behind a daemon (what `cairn daemon` serves), a client of it, and its grpcio target."""
    backend = open_store("memory://" if request.param == "memory" else f"local://{tmp_path}/store")
    short_dir = Path(tempfile.mkdtemp(prefix="cairn-", dir="/tmp"))  # socket paths must be short
    server = serve(f"grpc+unix://{short_dir}/d.sock", daemon_services(backend))
    try:
        with open_store(server.url) as client:
            yield backend, client, f"unix://{short_dir}/d.sock"
    finally:
        server.stop(grace=None)
        backend.close()
        shutil.rmtree(short_dir)


def tree(root: Path, content: bytes) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file").write_bytes(content)
    return root


@pytest.fixture
def victim(daemon, tmp_path: Path) -> PathInfo:
    """A path the client imported honestly."""
    _, client, _ = daemon
    return api.import_path(client, tree(tmp_path / "victim", b"the victim's bytes\n"))


def refused(target: str, info: PathInfo, reason: str) -> None:
    """Put `info` as a raw gRPC call: INVALID_ARGUMENT naming `reason`."""
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as e:
            rpc_pathinfo_pb2_grpc.PathInfoServiceStub(channel).Put(info.to_proto())
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert reason in e.value.details()


def test_a_zeroed_nar_hash_cannot_replace_a_paths_nar_hash(daemon, victim: PathInfo) -> None:
    backend, _, target = daemon
    refused(target, victim._replace(nar_sha256=bytes(32)), "a valid path does not change")
    assert backend.pathinfo.get(victim.store_path.digest) == victim
    assert backend.pathinfo.get_by_nar_sha256(victim.nar_sha256) == victim


def test_a_path_cannot_be_replaced_by_other_genuine_contents(daemon, victim: PathInfo, tmp_path: Path) -> None:
    backend, client, target = daemon
    other = api.import_path(client, tree(tmp_path / "other", b"other bytes\n"))
    swapped = other._replace(store_path=victim.store_path)  # consistent, but not the path's NAR
    refused(target, swapped, "a valid path does not change")
    assert backend.pathinfo.get(victim.store_path.digest) == victim


def test_a_path_whose_contents_and_references_are_missing_is_refused(daemon, tmp_path: Path) -> None:
    backend, _, target = daemon
    missing_dir = DirectoryNode(b"", B3Digest.of(b"no such directory"), 2)
    nar = hashlib.sha256(b"whatever").digest()
    refused(target, PathInfo(ATTACKER, missing_dir, 120, nar), "not all in the store")
    missing_ref = StorePath.from_basename("0g78smhdlirplinc5v7fxwmxr731rgx4-nowhere")
    refused(target, PathInfo(ATTACKER, missing_dir, 120, nar, references=(missing_ref,)),
            "unknown references: 0g78smhdlirplinc5v7fxwmxr731rgx4-nowhere")
    assert backend.pathinfo.get(ATTACKER.digest) is None


def test_a_directory_whose_blob_is_missing_is_refused(daemon) -> None:
    backend, _, target = daemon
    directory = Directory(files=(FileNode(b"f", B3Digest.of(b"absent"), 6),))
    backend.castore.directories.put([directory])
    node = DirectoryNode(b"", directory.digest, directory.size)
    refused(target, PathInfo(ATTACKER, node, 120, hashlib.sha256(b"whatever").digest()), "not all in the store")


def test_the_nar_hash_index_cannot_be_hijacked(daemon, victim: PathInfo, tmp_path: Path) -> None:
    """The attacker's own (stored) node, claimed to have the victim's NarHash: `nar/<NarHash>.nar`
    would then render the attacker's tree."""
    backend, client, target = daemon
    own = api.import_path(client, tree(tmp_path / "own", b"the attacker's bytes\n"))
    hijack = own._replace(store_path=ATTACKER, nar_sha256=victim.nar_sha256, nar_size=victim.nar_size)
    refused(target, hijack, "NarHash and NarSize must be those of its node's NAR")
    assert backend.pathinfo.get(ATTACKER.digest) is None
    assert backend.pathinfo.get_by_nar_sha256(victim.nar_sha256) == victim


def test_calculate_nar_refuses_a_false_root_size_and_caches_nothing_for_it(daemon, victim: PathInfo) -> None:
    backend, _, target = daemon
    lying = victim.node._replace(name=b"", size=victim.node.size + 1000)
    with grpc.insecure_channel(target) as channel:
        calculate = rpc_pathinfo_pb2_grpc.PathInfoServiceStub(channel).CalculateNAR
        with pytest.raises(grpc.RpcError) as e:
            calculate(node_to_proto(lying))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "size" in e.value.details()
        truthful = calculate(node_to_proto(victim.node._replace(name=b"")))
    assert (truthful.nar_size, truthful.nar_sha256) == (victim.nar_size, victim.nar_sha256)
    refused(target, victim._replace(store_path=ATTACKER, node=lying), "size")


def test_a_file_root_with_a_false_size_is_refused(daemon, tmp_path: Path) -> None:
    _, client, target = daemon
    (tmp_path / "f").write_bytes(b"twelve bytes")
    node, _ = import_path(client.castore, tmp_path / "f")
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as e:
            rpc_pathinfo_pb2_grpc.PathInfoServiceStub(channel).CalculateNAR(
                node_to_proto(FileNode(b"", node.digest, 13)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_second_put_of_the_same_nar_adds_only_signatures(daemon, victim: PathInfo) -> None:
    backend, client, _ = daemon
    key = SecretKey.generate("later-1")
    signed = victim.with_signatures((key.sign(victim.fingerprint()),))
    other_refs = signed._replace(references=(victim.store_path,))  # a claim it cannot change
    assert client.pathinfo.put(other_refs) == signed
    assert backend.pathinfo.get(victim.store_path.digest) == signed


def test_honest_writers_get_through(daemon, tmp_path: Path) -> None:
    """An import (CalculateNAR, then Put) made the victim; here a copy, references first."""
    backend, client, _ = daemon
    with open_store("memory://") as source:
        dep = api.import_path(source, tree(tmp_path / "dep", b"dependency\n"))
        top = PathInfo(TOP, dep.node, dep.nar_size, dep.nar_sha256, references=(dep.store_path, TOP))
        source.pathinfo.put(top)
        copy_paths(source, client, closure_of(source, [TOP]))
    assert backend.pathinfo.get(TOP.digest) == top
    assert backend.pathinfo.get(dep.store_path.digest) == dep


@pytest.mark.parametrize("where", ["one process", "two daemons"])
def test_two_first_puts_of_one_path_with_different_nars_admit_only_one(tmp_path: Path, where: str) -> None:
    """The check of a new path and its put are atomic for one path: the slower of two racing
    first versions is refused, not written over the first (a valid path does not change), whether
    both come to one daemon or to two daemons sharing a store (two handles of one local store,
    each behind its own admission check)."""
    from store.pathinfo.checked import CheckedPathInfoService

    url = "memory://" if where == "one process" else f"local://{tmp_path}/store"
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(open_store(url))
        second = first if where == "one process" else stack.enter_context(open_store(url))
        a = api.import_path(first, tree(tmp_path / "a", b"first\n"))
        b = api.import_path(first, tree(tmp_path / "b", b"second\n"))
        path = StorePath.from_basename("00bgd045z0d4icpbc2yyz4gx48ak44la-raced")
        versions = [info._replace(store_path=path) for info in (a, b)]
        both_checked = threading.Barrier(2)

        def slowed(put):
            def slow_put(info: PathInfo) -> PathInfo:
                try:
                    both_checked.wait(timeout=1)  # without the lock both get here at once
                except threading.BrokenBarrierError:
                    pass  # alone: the other Put waits for the lock
                return put(info)
            return slow_put

        for store in {id(first): first, id(second): second}.values():
            store.pathinfo.put = slowed(store.pathinfo.put)
        daemons = [CheckedPathInfoService(store.pathinfo, store.castore) for store in (first, second)]
        outcomes: list[str] = []

        def put(checked: CheckedPathInfoService, info: PathInfo) -> None:
            try:
                checked.put(info)
                outcomes.append("put")
            except ValidationError:
                outcomes.append("refused")

        threads = [threading.Thread(target=put, args=pair) for pair in zip(daemons, versions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["put", "refused"]
        assert second.pathinfo.get(path.digest) in versions
