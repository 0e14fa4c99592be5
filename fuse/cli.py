"""`cairn mount` and `cairn castore mount`: parsers only; pyfuse3 and trio load when a mount starts."""

from __future__ import annotations

import argparse

from castore.cli import add_castore_options
from castore.cli_lazy import Build, Group, LazySubcommands

TYPE_CHECKING = False  # as in store.cli: typing is not loaded for `cairn --help`
if TYPE_CHECKING:
    from fuse.options import MountOptions


def add_commands(sub: LazySubcommands, store_options: Build, groups: dict[str, Group]) -> None:
    """`cairn mount`, and `mount` in the `castore` group (loaded by store.cli by name: see PLUGINS there)."""
    sub.add_command("mount", "mount the store read-only; contents fetched on demand", store_options, _mount_args)
    groups["castore"].add_command("mount", "mount one directory read-only, fetched on demand", add_castore_options,
                                  _castore_mount_args)


def _mount_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("--list-root", action="store_true", help="let the mount point be listed (lists every path)")
    _add_options(p)
    p.set_defaults(func=cmd_mount, serves=True)


def _castore_mount_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", metavar="DIGEST|NODE", help="a directory: b3:/blake3-/hex digest or base64url node")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    _add_options(p)
    p.set_defaults(func=cmd_castore_mount, serves=True)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-other", action="store_true",
                        help="let other users use the mount (non-root: user_allow_other in /etc/fuse.conf)")
    parser.add_argument("--xattr", action="store_true",
                        help="expose user.tvix.castore.blob.digest and user.tvix.castore.directory.digest")


def _options(args: argparse.Namespace) -> MountOptions:
    from fuse.options import MountOptions  # a dataclass: loading dataclasses was a fifth of `cairn --help`

    return MountOptions(allow_other=args.allow_other, xattr=args.xattr)


def cmd_mount(args: argparse.Namespace) -> int:
    from fuse.mount import mount
    from fuse.nixroots import StorePathRoots
    from store.cli import open_store_from

    with open_store_from(args) as store:
        return mount(store.castore, StorePathRoots(store.pathinfo, listable=args.list_root), args.mountpoint,
                     _options(args))


def cmd_castore_mount(args: argparse.Namespace) -> int:
    from castore import api
    from castore.cli import open_from
    from castore.errors import ValidationError
    from castore.nodes import DirectoryNode
    from fuse.mount import mount

    with open_from(args) as store:
        root = api.resolve_root(store, args.root)
        if not isinstance(root, DirectoryNode):
            raise ValidationError(f"{args.root} is not a directory")
        return mount(store, root, args.mountpoint, _options(args))
