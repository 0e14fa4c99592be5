"""Import a tree into castore and export it again: identical contents, modes and links."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from castore import api
from castore.errors import ValidationError
from castore.nodes import DirectoryNode, FileNode, SymlinkNode

BACKENDS = ["memory://", "local"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    url = request.param
    if url == "local":
        url = f"local://{tmp_path}/store"
    with api.open_castore(url) as s:
        yield s


def tree_listing(root: Path) -> dict[bytes, tuple]:
    """Everything export must keep: kind, executable bit, link target, contents."""
    out = {}
    rootb = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(rootb):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, rootb)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", bool(st.st_mode & stat.S_IXUSR), Path(os.fsdecode(path)).read_bytes())
    return out


def test_zoo_roundtrip_is_identical(store, zoo, tmp_path):
    node, stats = api.import_path(store, zoo)
    assert isinstance(node, DirectoryNode) and node.name == b""
    assert stats.files == 12 and stats.symlinks == 4 and stats.directories == 5
    dest = tmp_path / "out"
    api.export_node(store, node, dest)
    assert tree_listing(dest) == tree_listing(zoo)
    subprocess.run(["diff", "-r", "--no-dereference", str(zoo), str(dest)], check=True)


def test_reimport_gives_the_same_root(store, zoo):
    first, _ = api.import_path(store, zoo)
    second, _ = api.import_path(store, zoo)
    assert first == second


def test_single_file_and_symlink_roots(store, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"Hello World!")
    os.chmod(f, 0o755)
    node, _ = api.import_path(store, f)
    assert node == FileNode(b"", node.digest, 12, True)
    assert node.digest.hex() == "5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c"
    api.export_node(store, node, tmp_path / "f2")
    assert (tmp_path / "f2").read_bytes() == b"Hello World!"
    assert os.stat(tmp_path / "f2").st_mode & 0o777 == 0o755

    os.symlink("/nix/store/somewhereelse", tmp_path / "l")
    link, _ = api.import_path(store, tmp_path / "l")
    assert link == SymlinkNode(b"", b"/nix/store/somewhereelse")
    api.export_node(store, link, tmp_path / "l2")
    assert os.readlink(tmp_path / "l2") == "/nix/store/somewhereelse"


def test_resolve_root_by_digest_and_node_text(store, zoo):
    node, _ = api.import_path(store, zoo)
    assert api.resolve_root(store, node.digest.b3()) == node
    assert api.resolve_root(store, api.node_to_text(node)) == node
    assert [p for p, _ in api.walk(store, node)][:2] == [b"", b"-leading-dash"]


def test_special_files_are_refused_with_their_path(store, tmp_path):
    tree = tmp_path / "t"
    tree.mkdir()
    os.mkfifo(tree / "fifo")
    with pytest.raises(ValidationError, match="fifo.*FIFO"):
        api.import_path(store, tree)
    os.unlink(tree / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "sock"))
    try:
        with pytest.raises(ValidationError, match="sock.*socket"):
            api.import_path(store, tree)
    finally:
        sock.close()


def test_export_refuses_an_existing_destination(store, zoo, tmp_path):
    node, _ = api.import_path(store, zoo)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValidationError, match="exists"):
        api.export_node(store, node, tmp_path / "taken")


def test_export_never_follows_links_out_of_dest(store, tmp_path):
    """A tree whose symlink points outside: export makes the link, writes nothing through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "t"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("inside\n")
    os.symlink(str(outside), tree / "escape")
    node, _ = api.import_path(store, tree)
    api.export_node(store, node, tmp_path / "dest")
    assert list(outside.iterdir()) == []
    assert os.readlink(tmp_path / "dest" / "escape") == str(outside)


def test_a_tree_deeper_than_pythons_stack_round_trips(store, tmp_path):
    """Import and export walk without recursion: 1,500 levels (RecursionError past about 1,000)."""
    deep = tmp_path / "deep"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1500):
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(parent)
    leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(leaf, b"at the bottom\n")
    os.close(leaf)
    os.close(fd)
    dest = tmp_path / "out"
    try:
        node, stats = api.import_path(store, deep)
        assert stats.directories == 1501 and stats.files == 1
        api.export_node(store, node, dest)
        assert api.import_path(store, dest)[0] == node
    finally:  # pytest's clean-up of old temporary directories (shutil.rmtree) recurses
        subprocess.run(["rm", "-rf", str(deep), str(dest)], check=True)
