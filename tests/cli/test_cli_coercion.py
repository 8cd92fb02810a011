"""Plain command-line values reach a command as typer's own coercion would give them.

typer 0.29 coerces each value through a pydantic TypeAdapter; the root group and the
lazily loaded commands give their str, int and bool parameters a coercion of their own
(``sovra.cli._PlainValue``), so that ``sovra scan`` need not import pydantic. Here each
of ``sovra scan``'s parameters, and its --help option, takes a table of values both
ways: the same value of the same type, or the same error message.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer
import typer.main

from sovra import cli
from sovra._cli.scan import scan

_INTS: list[Any] = [
    "0",
    "2",
    "007",
    "9" * 18,
    "9" * 19,
    "9" * 5_000,
    " 2",
    "2 ",
    "+2",
    "-1",
    "1_000",
    "2.0",
    "2.5",
    "x",
    "",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit to str.isdigit, not to pydantic
    "\uff12",  # FULLWIDTH DIGIT TWO
    "0x10",
    0,
    3,
    True,
    2.0,
    None,
]
_STRS: list[Any] = ["a", "", "json", "ü", "a b", "-", "\udcff", "0", b"table", 1, None]
_BOOLS: list[Any] = [None, True, False, "true", "", "no", 1]


def _commands() -> tuple[Any, Any]:
    """``sovra scan`` as the root group loads it, and as plain typer builds it."""
    reference = typer.Typer(add_completion=False)
    reference.command("scan")(scan)
    return cli._load("scan"), typer.main.get_command(reference)


def _outcome(param: Any, ctx: Any, value: Any) -> tuple[object, ...]:
    try:
        result = param.process_value(ctx, value)
    except typer.BadParameter as exc:
        return ("error", type(exc), exc.format_message())
    except typer.Exit as exc:  # --help given a true value prints the help
        return ("exit", exc.exit_code)
    return ("value", type(result), result)


@pytest.mark.parametrize("name", ["path", "fmt", "lang", "jobs", "help"])
def test_values_coerced_as_typer_coerces_them(name: str) -> None:
    plain, reference = _commands()
    ctx = plain.context_class(plain, info_name="scan")
    reference_ctx = reference.context_class(reference, info_name="scan")
    params = plain.get_params(ctx)
    cli._coerce_plainly(params)
    param = next(p for p in params if p.name == name)
    expected = next(p for p in reference.get_params(reference_ctx) if p.name == name)
    assert expected._runtime_param is None  # typer's own, built on first use
    values = {"jobs": _INTS, "help": _BOOLS}.get(name, _STRS)
    for value in values:
        outcome = _outcome(param, ctx, value)
        assert outcome == _outcome(expected, reference_ctx, value), (name, value)
    assert isinstance(param._runtime_param, cli._PlainValue)


def test_errors_and_values_on_the_command_line_unchanged(tmp_path: Any) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    plain, reference = _commands()
    for jobs in ["1", "01", " 1", "1.0", "x", "", "9" * 30]:
        args = ["--jobs", jobs, str(empty)]
        runs = []
        for command in (plain, reference):
            try:
                with command.make_context("scan", list(args)) as ctx:
                    runs.append(("ok", ctx.params))
            except typer.BadParameter as exc:
                runs.append(("error", exc.format_message()))
        assert runs[0] == runs[1], jobs
