"""One fuzz target under atheris (libFuzzer): `python tests/fuzz/run.py TARGET [libFuzzer flags] [dirs]`.

Cairn's modules are instrumented for coverage as they are imported here; bench/fuzz.py runs
every target this way and sums up the results.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["castore", "store", "nar_bridge"]):
    from tests.fuzz.targets import TARGETS


def main() -> None:
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
