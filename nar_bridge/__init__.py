"""nar-bridge: the Nix HTTP binary cache protocol (SPEC 6) on top of a Cairn store.

`app.make_app` wires the pieces: `narinfo` and `nar` answer the read side (with
`closures` and `listing`), `upload` the write side (with `records`, and the
codecs of `store.compression`), `logs` build logs, `realisations` the realisations of
content-addressed derivations' outputs, `upstream` reads misses through from
other caches, `access` guards writes; `bridge` holds what they share. Handlers run on one event loop;
every blocking call into the store goes through `threads.Workers`, so the loop never
waits on LMDB, gRPC, rendering or hashing.
"""

DEFAULT_LISTEN = "127.0.0.1:9000"
DEFAULT_PRIORITY = 40  # what cache.nixos.org announces
