"""`cairn dump` loads only what reading a NAR back needs: startup is most of a small dump's time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store import api

NOT_FOR_DUMP = ("google.protobuf", "grpc", "aiohttp", "rich", "trio", "pyfuse3", "nar_bridge.app", "fuse.mount",
                "castore.ingest", "store.nar.ingest", "store.nar.reader", "store.narinfo", "_hashlib",
                "importlib.metadata", "tomllib", "castore.local.sweep", "castore.local.marking", "store.gc.engine",
                "store.signing", "nacl", "urllib.parse", "ipaddress", "pathlib", "importlib.util", "dataclasses",
                "inspect", "concurrent.futures", "logging", "queue", "castore.directories.closure", "castore.progress",
                "castore.logformat", "bisect", "shutil")
"""Protobuf (stored records are read by castore.wire), the servers, the mount, the progress bar,
the writing side, OpenSSL (a NAR is read back, not hashed), the command plug-ins (entry points
are scanned only for commands store does not have), the config parser, garbage collection, keys
and signatures (the path read has none), urllib.parse (with ipaddress) and pathlib for a
local:// URL, a lazy loader for store.api (the command imports it), dataclasses (with inspect,
ast, dis and tokenize: ~7 ms; the values a dump reads are named tuples and plain classes), the
thread pool of writers (it loads logging: the read-ahead has its own few threads), logging (only
warnings off the read path log), the validation of uploaded closures, progress bars, the
services' --log-format, bisect (a seekable blob reader's and a range render's), and shutil
(argparse measures the terminal with it: castore.cli_lazy.Parser does without)."""

PROGRAM = """
import sys
from store.cli import main
status = main(sys.argv[1:])
sys.stdout.flush()
loaded = [m for m in {modules!r} if m in sys.modules]
print(repr(loaded), file=sys.stderr)
sys.exit(status)
"""


def test_dump_writes_the_nar_without_loading_protobuf_servers_or_the_writing_side(tmp_path: Path, zoo: Path):
    url = f"local://{tmp_path}/store"
    with api.open_store(url) as store:
        info = api.import_path(store, zoo)
        expected = b"".join(api.dump(store, info.store_path))
    done = subprocess.run([sys.executable, "-c", PROGRAM.format(modules=NOT_FOR_DUMP), "dump", "--store", url,
                           info.store_path.absolute], capture_output=True, check=True)
    assert done.stdout == expected
    assert done.stderr.decode().strip().splitlines()[-1] == "[]"
