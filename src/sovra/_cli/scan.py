"""``sovra scan``: find sensitive data in files, directories or standard input, offline.

Output is streamed: with ``--format json`` (the default) one JSON object per finding and
line, ``{"start", "end", "kind", "confidence", "validated"}`` plus ``"path"`` and, for
JSONL and CSV files, ``"line"`` (1-based; offsets are then within that line). Values are
never printed. ``--format table`` prints one table at the end.

Text is read in chunks of :data:`CHUNK_CHARS` characters that overlap by
:data:`OVERLAP_CHARS`, so memory stays bounded whatever the shape of the input (a 1 GB
single line included) and a finding that straddles two chunks is reported once.
Directories, and the line batches of JSONL and CSV files, are scanned in parallel by
one process per core.

Bad input never crashes the command: a binary file (a NUL byte in its first 8 KiB) or
invalid UTF-8 is reported on stderr with its path (and the byte offset of the first bad
byte) and skipped, and the exit code is then 1; empty input gives no findings and exit
code 0; an unknown ``--lang`` is a usage error (exit code 2).
"""

from __future__ import annotations

import codecs
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


def _scan_lines(batch: list[tuple[int, str]], lang: str | None) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for number, line in batch:
        for finding in _findings(line, lang):
            results.append({"line": number, **finding})
    return results


def _scan_path(path: str, lang: str | None) -> tuple[list[dict[str, object]], str | None]:
    """One whole file in a worker process: (findings, error message or None)."""
    try:
        with open(path, "rb") as raw:
            return [{"path": path, **f} for f in _stream(raw, path, lang)], None
    except _BadInput as exc:
        return [], str(exc)
    except OSError as exc:
        return [], f"{path}: {exc.strerror or exc}"


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


def _emit(findings: Iterable[dict[str, object]], fmt: str, rows: list[dict[str, object]]) -> int:
    count = 0
    for finding in findings:
        count += 1
        if fmt == "json":
            sys.stdout.write(json.dumps(finding, ensure_ascii=False) + "\n")
        else:
            rows.append(finding)
    if fmt == "json":
        sys.stdout.flush()
    return count


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
    with (
        ProcessPoolExecutor(max_workers=workers) as pool,
        progress(f"scanning {root}") as bar,
    ):
        task = bar.add_task("", total=len(files))
        for findings, problem in pool.map(
            _scan_path, [str(f) for f in files], [lang] * len(files), chunksize=1
        ):
            _emit(findings, fmt, rows)
            if problem is not None:
                problems.append(problem)
            bar.advance(task)
    if not files:
        err.print(f"{root}: no files", highlight=False)


def _scan_line_file(
    target: Path,
    lang: str | None,
    workers: int,
    fmt: str,
    rows: list[dict[str, object]],
    problems: list[str],
) -> None:
    try:
        with (
            ProcessPoolExecutor(max_workers=workers) as pool,
            progress(f"scanning {target.name}") as bar,
        ):
            task = bar.add_task("", total=None)
            # A bounded window of batches in flight keeps memory flat on a huge file,
            # and results come back in line order.
            pending: deque[Future[list[dict[str, object]]]] = deque()
            for batch in _batches(target):
                pending.append(pool.submit(_scan_lines, batch, lang))
                if len(pending) >= workers * 4:
                    _emit(_with_path(target, pending.popleft().result()), fmt, rows)
                    bar.advance(task, _BATCH_LINES)
            while pending:
                _emit(_with_path(target, pending.popleft().result()), fmt, rows)
                bar.advance(task, _BATCH_LINES)
    except _BadInput as exc:
        problems.append(str(exc))


def _with_path(target: Path, findings: list[dict[str, object]]) -> Iterator[dict[str, object]]:
    for finding in findings:
        yield {"path": str(target), **finding}
