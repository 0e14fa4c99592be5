"""`cairn castore ...`: a thin layer over castore.api, imported by the verb that runs (other commands skip it)."""

from __future__ import annotations

import argparse
import sys

from castore.cli_lazy import Group, LazySubcommands


def add_castore_options(p: argparse.ArgumentParser) -> None:
    """The options that choose castore services, shared by every command (the help names the
    default without computing it: building the parser must not load castore.url)."""
    p.add_argument("--store", metavar="URL", default=None,
                   help="memory://, local:///dir, grpc+unix:///sock or grpc+http://host:port for every "
                        "service (default: $CAIRN_STORE, else local://$XDG_DATA_HOME/cairn/store, "
                        "i.e. ~/.local/share/cairn/store)")
    p.add_argument("--blob-store", metavar="URL", help="the BlobService, overriding --store")
    p.add_argument("--directory-store", metavar="URL", help="the DirectoryService, overriding --store")
    p.add_argument("--config", metavar="FILE",
                   help="a TOML composition of services (default: $CAIRN_CONFIG; see docs/architecture.md)")


def open_from(args: argparse.Namespace):
    """The castore the command line chose."""
    from castore.url import open_castore

    return open_castore(args.store, blob_url=args.blob_store, directory_url=args.directory_store,
                        config=args.config)


def add_commands(sub: LazySubcommands) -> Group:
    """Add `cairn castore VERB`; returns its verbs, so higher layers can add theirs (mount)."""
    verbs = sub.add_group("castore", help="content-addressed blobs and directories (no Nix)")
    verbs.add_command("import", "ingest a file or tree; print its root node", add_castore_options, _import_args)
    verbs.add_command("export", "write a root back to DEST (must not exist)", add_castore_options, _export_args)
    verbs.add_command("ls", "list every path below a root", add_castore_options, _ls_args)
    verbs.add_command("cat", "write a blob to stdout", add_castore_options, _cat_args)
    return verbs


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH")
    p.set_defaults(func=cmd_import)


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", metavar="DIGEST|NODE", help="b3:/blake3-/hex digest or base64url node")
    p.add_argument("dest", metavar="DEST")
    p.set_defaults(func=cmd_export)


def _ls_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", metavar="DIGEST|NODE")
    p.set_defaults(func=cmd_ls)


def _cat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("digest", metavar="DIGEST")
    p.set_defaults(func=cmd_cat)


def cmd_import(args: argparse.Namespace) -> int:
    from castore import api
    from castore.progress import byte_progress, human_bytes

    with open_from(args) as store, byte_progress("importing") as progress:
        node, stats = api.import_path(store, args.path, progress=progress)
    print(api.describe_node(node))
    new = stats.new_stored_bytes
    stored = f", {human_bytes(new)} new stored" if new is not None else ""
    print(f"imported {stats.files} files, {stats.directories} directories, {stats.symlinks} symlinks, "
          f"{human_bytes(stats.bytes)}{stored} in {stats.seconds:.2f} s", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from castore import api

    with open_from(args) as store:
        api.export_node(store, api.resolve_root(store, args.root), args.dest)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from castore import api

    with open_from(args) as store:
        for path, node in api.walk(store, api.resolve_root(store, args.root)):
            print(f"{api.describe_node(node, with_text=False)}\t{path.decode(errors='backslashreplace') or '.'}")
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    from castore.digest import B3Digest
    from castore.errors import NotFoundError, ValidationError

    with open_from(args) as store:
        digest = B3Digest.parse(args.digest)
        if store.directories.get(digest) is not None:
            raise ValidationError(f"{digest} is a directory, not a blob: list it with `cairn castore ls`")
        reader = store.blobs.open_read(digest)
        if reader is None:
            raise NotFoundError(f"blob {digest} not found")
        with reader:
            for piece in iter(lambda: reader.read(1 << 20), b""):
                sys.stdout.buffer.write(piece)
    return 0

