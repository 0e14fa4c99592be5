"""`cairn nar-bridge`: the parser only; aiohttp loads when the bridge starts."""

from __future__ import annotations

import argparse
import os

from castore.cli_lazy import Build, Group, LazySubcommands
from castore.durations import STALL_TIMEOUT, positive_duration
from castore.logformat import add_log_format_option
from nar_bridge import DEFAULT_LISTEN, DEFAULT_PRIORITY


def add_commands(sub: LazySubcommands, store_options: Build, groups: dict[str, Group]) -> None:
    """`cairn nar-bridge` (loaded by store.cli by name: see PLUGINS there)."""
    sub.add_command("nar-bridge", "serve the store as a Nix HTTP binary cache", store_options, _nar_bridge_args)


def _nar_bridge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN,
                   help="default: %(default)s")
    p.add_argument("--priority", type=int, default=DEFAULT_PRIORITY,
                   help="the Priority of nix-cache-info (default: %(default)s)")
    p.add_argument("--sign-key", metavar="FILE", action="append", default=[],
                   help="a Nix secret key file; served narinfos and realisations get its signature (repeatable)")
    p.add_argument("--read-only", action="store_true", help="refuse uploads (403)")
    p.add_argument("--token-file", metavar="FILE", help="uploads need this token (HTTP Basic password or Bearer)")
    p.add_argument("--upstream", metavar="URL", action="append", default=[],
                   help="nix+http(s)://host/path?trusted-public-keys=NAME:KEY: read misses through (repeatable)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="where uploads awaiting their narinfo and build logs are kept (default: in the "
                        "store when it keeps path infos itself (local://, memory://), else a local store "
                        "in ~/.local/state/cairn/records)")
    p.add_argument("--nar-cache", metavar="DIR",
                   help="keep hot rendered NARs in DIR and send them from there with sendfile (default: render "
                        "every NAR)")
    p.add_argument("--nar-cache-mib", metavar="MIB", type=int,
                   help="the most the NAR cache keeps (default: 4096)")
    p.add_argument("--stall-timeout", type=positive_duration, metavar="DURATION", default=STALL_TIMEOUT,
                   help="close the connection of a client that takes nothing of a rendered NAR for this long, "
                        "freeing its render (default 60s, as nginx's send_timeout)")
    p.add_argument("--no-metrics", dest="metrics", action="store_false",
                   help="no /metrics and no counting (the access log stays)")
    add_log_format_option(p)
    p.set_defaults(func=cmd_nar_bridge, serves=True)


def cmd_nar_bridge(args: argparse.Namespace) -> int:
    from castore.composition import ROOT
    from nar_bridge import app
    from store.cli import open_store_from

    config = app.load_config(priority=args.priority, read_only=args.read_only, token_file=args.token_file,
                             sign_key_files=args.sign_key, nar_cache=args.nar_cache,
                             nar_cache_mib=args.nar_cache_mib, stall_timeout=args.stall_timeout)
    # Each upstream is read through after the store and those before it; signing covers them all.
    wrappers = [{"type": "cache", "near": ROOT, "far": {"url": url}} for url in args.upstream]
    if args.sign_key:
        wrappers.append({"type": "signing", "inner": ROOT, "keys": args.sign_key})
    store = open_store_from(args, pathinfo_wrappers=tuple(wrappers),
                            records_url=f"local://{os.path.abspath(args.state_dir)}" if args.state_dir else None)
    return app.run(args.listen, store, config, metrics=args.metrics)
