"""castore.cli_lazy: a subcommand's arguments are added only when the command line names it,
while the top-level help lists every command and `CMD --help` shows all of CMD's arguments."""

from __future__ import annotations

import argparse

import pytest

from castore.cli_lazy import LazySubcommands, Parser


def parser_with(built: list[str]) -> tuple[argparse.ArgumentParser, LazySubcommands]:
    """`prog` with commands `one` (--flag), `two` (a positional) and group `grp` (verb `a`);
    each build appends its command's name to `built` when it runs."""
    parser = argparse.ArgumentParser(prog="prog")
    sub = parser.add_subparsers(action=LazySubcommands, dest="command", required=True, metavar="COMMAND")

    def one(p: argparse.ArgumentParser) -> None:
        built.append("one")
        p.add_argument("--flag", action="store_true", help="the flag of one")
        p.set_defaults(func="one's")

    def two(p: argparse.ArgumentParser) -> None:
        built.append("two")
        p.add_argument("thing", metavar="THING")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--common", metavar="X", help="added first")

    sub.add_command("one", "the first command", common, one)
    sub.add_command("two", "the second command", two)
    group = sub.add_group("grp", "a group of verbs")
    group.add_command("a", "verb a", lambda p: (built.append("grp a"), p.add_argument("--x")))
    return parser, sub


def test_only_the_command_parsed_is_built():
    built: list[str] = []
    parser, _ = parser_with(built)
    assert built == []
    args = parser.parse_args(["one", "--flag", "--common", "c"])
    assert (args.command, args.flag, args.common, args.func) == ("one", True, "c", "one's")
    assert built == ["one"]
    assert parser.parse_args(["two", "t"]).thing == "t"
    assert built == ["one", "two"]


def test_top_level_help_lists_every_command_and_builds_none(capsys):
    built: list[str] = []
    parser, _ = parser_with(built)
    with pytest.raises(SystemExit) as exit:
        parser.parse_args(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    for name, line in (("one", "the first command"), ("two", "the second command"), ("grp", "a group of verbs")):
        assert f"{name}" in out and line in out
    assert built == []


def test_a_commands_help_shows_every_argument_of_its_builds(capsys):
    built: list[str] = []
    parser, _ = parser_with(built)
    with pytest.raises(SystemExit):
        parser.parse_args(["one", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: prog one [-h] [--common X] [--flag]")
    assert "the flag of one" in out and "added first" in out
    assert built == ["one"]


def test_a_group_takes_verbs_added_after_it_was_registered():
    built: list[str] = []
    parser, sub = parser_with(built)
    group = sub.add_group("late", "registered last")
    group.add_command("b", "verb b", lambda p: p.add_argument("n", type=int))
    assert "b" in group and "c" not in group
    args = parser.parse_args(["late", "b", "7"])
    assert (args.command, args.verb, args.n) == ("late", "b", 7)
    assert parser.parse_args(["grp", "a", "--x", "1"]).x == "1"
    assert built == ["grp a"]


def test_an_unknown_command_is_argparses_usage_error(capsys):
    parser, _ = parser_with([])
    with pytest.raises(SystemExit) as exit:
        parser.parse_args(["three"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and all(name in err for name in ("one", "two", "grp"))


def test_a_name_registered_twice_is_refused():
    _, sub = parser_with([])
    with pytest.raises(ValueError, match="conflicting subcommand: one"):
        sub.add_command("one", "again")


def wordy(cls: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """A parser whose help wraps at any width: long descriptions, options and a command's."""
    text = "words that wrap wherever the terminal ends " * 4
    parser = cls(prog="prog", description=text)
    parser.add_argument("--option-with-a-long-name", metavar="VALUE", help=text)
    sub = parser.add_subparsers(action=LazySubcommands, dest="command", required=True, metavar="COMMAND")
    sub.add_command("cmd", text, lambda p: p.add_argument("--flag", help=text))
    return parser


@pytest.mark.parametrize("columns", [None, "50", "130", "junk"])
def test_a_parser_s_help_is_argparse_s_to_the_letter_at_any_terminal_width(monkeypatch, columns):
    """Parser measures the terminal as shutil does, without importing it (see cli_lazy)."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    ours, stock = wordy(Parser), wordy(argparse.ArgumentParser)
    assert ours.format_help() == stock.format_help()
    ours_cmd, stock_cmd = (next(a for a in p._actions if isinstance(a, LazySubcommands)).choices["cmd"]
                           for p in (ours, stock))
    assert isinstance(ours_cmd, Parser)
    assert ours_cmd.format_help() == stock_cmd.format_help()
