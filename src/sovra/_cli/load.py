"""``sovra put --jsonl FILE``: load a file of JSON lines through a running gateway.

Each line is one record, ``{"subject_id", "jurisdiction", "content"}`` and optionally
``"purpose"``, as ``POST /v1/records`` takes it. Lines go to the gateway's batch route in
chunks as they are read (a file of millions never sits in memory) and are checked there,
each on its own: a bad line is named with its line number in the file, on stderr or in
``--failures FILE`` (one JSON line each), and the good ones are stored all the same.
Blank lines are skipped. A progress bar shows on a terminal only.

The exit code is 0 when every line was stored, 1 when any line failed or the input
cannot be read (4 when every failed line was refused by policy), 5 when the gateway
could not be reached. If the gateway goes away
mid-way, the message names the last line whose outcome is known, and ``--skip N`` starts
again after line N.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import typer

from sovra._cli.common import ExitCode, err, error, exit_code, print_json, progress, warn
from sovra.errors import SovraError

if TYPE_CHECKING:
    from sovra.client import Client

__all__ = ["put_jsonl"]

_COUNT_BLOCK = 1 << 20


def _count_lines(path: Path) -> int | None:
    """Lines in a regular file, for the progress bar's total (None: not a regular file)."""
    if not path.is_file():
        return None
    count = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(_COUNT_BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def put_jsonl(
    client: Client,
    source: Path,
    *,
    skip: int,
    chunk: int,
    failures: Path | None,
    receipts: Path | None,
) -> None:
    """Load *source* (``-``: standard input) through *client*; exit 1 if any line failed.

    Raises:
        typer.Exit: 1 when the input cannot be read or any line failed.
    """
    stdin = str(source) == "-"
    name = "standard input" if stdin else str(source)
    with ExitStack() as files:
        try:
            reader: IO[bytes] = (
                sys.stdin.buffer if stdin else files.enter_context(source.open("rb"))
            )
            failed_to = None if failures is None else files.enter_context(failures.open("w"))
            receipts_to = None if receipts is None else files.enter_context(receipts.open("w"))
            total = None if stdin or not err.is_terminal else _count_lines(source)
        except OSError as exc:
            error(f"cannot open {exc.filename or name}: {exc.strerror}")
            raise typer.Exit(ExitCode.ERROR) from None
        numbers: deque[int] = deque()  # the file line of each line sent, not yet answered

        def lines() -> Iterator[bytes]:
            try:
                for number, line in enumerate(reader, 1):
                    if number <= skip or not line.strip():
                        continue
                    numbers.append(number)
                    yield line.rstrip(b"\n")
            except OSError as exc:
                error(f"cannot read {name}: {exc.strerror}")
                raise typer.Exit(ExitCode.ERROR) from None

        counts = {"stored": 0, "failed": 0}
        ends: set[ExitCode] = set()  # the exit code each failed line's error would have
        last = skip
        with progress("storing") as bar:
            task = bar.add_task("", total=None if total is None else max(total - skip, 0))
            try:
                for result in client.ingest_lines(lines(), chunk=chunk):
                    last = numbers.popleft()
                    if isinstance(result, SovraError):
                        counts["failed"] += 1
                        ends.add(exit_code(result))
                        _failure(last, result, failed_to)
                    else:
                        counts["stored"] += 1
                        if receipts_to is not None:
                            receipts_to.write(_receipt_line(last, result))
                    bar.advance(task)
            except SovraError as exc:
                error(
                    f"{exc.diagnostics()}; every line up to {last} has its outcome above "
                    f"({counts['stored']} stored, {counts['failed']} failed): resume with "
                    f"--skip {last} (lines after it that were in flight may be stored)"
                )
                raise typer.Exit(exit_code(exc)) from None
    lines_read = counts["stored"] + counts["failed"]
    print_json({"lines": lines_read, "skipped": skip, **counts})
    if lines_read == 0:
        warn(f"{name} holds no records after line {skip}" if skip else f"{name} holds no records")
    if counts["failed"]:
        where = f", listed in {failures}" if failures is not None else ""
        error(f"{counts['failed']} of {lines_read} lines failed{where}; the others are stored")
        # Every failed line refused (or every one unverifiable): that code; mixed ones, 1.
        raise typer.Exit(ends.pop() if len(ends) == 1 else ExitCode.ERROR)


def _failure(number: int, exc: SovraError, to: IO[str] | None) -> None:
    if to is None:
        error(f"line {number}: {exc.diagnostics()}")
        return
    record: dict[str, Any] = {"line": number, "status": exc.status, **exc.to_dict()}
    to.write(json.dumps(record, ensure_ascii=False) + "\n")


def _receipt_line(number: int, result: dict[str, Any]) -> str:
    fields = {"line": number, "record_id": result["record_id"], "log_index": result["log_index"]}
    return json.dumps(fields) + "\n"
