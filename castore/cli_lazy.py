"""Subcommands whose arguments are added only when one is parsed.

`cairn --help` lists every command by its name and one line, and builds none of their parsers;
`cairn dump PATH` builds dump's alone. Building them all was most of the command line's start:
some 200 arguments, each with its translated strings (a gettext lookup on disk per string) and
a help formatter, for parsers that were never used.

argparse looks a subparser up in its action's `choices` when the command line names it: here
that mapping builds the parser on first lookup, by the function the command was registered
with. `cairn CMD --help` builds CMD's parser, so its help is whole.

Parsers are `Parser`s, whose help formatter measures the terminal without shutil: argparse makes
a formatter for every argument it adds (to check its metavar), and the first one imported shutil
(with bz2, lzma and fnmatch): 1.7 ms of every command's wall time, measured.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Mapping

Build = Callable[[argparse.ArgumentParser], None]
"""Adds a command's arguments (and its set_defaults) to its fresh parser."""


class Parser(argparse.ArgumentParser):
    """argparse's parser with the formatter below by default; a subcommand's parser is of its
    parent's class, so one at the top is enough."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)  # the margin argparse keeps


def _columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the width of the terminal on stdout, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class LazySubcommands(argparse._SubParsersAction):
    """The action of `parser.add_subparsers(action=LazySubcommands, ...)`: commands are registered
    with `add_command` or `add_group` (argparse's own add_parser would build at once)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._builds: dict[str, tuple[Build, ...]] = {}  # in registration order, as --help lists them
        self._name_parser_map = self.choices = _Parsers(self._builds, self._make)

    def add_command(self, name: str, help: str, *builds: Build) -> None:
        """`name`, listed with `help`; its `builds` add its arguments, in turn, when the command
        line names it."""
        if name in self._builds:
            raise ValueError(f"conflicting subcommand: {name}")
        self._choices_actions.append(self._ChoicesPseudoAction(name, (), help))
        self._builds[name] = builds

    def add_group(self, name: str, help: str, dest: str = "verb") -> Group:
        """`name VERB ...` (`cairn castore import`): its verbs are subcommands, stored in `dest`."""
        group = Group(dest)
        self.add_command(name, help, group.build)
        return group

    def _make(self, name: str) -> argparse.ArgumentParser:
        parser = self._parser_class(prog=f"{self._prog_prefix} {name}")
        for build in self._builds[name]:
            build(parser)
        return parser


class Group:
    """A command's verbs. Any layer may add to them (fuse adds `castore mount`) until the
    command is parsed."""

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self._verbs: list[tuple[str, str, tuple[Build, ...]]] = []

    def add_command(self, name: str, help: str, *builds: Build) -> None:
        """As LazySubcommands.add_command."""
        self._verbs.append((name, help, builds))

    def __contains__(self, name: str) -> bool:
        return any(verb[0] == name for verb in self._verbs)

    def build(self, parser: argparse.ArgumentParser) -> None:
        verbs = parser.add_subparsers(action=LazySubcommands, dest=self.dest, required=True, metavar="VERB")
        for name, help, builds in self._verbs:
            verbs.add_command(name, help, *builds)


class _Parsers(Mapping[str, argparse.ArgumentParser]):
    """Command name -> its parser, made the first time it is looked up."""

    def __init__(self, names: Mapping[str, object], make: Callable[[str], argparse.ArgumentParser]) -> None:
        self._names = names
        self._make = make
        self._made: dict[str, argparse.ArgumentParser] = {}

    def __getitem__(self, name: str) -> argparse.ArgumentParser:
        if name not in self._made:
            if name not in self._names:
                raise KeyError(name)
            self._made[name] = self._make(name)
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
