"""The systemd units in docs/systemd/: their command lines parse with the real `cairn` parser, and
systemd itself accepts the units (`systemd-analyze verify`, where installed)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from store.cli import build_parser

UNITS = sorted((Path(__file__).parent.parent / "docs" / "systemd").glob("*.service"))
COMMAND = {"cairn-daemon.service": "daemon", "cairn-nar-bridge.service": "nar-bridge"}
CAIRN = str(Path(sys.executable).parent / "cairn")


def exec_start(unit: Path) -> list[str]:
    config = configparser.ConfigParser(strict=False, interpolation=None)
    config.optionxform = str  # systemd keys are case-sensitive
    config.read(unit)
    return shlex.split(config["Service"]["ExecStart"])


def test_there_is_a_unit_for_the_daemon_and_for_nar_bridge():
    assert [u.name for u in UNITS] == sorted(COMMAND)


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_exec_start_parses_with_the_cli_parser(unit):
    program, *argv = exec_start(unit)
    assert Path(program).name == "cairn"
    args = build_parser(argv).parse_args(argv)
    assert args.command == COMMAND[unit.name] and args.serves
    assert args.store.startswith("local:///var/lib/cairn/")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_accepts_the_unit(unit, tmp_path):
    program = exec_start(unit)[0]
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(program, CAIRN))  # verify wants the program to exist
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
