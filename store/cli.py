"""`cairn`: the command line, a thin layer over the castore and store porcelains.

Errors reach the user as one line and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from castore import cli as castore_cli
from castore.errors import CastoreError
from castore.url import default_store_url


def _store_args() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--store", metavar="URL", default=None,
                   help=f"memory://, local:///dir, grpc+unix:///sock or grpc+http://host:port "
                        f"(default: $CAIRN_STORE or {default_store_url()})")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cairn", description="A content-addressed store for the Nix world.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    store_args = _store_args()

    p = sub.add_parser("daemon", parents=[store_args], help="serve the store over gRPC")
    p.add_argument("--listen", metavar="URL", required=True,
                   help="grpc+unix:///abs/socket or grpc+http://host:port")
    p.set_defaults(func=cmd_daemon)

    castore_cli.add_commands(sub, store_args)
    return parser


def cmd_daemon(args: argparse.Namespace) -> int:
    from castore.grpc_serve import run_daemon
    from castore.grpc_server import castore_servicers
    from castore.url import open_castore

    with open_castore(args.store) as store:
        return run_daemon(args.listen, castore_servicers(store.blobs, store.directories))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except (CastoreError, OSError) as e:
        print(f"cairn: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cairn: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{os.fsdecode(e.filename)}: {e.strerror}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
