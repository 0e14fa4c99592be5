"""`cairn`: the command line, a thin layer over the castore and store porcelains.

Errors reach the user as one line and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from castore import cli as castore_cli
from castore.cli_lazy import Group, LazySubcommands, Parser
from castore.errors import CastoreError

TYPE_CHECKING = False  # not typing's: importing typing is 2 ms of `cairn --help`; type checkers take it as true
if TYPE_CHECKING:
    from store.url import Store

PLUGINS = ("fuse.cli", "nar_bridge.cli")
"""The layers above store, by module name: each adds its commands (`add_commands`), so store's
code never imports them. They are loaded only for a command store does not have (or for --help).
A fixed list, not an entry-point group: importing importlib.metadata alone cost `cairn --help`
a third of its time."""


def add_store_options(p: argparse.ArgumentParser) -> None:
    """The options that choose the store's services, shared by every command."""
    castore_cli.add_castore_options(p)
    p.add_argument("--pathinfo-store", metavar="URL",
                   help="the PathInfoService, overriding --store; also nix+http(s)://host/path?"
                        "trusted-public-keys=NAME:KEY to read through a Nix binary cache")


def open_store_from(args: argparse.Namespace, **kw) -> Store:
    """The store the command line chose (see store.url.open_store for `kw`)."""
    from store.url import open_store

    return open_store(args.store, blob_url=args.blob_store, directory_url=args.directory_store,
                      pathinfo_url=args.pathinfo_store, config=args.config, **kw)


def _needs_plugins(argv: list[str], commands: LazySubcommands, groups: dict[str, Group]) -> bool:
    """Whether the command line may name a command (or a group's verb) that store does not define."""
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return True
    if words[0] in groups:
        return len(words) < 2 or words[1] not in groups[words[0]]
    return words[0] not in commands.choices


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser: every command by name and help line; a command's own arguments are
    added when it is parsed (castore.cli_lazy), the layers above store's loaded only when `argv`
    (default: sys.argv) may name one of their commands."""
    parser = Parser(prog="cairn", description="A content-addressed store for the Nix world.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (daemon, mounts, nar-bridge)")
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(action=LazySubcommands, dest="command", required=True, metavar="COMMAND")
    for name, help, build in (
            ("daemon", "serve the store over gRPC", _daemon_args),
            ("import", "add files or trees like `nix-store --add`", _import_args),
            ("dump", "write the NAR of a store path, or of a path inside one, to stdout", _dump_args),
            ("path-info", "show what the store knows of paths", _path_info_args),
            ("list", "every path, with its NAR size and registration time", _list_args),
            ("copy", "copy paths and closures from the local Nix store, or between two Cairn stores", _copy_args),
            ("archive", "move a Nix binary cache into the store, narinfos intact", _archive_args),
            ("stats", "the whole store's counts, sizes and ratios", _stats_args),
            ("verify", "re-render NARs and check hashes, sizes, chunk digests and signatures", _verify_args)):
        sub.add_command(name, help, add_store_options, build)

    from store.gc.cli import add_commands as add_gc_commands  # a few parser entries: no GC code loaded

    add_gc_commands(sub, add_store_options)
    groups = {"castore": castore_cli.add_commands(sub)}
    if _needs_plugins(sys.argv[1:] if argv is None else argv, sub, groups):
        from importlib import import_module

        for plugin in PLUGINS:
            import_module(plugin).add_commands(sub, add_store_options, groups)
    return parser


def _daemon_args(p: argparse.ArgumentParser) -> None:
    from castore.durations import STALL_TIMEOUT, positive_duration  # the daemon's options: not loaded by other commands

    p.add_argument("--listen", metavar="URL", required=True,
                   help="grpc+unix:///abs/socket, grpc+http://host:port or grpc+https://host:port")
    p.add_argument("--token-file", metavar="FILE",
                   help="calls need this token (metadata `authorization: Bearer TOKEN`); clients send it "
                        "from $CAIRN_TOKEN or the URL's ?token-file=FILE")
    p.add_argument("--token-for", choices=("writes", "all"), default="writes",
                   help="what needs the token: writes (default; reads stay open, like nar-bridge) or all calls")
    p.add_argument("--read-only", action="store_true", help="refuse every write (PERMISSION_DENIED)")
    p.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain, for grpc+https://")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key, for grpc+https://")
    p.add_argument("--socket-mode", type=_octal_mode, metavar="MODE",
                   help="permissions of the grpc+unix socket, in octal (e.g. 660; default: from the umask)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics at http://HOST:PORT/metrics")
    p.add_argument("--stall-timeout", type=positive_duration, metavar="DURATION", default=STALL_TIMEOUT,
                   help="cancel a streaming call whose client takes (or sends) no message for this long, "
                        "freeing its worker (default 60s, as nginx's send_timeout)")
    from castore.logformat import add_log_format_option  # a service's option: not loaded by other commands

    add_log_format_option(p)
    p.set_defaults(func=cmd_daemon, serves=True)


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=cmd_import)


def _dump_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="/nix/store/<hash>-<name>[/inside/it]")
    p.set_defaults(func=cmd_dump)


def _path_info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="as JSON, like `nix path-info --json`")
    p.add_argument("paths", nargs="+", metavar="STORE_PATH")
    p.set_defaults(func=cmd_path_info)


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="as a JSON list, with nix path-info's field names")
    p.set_defaults(func=cmd_list)


def _copy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="STORE_PATH")
    p.add_argument("--from", dest="source", metavar="URL",
                   help="copy from this Cairn store (default: the local Nix store)")
    p.add_argument("--to", metavar="URL", help="copy into this Cairn store (default: --store)")
    p.add_argument("--all", action="store_true", help="every path of the --from store")
    p.set_defaults(func=cmd_copy)


def _archive_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="file:///dir (every narinfo in it) or http(s)://host/path")
    p.add_argument("paths", nargs="*", metavar="STORE_PATH", help="roots: archive their closures")
    p.add_argument("--roots", metavar="FILE", help="a file of root store paths, one a line")
    p.add_argument("--jobs", type=int, default=4, metavar="N", help="paths fetched at once (default 4)")
    p.set_defaults(func=cmd_archive)


def _stats_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_stats)


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="STORE_PATH")
    p.add_argument("--all", action="store_true", help="every path, and every chunk's digest")
    p.add_argument("--trusted-public-keys", action="append", metavar="KEYS", default=[],
                   help="require a valid signature by one of these keys (name:base64, "
                        "space-separated as in nix.conf; repeatable)")
    p.set_defaults(func=cmd_verify)


def _octal_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"not a permission mode (000..777): {text!r}")
    return mode


def cmd_daemon(args: argparse.Namespace) -> int:
    from castore.errors import ValidationError
    from castore.grpc_auth import Access, AccessInterceptor
    from castore.grpc_serve import TlsIdentity, run_daemon
    from castore.grpc_stall import StallGuard
    from castore.url import read_token_file
    from store.grpc_server import daemon_services
    from store.metrics import daemon_observer

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValidationError("--tls-cert and --tls-key go together")
    if args.token_for == "all" and args.token_file is None:
        raise ValidationError("--token-for all needs --token-file")
    token = read_token_file(args.token_file) if args.token_file else None
    access = Access(token, for_reads=args.token_for == "all", read_only=args.read_only)
    tls = TlsIdentity.load(args.tls_cert, args.tls_key) if args.tls_cert else None
    with open_store_from(args) as store, daemon_observer(store, args.metrics) as observer:
        # the observer first: it sees (and counts) the calls access control refuses, and stalls cancelled
        refusals = [AccessInterceptor(access)] if access.restricted else []
        interceptors = [observer, *refusals, StallGuard(args.stall_timeout)]
        return run_daemon(args.listen, daemon_services(store), interceptors=interceptors, tls=tls,
                          socket_mode=args.socket_mode)


def cmd_import(args: argparse.Namespace) -> int:
    """All the paths in one batch: one commit, packs put full (on object storage a PUT per pack,
    not per path); each path is printed once that commit made it durable."""
    from castore.progress import byte_progress, human_bytes
    from store import api

    with open_store_from(args) as store:
        infos = []
        with store.castore.batch():
            for path in args.paths:
                with byte_progress(f"importing {os.path.basename(path)}") as progress:
                    infos.append(api.import_path(store, path, progress=progress))
        for info in infos:
            print(info.store_path.absolute)
            print(f"added {info.store_path.basename}: {human_bytes(info.nar_size)} of NAR", file=sys.stderr)
    return 0


class _Version(argparse.Action):
    """`--version`: the installed package's version, looked up only when asked (a dump stays light)."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_) -> None:
        from importlib.metadata import version

        print(f"cairn {version('cairn')}")
        parser.exit()


def cmd_dump(args: argparse.Namespace) -> int:
    from store import api

    store_path, below = api.split_store_path(args.path)
    with open_store_from(args) as store:
        api.dump_to(store, store_path, sys.stdout.buffer, below)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from store.listing import list_paths, listed_json, listed_line

    with open_store_from(args) as store:
        if args.json:
            for text in listed_json(list_paths(store)):
                sys.stdout.write(text)
        else:
            for listed in list_paths(store):
                print(listed_line(listed))
    return 0


def cmd_path_info(args: argparse.Namespace) -> int:
    import json

    from store import api

    paths = [api.parse_store_path(p) for p in args.paths]
    with open_store_from(args) as store:
        infos = [api.path_info(store, p) for p in paths]
    if args.json:
        print(json.dumps([info_json(i) for i in infos], indent=2))
    else:
        for i in infos:
            print(f"{i.store_path.absolute}\t{i.nar_size}\t{i.nar_hash}")
    return 0


def info_json(info) -> dict:
    """The fields of `nix path-info --json`, plus the castore root."""
    from castore.api import describe_node

    out = {"path": info.store_path.absolute, "narHash": str(info.nar_hash), "narSize": info.nar_size,
           "references": [r.absolute for r in info.references],
           "signatures": [str(s) for s in info.signatures],
           "root": describe_node(info.node, with_text=False)}
    if info.deriver:
        out["deriver"] = info.deriver.absolute
    if info.ca:
        out["ca"] = info.ca.render()
    return out


def cmd_copy(args: argparse.Namespace) -> int:
    from castore.errors import ValidationError
    from castore.progress import byte_progress, human_bytes
    from store import api

    if args.all == bool(args.paths):
        raise ValidationError("give either store paths or --all")
    if args.all and args.source is None:
        raise ValidationError("--all copies every path of a Cairn store: give it with --from URL")
    paths = [api.parse_store_path(p) for p in args.paths]
    if args.to is not None:
        args.store = args.to
    if args.source is not None:
        return _copy_between(args, None if args.all else paths)
    with open_store_from(args) as store, byte_progress("copying") as progress:
        result = api.copy_from_nix(store, paths, progress=progress)
    for p in result.copied:
        print(p.absolute)
    print(f"copied {len(result.copied)} paths ({human_bytes(result.nar_bytes)} of NAR), "
          f"{len(result.skipped)} already present", file=sys.stderr)
    return 0


def _copy_between(args: argparse.Namespace, paths: list | None) -> int:
    from castore.progress import byte_progress
    from store.copy import closure_of, copy_paths
    from store.url import open_store

    with open_store(args.source) as source, open_store_from(args) as dest:
        infos = closure_of(source, paths)
        with byte_progress("copying") as progress:
            report = copy_paths(source, dest, infos, progress=progress,
                                copied=lambda path: print(path.absolute, flush=True))
    print(report.summary(), file=sys.stderr)
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from castore.progress import byte_progress
    from store import api
    from store.archive import Status, archive
    from store.binary_cache import open_source

    texts = list(args.paths)
    if args.roots:
        with open(args.roots) as f:
            texts.extend(line.strip() for line in f if line.strip())
    roots = [api.parse_store_path(t) for t in texts]
    source = open_source(args.source)

    def report(outcome) -> None:
        if outcome.status is Status.ARCHIVED:
            print(outcome.name, flush=True)
        elif outcome.status is Status.FAILED:
            print(f"cairn: error: {outcome.name}: {outcome.error}", file=sys.stderr, flush=True)

    with open_store_from(args) as store, byte_progress("archiving") as progress:
        result = archive(store, source, roots, jobs=args.jobs, progress=progress, on_outcome=report)
    print(result.summary(), file=sys.stderr)
    return 1 if result.failed else 0


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    from store.stats import store_stats

    with open_store_from(args) as store:
        stats = store_stats(store)
    print(json.dumps(stats.to_json(), indent=2) if args.json else "\n".join(stats.lines()))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from castore.errors import ValidationError
    from castore.progress import byte_progress, human_bytes
    from store import api
    from store.signing import PublicKey
    from store.verify import Tally, verify_chunks, verify_paths

    if args.all == bool(args.paths):
        raise ValidationError("give either store paths or --all")
    paths = None if args.all else [api.parse_store_path(p) for p in args.paths]
    keys = [PublicKey.parse(k) for text in args.trusted_public_keys for k in text.split()]
    tally = Tally()
    with open_store_from(args) as store:
        if args.all:
            with byte_progress("checking chunks") as progress:
                for problem in verify_chunks(store, tally, progress):
                    print(problem, flush=True)
            if not tally.chunks_checked:
                print("cairn: warning: chunk digests not checked: the blob service cannot list its chunks",
                      file=sys.stderr)
        with byte_progress("checking paths") as progress:
            for problem in verify_paths(store, paths, keys, tally, progress):
                print(problem, flush=True)
    chunks = f" and {human_bytes(tally.chunk_bytes)} of chunks" if tally.chunks_checked else ""
    problems = len(tally.problems)
    print(f"verified {tally.paths} paths{chunks}: {problems} problem{'' if problems == 1 else 's'}", file=sys.stderr)
    return 1 if tally.problems else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    if getattr(args, "serves", False):
        from castore.logformat import log_to_stderr  # only the long-running services log

        log_to_stderr(args.verbose, getattr(args, "log_format", "text"))
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`cairn dump ... | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (CastoreError, OSError) as e:
        print(f"cairn: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # one no layer named (a bug, most likely): one line too; -v shows where
        if args.verbose:
            raise
        print(f"cairn: error: {type(e).__name__}: {_one_line(e)} (run with -v for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cairn: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{os.fsdecode(e.filename)}: {e.strerror}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def run() -> int:
    """The `cairn` program (its exit status): main(), for a process that ends when it returns.
    At exit Python collects its garbage once more, a pass over every object still alive (10-20 ms
    after a dump, for memory the process is about to give back): freezing them first (gc.freeze)
    skips it, while their teardown (files closed, buffers flushed) runs as before."""
    import gc

    status = main()
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(run())
