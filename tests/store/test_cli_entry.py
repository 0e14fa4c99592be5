"""The `cairn` program runs store.cli.run: main's status, with the objects alive at its end frozen,
so the interpreter's last garbage collection (a pass over every one of them) is skipped."""

from __future__ import annotations

import gc
from importlib.metadata import entry_points

from store import cli


def test_the_console_script_is_run():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "cairn"]
    assert script.value == "store.cli:run"


def test_run_returns_mains_status_with_what_is_alive_frozen(monkeypatch):
    monkeypatch.setattr(cli, "main", lambda: 3)
    assert gc.get_freeze_count() == 0
    try:
        assert cli.run() == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
