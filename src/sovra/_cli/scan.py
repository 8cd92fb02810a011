"""``sovra scan``: find sensitive data in files, directories or standard input, offline.

Output is streamed: with ``--format json`` (the default) one JSON object per finding and
line, ``{"start", "end", "kind", "confidence", "validated"}`` plus ``"path"`` and, for
JSONL and CSV files, ``"line"`` (1-based; offsets are then within that line). Values are
never printed. ``--format table`` prints one table at the end.

Text is read in chunks of :data:`CHUNK_CHARS` characters that overlap by
:data:`OVERLAP_CHARS`, so memory stays bounded whatever the shape of the input (a 1 GB
single line included) and a finding that straddles two chunks is reported once.
Directories, and the line batches of JSONL and CSV files, are scanned in parallel by
one process per core. The parent process does as little as it can, since it shares the
cores with the workers: it builds the scanner's tables once before the workers start
(they inherit them), and each worker returns its findings as finished JSON lines, which
the parent only writes out, in input order.

Bad input never crashes the command: a binary file (a NUL byte in its first 8 KiB) or
invalid UTF-8 is reported on stderr with its path (and the byte offset of the first bad
byte) and skipped, and the exit code is then 1; empty input gives no findings and exit
code 0; an unknown ``--lang`` is a usage error (exit code 2).
"""

from __future__ import annotations

import codecs
import itertools
import json
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.table import Table

from sovra._cli.common import err, error, out, progress

__all__ = ["CHUNK_CHARS", "OVERLAP_CHARS", "scan"]

CHUNK_CHARS = 1 << 20
# Longer than any finding (the longest, an IBAN printed in groups, is 42 characters),
# and than any context window a detector reads before a value.
OVERLAP_CHARS = 512
_BINARY_PROBE = 8192
_BATCH_LINES = 2000
_PROGRESS_BYTES = 1 << 20
_LINE_FORMATS = (".jsonl", ".ndjson", ".csv", ".tsv")


_Block = str | list[dict[str, object]]
"""Findings as a worker returns them: JSON lines ready to write, or rows for a table."""


class _BadInput(Exception):
    """A file that cannot be scanned as text; the message says why."""


def _findings(text: str, lang: str | None, base: int = 0) -> list[dict[str, object]]:
    from sovra.classify import scan as scan_text

    # The whole chunk is scanned as one text: the per-text bound on separate numbers
    # protects a gateway's latency; here the input's size is the bound.
    found = scan_text(text, lang=lang, max_chars=len(text) + 1, max_numbers=len(text) + 1)
    return [
        {
            "start": f.start + base,
            "end": f.end + base,
            "kind": f.kind,
            "confidence": round(f.confidence, 3),
            "validated": f.validated,
        }
        for f in found
    ]


def _check_binary(head: bytes, name: str) -> None:
    if b"\x00" in head[:_BINARY_PROBE]:
        raise _BadInput(f"{name}: binary file (a NUL byte in its first 8 KiB), not scanned")


def _stream(raw: BinaryIO, name: str, lang: str | None) -> Iterator[dict[str, object]]:
    """Findings over a byte stream read in overlapping chunks, offsets in characters."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    consumed = 0  # bytes read so far, for the position of a decoding error
    base = 0  # character offset of buffer[0]
    emitted = 0  # findings starting before this offset were already reported
    buffer = ""
    first = True
    while True:
        block = raw.read(CHUNK_CHARS)
        if first:
            _check_binary(block, name)
            first = False
        try:
            buffer += decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            raise _BadInput(
                f"{name}: not UTF-8 (invalid byte at offset {consumed + exc.start}), not scanned"
            ) from exc
        consumed += len(block)
        final = not block
        if not buffer and final:
            return
        if len(buffer) < CHUNK_CHARS and not final:
            continue
        cut = len(buffer) if final else len(buffer) - OVERLAP_CHARS
        for finding in _findings(buffer, lang, base):
            start = int(str(finding["start"]))
            if emitted <= start < base + cut or (final and start >= emitted):
                yield finding
        emitted = base + cut
        if final:
            return
        base += cut
        buffer = buffer[cut:]


def _scan_lines(batch: list[tuple[int, str]], lang: str | None, path: str, fmt: str) -> _Block:
    results: list[dict[str, object]] = []
    for number, line in batch:
        for finding in _findings(line, lang):
            results.append({"path": path, "line": number, **finding})
    return _pack(results, fmt)


def _scan_path(path: str, lang: str | None, fmt: str) -> tuple[_Block, str | None]:
    """One whole file in a worker process: (findings, error message or None)."""
    try:
        with open(path, "rb") as raw:
            return _pack([{"path": path, **f} for f in _stream(raw, path, lang)], fmt), None
    except _BadInput as exc:
        return _pack([], fmt), str(exc)
    except OSError as exc:
        return _pack([], fmt), f"{path}: {exc.strerror or exc}"


def _pack(findings: list[dict[str, object]], fmt: str) -> _Block:
    # Serialising in the worker keeps the parent, which shares the cores, nearly idle.
    if fmt == "json":
        return "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in findings)
    return findings


def _warm(lang: str | None) -> None:
    """Build the scanner's lazily made tables in this process.

    Run in the parent before the worker processes start, so that forked workers
    inherit them instead of each building its own (under 0.1 s of CPU per worker).
    """
    from sovra.classify import scan as scan_text

    scan_text(_WARM_UP, lang=lang)


# One value of each kind of number the scanner validates, so that the numbering plans
# and registries they need are loaded (phonenumbers and stdnum load them on first use).
_WARM_UP = (
    "tel. +48 601 234 567, 0912 345 678, 030 123456, (212) 555-0100, 06 12 34 56 78, "
    "612 345 678, 020 7946 0958, 138 0013 8000; PESEL 44051401359, 身份证 "
    "11010519491231002X, IBAN PL61 1090 1014 0000 0712 1981 2874, ES91 2100 0418 4502 "
    "0005 1332, VAT DE136695976, a@b.pl, 192.168.1.20, ur. 12.03.1980, diabetes."
)


def _batches(path: Path) -> Iterator[list[tuple[int, str]]]:
    with path.open("rb") as raw:
        _check_binary(raw.read(_BINARY_PROBE), str(path))
    batch: list[tuple[int, str]] = []
    with path.open("rb") as raw:
        for number, data in enumerate(raw, start=1):
            try:
                line = data.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise _BadInput(
                    f"{path}: not UTF-8 (line {number}, byte {exc.start} of the line)"
                ) from exc
            batch.append((number, line))
            if len(batch) >= _BATCH_LINES:
                yield batch
                batch = []
    if batch:
        yield batch


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _emit(findings: Iterable[dict[str, object]], fmt: str, rows: list[dict[str, object]]) -> None:
    for finding in findings:
        if fmt == "json":
            sys.stdout.write(json.dumps(finding, ensure_ascii=False) + "\n")
        else:
            rows.append(finding)
    if fmt == "json":
        sys.stdout.flush()


def _emit_block(block: _Block, rows: list[dict[str, object]]) -> None:
    if isinstance(block, str):
        if block:
            sys.stdout.write(block)
            sys.stdout.flush()
    else:
        rows.extend(block)


def _table(rows: list[dict[str, object]]) -> None:
    table = Table("path", "line", "start", "end", "kind", "confidence", "validated")
    for row in rows:
        table.add_row(
            str(row.get("path", "-")),
            str(row.get("line", "")),
            str(row["start"]),
            str(row["end"]),
            str(row["kind"]),
            f"{row['confidence']:.2f}",
            "yes" if row["validated"] else "no",
        )
    out.print(table)


def _check_lang(value: str) -> str | None:
    from sovra.classify.scanner import LANGUAGES

    if value == "auto":
        return None
    if value not in LANGUAGES:
        raise typer.BadParameter(f"unknown language {value!r}; use auto or one of {LANGUAGES}")
    return value


def scan(
    path: Annotated[str, typer.Argument(help="a file, a directory, or - for standard input")],
    fmt: Annotated[
        str, typer.Option("--format", help="json (one finding per line) or table")
    ] = "json",
    lang: Annotated[
        str, typer.Option(help="auto, or one of en pl vi de fr es zh for its word lists")
    ] = "auto",
    jobs: Annotated[
        int, typer.Option(help="worker processes for directories and JSONL/CSV [default: cores]")
    ] = 0,
) -> None:
    """Find sensitive data (identifiers, contacts, accounts, special categories), offline."""
    if fmt not in {"json", "table"}:
        raise typer.BadParameter(f"--format must be json or table, not {fmt!r}")
    language = _check_lang(lang)
    workers = jobs if jobs > 0 else (os.cpu_count() or 1)
    rows: list[dict[str, object]] = []
    problems: list[str] = []
    if path == "-":
        try:
            _emit(_stream(sys.stdin.buffer, "standard input", language), fmt, rows)
        except _BadInput as exc:
            problems.append(str(exc))
    else:
        target = Path(path)
        if target.is_dir():
            _scan_directory(target, language, workers, fmt, rows, problems)
        elif target.is_file() and target.suffix.lower() in _LINE_FORMATS:
            _scan_line_file(target, language, workers, fmt, rows, problems)
        elif target.is_file():
            _scan_text_file(target, language, fmt, rows, problems)
        else:
            error(f"{path}: no such file or directory")
            raise typer.Exit(1)
    if fmt == "table":
        _table(rows)
    for problem in problems:
        error(problem)
    if problems:
        raise typer.Exit(1)


def _scan_text_file(
    target: Path,
    lang: str | None,
    fmt: str,
    rows: list[dict[str, object]],
    problems: list[str],
) -> None:
    size = target.stat().st_size
    try:
        with target.open("rb") as raw, progress(f"scanning {target.name}") as bar:
            task = bar.add_task("", total=size if size > _PROGRESS_BYTES else None)
            for finding in _stream(raw, str(target), lang):
                _emit([{"path": str(target), **finding}], fmt, rows)
                bar.update(task, completed=raw.tell())
    except _BadInput as exc:
        problems.append(str(exc))


def _scan_directory(
    root: Path,
    lang: str | None,
    workers: int,
    fmt: str,
    rows: list[dict[str, object]],
    problems: list[str],
) -> None:
    files = _files(root)
    if not files:
        err.print(f"{root}: no files", highlight=False)
        return
    _warm(lang)
    with (
        ProcessPoolExecutor(max_workers=min(workers, len(files))) as pool,
        progress(f"scanning {root}") as bar,
    ):
        task = bar.add_task("", total=len(files))
        names = [str(f) for f in files]
        # One file per task, so a large file does not hold back a batch of small ones;
        # results come back in the order of the listing.
        for block, problem in pool.map(
            _scan_path, names, [lang] * len(names), [fmt] * len(names), chunksize=1
        ):
            _emit_block(block, rows)
            if problem is not None:
                problems.append(problem)
            bar.advance(task)


def _scan_line_file(
    target: Path,
    lang: str | None,
    workers: int,
    fmt: str,
    rows: list[dict[str, object]],
    problems: list[str],
) -> None:
    try:
        batches = _batches(target)
        first = next(batches, None)
        if first is None:
            return
        _warm(lang)
        with (
            ProcessPoolExecutor(max_workers=workers) as pool,
            progress(f"scanning {target.name}") as bar,
        ):
            task = bar.add_task("", total=None)
            # A bounded window of batches in flight keeps memory flat on a huge file,
            # and results come back in line order.
            pending: deque[Future[_Block]] = deque()
            for batch in itertools.chain([first], batches):
                pending.append(pool.submit(_scan_lines, batch, lang, str(target), fmt))
                if len(pending) >= workers * 4:
                    _emit_block(pending.popleft().result(), rows)
                    bar.advance(task, _BATCH_LINES)
            while pending:
                _emit_block(pending.popleft().result(), rows)
                bar.advance(task, _BATCH_LINES)
    except _BadInput as exc:
        problems.append(str(exc))
