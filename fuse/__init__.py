"""A lazy, read-only FUSE mount of the store (or of one castore directory), on pyfuse3 and trio.

Only `fuse.options` and `fuse.cli` may be imported without pyfuse3 and trio: the CLIs build their parsers
from it and import the rest when a mount is asked for.
"""
