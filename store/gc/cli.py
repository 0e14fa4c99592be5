"""`cairn root`, `cairn delete` and `cairn gc`: the command line of garbage collection.

Parsing only at import: the work is imported when a command runs (a `cairn dump` builds this
parser too, and must stay light).
"""

from __future__ import annotations

import argparse
import sys

from castore.cli_lazy import Build, LazySubcommands
from castore.durations import duration
from castore.errors import ValidationError


def add_commands(sub: LazySubcommands, store_options: Build) -> None:
    """`cairn root VERB`, `cairn delete` and `cairn gc`; `store_options` adds the options that choose the store."""
    root = sub.add_group("root", help="GC roots: named store paths kept with their closures")
    root.add_command("add", "set root NAME to these paths", store_options, _root_add_args)
    root.add_command("remove", "remove root NAME", store_options, _root_remove_args)
    root.add_command("list", "every root and its paths", store_options, _root_list_args)
    sub.add_command("delete", "delete paths' records (their data goes at the next gc)", store_options, _delete_args)
    sub.add_command("gc", "delete what no root, retention or grace period keeps", store_options, _gc_args)


def _root_add_args(v: argparse.ArgumentParser) -> None:
    v.add_argument("name", metavar="NAME")
    v.add_argument("paths", nargs="+", metavar="STORE_PATH")
    v.set_defaults(func=cmd_root_add)


def _root_remove_args(v: argparse.ArgumentParser) -> None:
    v.add_argument("name", metavar="NAME")
    v.set_defaults(func=cmd_root_remove)


def _root_list_args(v: argparse.ArgumentParser) -> None:
    v.set_defaults(func=cmd_root_list)


def _delete_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="STORE_PATH")
    p.add_argument("--force", action="store_true", help="even a path a root keeps")
    p.set_defaults(func=cmd_delete)


def _gc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="say what would be freed, delete nothing")
    p.add_argument("--grace", type=duration, default=None, metavar="DURATION",
                   help="keep whatever was written within it (default 1h)")
    p.add_argument("--keep-since", type=duration, metavar="DURATION",
                   help="keep paths added or served within it, with their closures")
    p.add_argument("--everything", action="store_true",
                   help="with no roots and no --keep-since: delete every path older than the grace period")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_gc)


def _open(args: argparse.Namespace):
    from store.cli import open_store_from

    return open_store_from(args)


def _paths(texts: list[str]):
    from store import api

    return [api.parse_store_path(t) for t in texts]


def cmd_root_add(args: argparse.Namespace) -> int:
    from store.gc.engine import engine_of
    from store.gc.roots import add_root

    paths = _paths(args.paths)
    with _open(args) as store:
        add_root(engine_of(store), args.name, paths)
    return 0


def cmd_root_remove(args: argparse.Namespace) -> int:
    from store.gc.engine import engine_of
    from store.gc.roots import remove_root

    with _open(args) as store:
        remove_root(engine_of(store), args.name)
    return 0


def cmd_root_list(args: argparse.Namespace) -> int:
    from store.gc.engine import engine_of
    from store.gc.roots import roots

    with _open(args) as store:
        for name, paths in roots(engine_of(store)):
            for path in paths:
                print(f"{name}\t{path.absolute}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from store.gc.collect import delete_path

    paths = _paths(args.paths)
    with _open(args) as store:
        for path in paths:
            delete_path(store, path, force=args.force)
            print(f"deleted {path.absolute}", file=sys.stderr)
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    import json

    from store.gc.collect import GRACE, collect

    if args.everything and args.keep_since is not None:
        raise ValidationError("--everything and --keep-since contradict each other")
    step = (lambda what: print(f"cairn gc: {what}", file=sys.stderr, flush=True)) if sys.stderr.isatty() \
        else (lambda what: None)
    with _open(args) as store:
        report = collect(store, keep_since=args.keep_since, grace=GRACE if args.grace is None else args.grace,
                         everything=args.everything, dry_run=args.dry_run, step=step)
    print(json.dumps(report.to_json(), indent=2) if args.json else "\n".join(lines(report)))
    return 0


def lines(report) -> list[str]:
    from castore.progress import human_bytes

    s = report.sweep
    would = "would free" if report.dry_run else "freed"
    return [
        f"{would}: {report.paths} paths, {s.chunks} chunks, {s.blobs} chunked blobs "
        f"({report.paths_kept} paths kept)",
        f"packs: {s.packs_deleted} deleted ({human_bytes(s.bytes_deleted)}), {s.packs_retired} emptied, "
        f"{s.packs_rewritten} rewritten ({human_bytes(s.bytes_moved)} of live data copied)",
        f"waiting for the grace period: {human_bytes(s.pending_bytes)} of retired packs",
        f"store: {human_bytes(report.before)} before, {human_bytes(report.after)} after "
        f"({report.seconds:.1f} s)"]
