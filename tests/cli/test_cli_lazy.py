"""The root command imports a sub-command's module only when that command runs.

``sovra scan`` starts in about a fifth of a second; importing every command module (and
the gateway, server and client code they pull in) would add to each run, and the start
is the part of a scan that does not shrink with cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovra.cli import app

COMMANDS = [
    "scan",
    "explain",
    "init",
    "serve",
    "put",
    "get",
    "report",
    "demo",
    "log",
    "grant",
    "policy",
    "keys",
    "custodian",
    "witness",
]

_PROBE = """
import json, sys
from sovra.cli import main
sys.argv = ["sovra", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


def _modules_after(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=False
    )
    return set(json.loads(done.stderr.splitlines()[-1]))


def test_scan_loads_no_other_command(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    loaded = _modules_after("scan", str(empty))
    assert "sovra._cli.scan" in loaded
    others = {m for m in loaded if m.startswith("sovra._cli.") and m != "sovra._cli.scan"}
    assert others == {"sovra._cli.common"}
    for heavy in ("sovra.deployment", "sovra.server", "sovra.client", "fastapi", "uvicorn"):
        assert heavy not in loaded, heavy
    # Nor pydantic, which typer would coerce the arguments with (sovra.cli._PlainValue),
    # nor rich's progress display, off a terminal.
    assert not {m for m in loaded if m.split(".")[0] == "pydantic"}
    assert "rich.progress" not in loaded


def test_root_help_lists_every_command_in_order() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    rows = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")]
    assert [row for row in rows if row in COMMANDS] == COMMANDS


def test_every_command_and_group_answers_help() -> None:
    for name in COMMANDS:
        result = CliRunner().invoke(app, [name, "--help"], prog_name="sovra")
        assert result.exit_code == 0, (name, result.output)
        assert f"sovra {name}" in result.stdout


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_is_rich_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    from rich.console import Console
    from rich.progress import Progress

    from sovra._cli import common

    monkeypatch.setattr(common, "err", Console(stderr=True, force_terminal=terminal))
    shown = common.progress("scanning")
    assert isinstance(shown, Progress) is terminal
    # The calls the commands make, on either.
    with shown as bar:
        task = bar.add_task("", total=None)
        bar.advance(task, 3)
        bar.update(task, completed=4, total=10)
        bar.update(task, completed=5)
