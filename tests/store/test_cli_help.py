"""`cairn --help` lists every command without building their parsers or loading what they run;
`cairn CMD --help` shows the whole of each command's (and each verb's) arguments."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from store.cli import build_parser

NOT_FOR_HELP = ("typing", "dataclasses", "fuse.options", "store.nar.render", "castore.url", "castore.api",
                "store.gc.engine", "importlib.metadata", "nar_bridge.app", "fuse.mount")
"""What the top-level help must not load: typing and dataclasses were a quarter of `cairn --help`
(fuse's MountOptions dataclass was loaded to build `cairn mount`'s parser), and the rest is
what the commands run."""

COMMANDS = ("daemon", "import", "dump", "path-info", "list", "copy", "archive", "stats", "verify", "root", "delete",
            "gc", "castore", "mount", "nar-bridge")

PROGRAM = """
import sys
from store.cli import main
try:
    main(["--help"])
finally:
    sys.stdout.flush()
    print(repr([m for m in {modules!r} if m in sys.modules]), file=sys.stderr)
"""


def test_top_level_help_lists_every_command_and_loads_none_of_them():
    done = subprocess.run([sys.executable, "-c", PROGRAM.format(modules=NOT_FOR_HELP)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().strip().splitlines()[-1] == "[]"
    listed = [line.split()[0] for line in done.stdout.decode().splitlines() if line.startswith("    ")]
    assert set(COMMANDS) <= set(listed), listed


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's subcommands by name, each built (none when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {name: action.choices[name] for name in action.choices}
    return {}


def _commands() -> list[tuple[str, ...]]:
    """Every command, and every verb of a group, of the real parser (the plug-ins' included)."""
    out: list[tuple[str, ...]] = []
    for name, parser in _subcommands(build_parser(["--help"])).items():
        out.extend([(name, verb) for verb in _subcommands(parser)] or [(name,)])
    return out


def test_every_command_and_verb_is_found():
    assert {c[0] for c in _commands()} == set(COMMANDS)
    assert {c[1] for c in _commands() if c[0] == "castore"} == {"import", "export", "ls", "cat", "mount"}
    assert {c[1] for c in _commands() if c[0] == "root"} == {"add", "remove", "list"}


@pytest.mark.parametrize("words", _commands(), ids=" ".join)
def test_each_commands_help_shows_its_own_and_the_store_options(words, capsys):
    argv = [*words, "--help"]
    with pytest.raises(SystemExit) as exit:
        build_parser(argv).parse_args(argv)
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cairn {' '.join(words)} [-h]"), out
    assert "--store URL" in out and "--blob-store URL" in out
