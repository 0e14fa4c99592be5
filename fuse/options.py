"""The options both mount commands share, importable without pyfuse3 or trio."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class MountOptions:
    allow_other: bool = False
    xattr: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MountOptions:
        return cls(allow_other=args.allow_other, xattr=args.xattr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-other", action="store_true",
                        help="let other users use the mount (non-root: user_allow_other in /etc/fuse.conf)")
    parser.add_argument("--xattr", action="store_true",
                        help="expose user.tvix.castore.blob.digest and user.tvix.castore.directory.digest")
