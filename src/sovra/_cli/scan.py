"""``sovra scan``: find sensitive data in files, directories or standard input, offline.

Output is streamed: with ``--format json`` (the default) one JSON object per finding and
line, ``{"start", "end", "kind", "confidence", "validated"}`` plus ``"path"`` and, for
JSONL and CSV files, ``"line"`` (1-based; offsets are then within that line). Values are
never printed. ``--format table`` prints one table at the end.

Every core is used, whatever the shape of the input. A file of at least twice
:data:`RANGE_BYTES` is split into byte ranges (about :data:`_RANGES` at most), each but
the last ending just after a newline, and the ranges of all the files are scanned by
one process per core (``--jobs``), findings written in input order with offsets into
the whole file. A quick first pass counts each range's characters (for a line file, its
lines), which gives every range its starting offset. The cut points depend on the file
alone and ``--jobs 1`` runs the same ranges in one process, so the output is the same,
byte for byte, whatever the job count.

A range is scanned with :data:`OVERLAP_CHARS` characters of the text on either side of
it, because detectors read words before and after a value (a "PESEL" label on the line
above the number), and reports the findings that start inside it. No detector matches
across a newline, so a cut after one changes no finding: the output is the scanner's
over the whole file as one text. Within a range, text is read in chunks of
:data:`CHUNK_CHARS` characters with the same overlap, cut after a newline near the end
of the chunk; only a line of more than an eighth of a chunk is cut elsewhere, which
changes nothing unless overlapping candidates chain across more than the overlap.
Memory stays bounded whatever the shape of the input: a 1 GB single line has no cut
point and is read, a chunk at a time, by one process; and once a range's findings pass
8 Mi characters of JSON lines, the rest wait in a file of a temporary directory of the
scan (removed when it ends) rather than in the worker's or the parent's memory.

The parent process does as little as it can, since it shares the cores with the
workers: it finds the cut points, builds the scanner's tables once before the workers
start (forked, they inherit them), and each worker returns its findings as finished JSON
lines, which the parent only writes out.

A line file (JSONL, CSV) has each line scanned alone, many lines to a
:func:`~sovra.classify.scanner.scan_many` call (:data:`_LINE_BATCH_CHARS` characters at
most), which gives each exactly what a call of its own would and pays a call's set-up
once per batch.

Bad input never crashes the command: a binary file (a NUL byte in its first 8 KiB) or
invalid UTF-8 is reported on stderr with its path (and the byte offset of the first bad
byte, or its line) and not scanned further, the findings before the bad range or line
having been written; the exit code is then 1. Empty input gives no findings and exit
code 0; an unknown ``--lang`` is a usage error (exit code 2).
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, NamedTuple, TextIO

import typer

from sovra._cli.common import ExitCode, JsonOpt, err, error, print_table, progress

if TYPE_CHECKING:
    from sovra.model import Finding

__all__ = ["CHUNK_CHARS", "OVERLAP_CHARS", "RANGE_BYTES", "scan"]

CHUNK_CHARS = 1 << 20
# Longer than any finding (the longest, an IBAN printed in groups, is 42 characters),
# and than any context window a detector reads before or after a value (60).
OVERLAP_CHARS = 512
RANGE_BYTES = 1 << 20
"""The smallest byte range a file is split into; a smaller file is one range."""
# A file is split into about this many ranges at most: enough for every core to get
# several (so one range rich in numbers does not hold the others back), few enough that
# a range costs far more to scan than to schedule.
_RANGES = 64
# How far past a cut's target a newline is looked for, a block at a time: a longer line
# is not cut, and its range grows.
_NEWLINE_SEARCH = 1 << 20
_SEARCH_BLOCK = 1 << 16
_BINARY_PROBE = 8192
# Above the largest temporary a chunk makes (its text, up to two CHUNK_CHARS characters
# of up to 4 bytes, and the copies the scanner takes), and just under the 32 MiB up to
# which glibc lets a freed block raise its threshold (see _settle).
_HEAP_BYTES = 31 << 20
_LINE_FORMATS = (".jsonl", ".ndjson", ".csv", ".tsv")
# The characters of a line file scanned in one scan_many call (each line counted one
# more): enough lines to share a call's set-up, few enough that the lines and their
# findings stay small in memory. A longer line is scanned alone.
_LINE_BATCH_CHARS = 1 << 18


# JSON lines of one range held in memory, in characters; past this they go to a file.
_SPILL_CHARS = 1 << 23


class _Spilled(NamedTuple):
    """A range's JSON lines, in a file of the scan's spill directory."""

    path: str


_Block = str | list[dict[str, object]] | _Spilled
"""Findings as a worker returns them: JSON lines ready to write (in memory or in a
file), or rows for a table."""


def _json_line(row: dict[str, object]) -> str:
    """One finding as ``--format json`` prints it."""
    return json.dumps(row, ensure_ascii=False) + "\n"


class _Sink:
    """One range's findings, collected as they are found.

    Rows for a table; otherwise JSON lines, which move to a file in *spill* (a
    directory the parent removes at the end) once they pass :data:`_SPILL_CHARS`, so that
    a range with millions of findings (a 1 GB line dense with numbers) does not hold
    them all in memory, in the worker or in the parent.
    """

    def __init__(self, fmt: str, spill: str | None) -> None:
        self._rows: list[dict[str, object]] | None = [] if fmt == "table" else None
        self._lines: list[str] = []
        self._held = 0
        self._spill = spill
        self._file: TextIO | None = None  # closed by block() or discard()
        self._path = ""

    def add(self, row: dict[str, object]) -> None:
        if self._rows is not None:
            self._rows.append(row)
            return
        line = _json_line(row)
        if self._file is not None:
            self._file.write(line)
            return
        self._lines.append(line)
        self._held += len(line)
        if self._held > _SPILL_CHARS and self._spill is not None:
            import tempfile

            handle, self._path = tempfile.mkstemp(suffix=".jsonl", dir=self._spill)
            spilled = open(handle, "w", encoding="utf-8", newline="")  # noqa: SIM115
            spilled.write("".join(self._lines))
            self._file, self._lines = spilled, []

    def block(self) -> _Block:
        """Everything added, to be written by the parent."""
        if self._rows is not None:
            return self._rows
        if self._file is not None:
            self._file.close()
            return _Spilled(self._path)
        return "".join(self._lines)

    def discard(self) -> _Block:
        """Nothing of the range is to be written: an empty block."""
        if self._file is not None:
            self._file.close()
            os.unlink(self._path)
            self._file = None
        self._lines = []
        if self._rows is not None:
            self._rows = []
        return self.block()


class _BadInput(Exception):
    """A file that cannot be scanned as text; the message says why."""


class _Range(NamedTuple):
    """Bytes ``[lo, hi)`` of a file, scanned as one task; a None *hi* reads to the end."""

    path: str
    lo: int
    hi: int | None
    lines: bool  # a line file: each line is scanned alone and reported with its number


class _Plan(NamedTuple):
    """A file's ranges, in order, and its size when they were planned."""

    ranges: list[_Range]
    size: int


class _Part(NamedTuple):
    """What scanning a range gives: its findings, its length, and why it stopped."""

    block: _Block
    length: int  # characters (a line file: lines); the next range starts after them
    problem: str | None


def _scan_text(text: str, lang: str | None) -> list[Finding]:
    from sovra.classify import scan as scan_text

    # The whole chunk is scanned as one text: the per-text bound on separate numbers
    # protects a gateway's latency; here the input's size is the bound.
    return scan_text(text, lang=lang, max_chars=len(text) + 1, max_numbers=len(text) + 1)


def _scan_lines(lines: list[str], lang: str | None) -> list[list[Finding]]:
    """Each of *lines* scanned alone: :func:`_scan_text`'s findings for each, in order.

    :func:`~sovra.classify.scanner.scan_many` scans them joined, paying a call's set-up
    once for many short lines, and gives each exactly what a call of its own finds.
    """
    from sovra.classify.scanner import scan_many

    bound = sum(map(len, lines)) + 1  # as in _scan_text: the input's size is the bound
    found: list[list[Finding]] = []
    for each in scan_many(lines, lang=lang, max_chars=bound, max_numbers=bound):
        if not isinstance(each, list):
            raise each  # a line is a string within both bounds: never, as with scan
        found.append(each)
    return found


def _row(
    finding: Finding, shift: int = 0, path: str | None = None, line: int | None = None
) -> dict[str, object]:
    """A finding as it is printed, its offsets moved by *shift*."""
    row: dict[str, object] = {} if path is None else {"path": path}
    if line is not None:
        row["line"] = line
    row["start"] = finding.start + shift
    row["end"] = finding.end + shift
    row["kind"] = finding.kind
    row["confidence"] = round(finding.confidence, 3)
    row["validated"] = finding.validated
    return row


def _check_binary(head: bytes, name: str) -> None:
    if b"\x00" in head[:_BINARY_PROBE]:
        raise _BadInput(f"{name}: binary file (a NUL byte in its first 8 KiB), not scanned")


def _chunked(pieces: Iterable[str], lang: str | None, start: int) -> Iterator[tuple[int, Finding]]:
    """Findings of the text *pieces* make, from offset *start* of it on.

    The text before *start* is context only. It is scanned :data:`CHUNK_CHARS` at a
    time, each chunk with :data:`OVERLAP_CHARS` of the text before it and after it, and
    reports the findings that start inside it; a chunk ends just after a newline when
    one is near its end.

    Yields:
        ``(base, finding)``: the finding is at ``base + finding.start`` in the text.
    """
    buffer = ""
    base = 0  # offset of buffer[0] in the text
    emitted = start  # findings starting before this offset are not reported here
    pending = iter(pieces)
    final = False
    while not final:
        piece = next(pending, None)
        final = piece is None
        buffer += piece or ""
        if not final and len(buffer) - (emitted - base) < CHUNK_CHARS + OVERLAP_CHARS:
            continue
        if final:
            cut = base + len(buffer)
        else:
            limit = len(buffer) - OVERLAP_CHARS
            # After the chunk's last newline, if that leaves less than an eighth of a
            # chunk to scan again with the next one; a longer line is cut anywhere.
            near = max(emitted - base, limit - CHUNK_CHARS // 8)
            newline = buffer.rfind("\n", near, limit)
            cut = base + (newline + 1 if newline >= 0 else limit)
        for finding in _scan_text(buffer, lang):
            if emitted <= base + finding.start < cut:
                yield base, finding
        emitted = cut
        drop = max(0, cut - OVERLAP_CHARS - base)
        buffer = buffer[drop:]
        base += drop


def _stream(raw: BinaryIO, name: str, lang: str | None) -> Iterator[dict[str, object]]:
    """Findings over a byte stream read in overlapping chunks, offsets in characters."""
    for base, finding in _chunked(_decoded(raw, name, 0, None, probe=True), lang, 0):
        yield _row(finding, base)


def _decoded(
    raw: BinaryIO,
    name: str,
    lo: int,
    hi: int | None,
    *,
    probe: bool = False,
    length: list[int] | None = None,
) -> Iterator[str]:
    """The text of bytes ``[lo, hi)`` of *raw*, which is at *lo*, strictly decoded.

    Adds the characters decoded to ``length[0]`` when given.

    Raises:
        _BadInput: a NUL byte in the first 8 KiB (when *probe*), or invalid UTF-8, with
            the offset of the first bad byte.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    position = lo
    while True:
        want = CHUNK_CHARS if hi is None else min(CHUNK_CHARS, hi - position)
        block = raw.read(want) if want > 0 else b""
        if probe:
            _check_binary(block, name)
            probe = False
        # The bytes of a character cut by the previous block wait in the decoder, and
        # an error's position counts from the first of them.
        held = len(decoder.getstate()[0])
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            offset = position - held + exc.start
            raise _BadInput(
                f"{name}: not UTF-8 (invalid byte at offset {offset}), not scanned"
            ) from exc
        position += len(block)
        if length is not None:
            length[0] += len(text)
        if text:
            yield text
        if not block:
            return


def _context_before(raw: BinaryIO, lo: int) -> str:
    """Up to :data:`OVERLAP_CHARS` characters of the text that ends at byte *lo*."""
    if lo == 0:
        return ""
    start = max(0, lo - 4 * OVERLAP_CHARS - 3)
    raw.seek(start)
    data = raw.read(lo - start)
    skip = 0
    while start > 0 and skip < min(3, len(data)) and 0x80 <= data[skip] < 0xC0:
        skip += 1  # the end of a character that starts before the read
    # A bad byte here is in the range before, which reports it; replaced, it is context.
    return data[skip:].decode("utf-8", errors="replace")[-OVERLAP_CHARS:]


def _context_after(raw: BinaryIO) -> str:
    """At least :data:`OVERLAP_CHARS` characters of the text from *raw*'s position on."""
    data = raw.read(4 * OVERLAP_CHARS)
    # Not final: a character cut at the end of the read is left out, not replaced.
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data, final=False)


def _scan_text_range(raw: BinaryIO, part: _Range, base: int, lang: str | None, sink: _Sink) -> int:
    """Add the findings that start in the range to *sink*, offsets counted from the
    file's start; returns the range's length in characters."""
    before = _context_before(raw, part.lo)
    raw.seek(part.lo)
    length = [0]

    def pieces() -> Iterator[str]:
        yield before
        yield from _decoded(raw, part.path, part.lo, part.hi, length=length)
        if part.hi is not None:
            yield _context_after(raw)

    shift = base - len(before)
    for at, finding in _chunked(pieces(), lang, len(before)):
        # The range's own text ends here; past it is the context after. The length is
        # whole by the time a chunk holds any of that context.
        if at + finding.start < len(before) + length[0]:
            sink.add(_row(finding, at + shift, part.path))
    return length[0]


def _scan_line_range(
    raw: BinaryIO, part: _Range, first: int, lang: str | None, sink: _Sink
) -> tuple[int, str | None]:
    """Each line of the range scanned alone, its findings added to *sink*; *first*
    lines come before the range. Returns the lines read and why it stopped early."""
    raw.seek(part.lo)
    position, number = part.lo, first
    batch: list[str] = []  # lines read and not yet scanned
    start = first + 1  # the number of the batch's first line
    held = 0
    problem = None

    def flush() -> None:
        for at, found in enumerate(_scan_lines(batch, lang), start=start):
            for finding in found:
                sink.add(_row(finding, 0, part.path, at))
        batch.clear()

    for data in raw:
        number += 1
        try:
            line = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            problem = f"{part.path}: not UTF-8 (line {number}, byte {exc.start} of the line)"
            break
        if held + len(line) > _LINE_BATCH_CHARS and batch:
            flush()
            start, held = number, 0
        batch.append(line)
        held += len(line) + 1
        position += len(data)
        if part.hi is not None and position >= part.hi:
            break
    flush()  # the lines before a bad one are written, as they were one at a time
    return number - first, problem


def _scan_range(part: _Range, base: int, lang: str | None, fmt: str, spill: str | None) -> _Part:
    """One range, in a worker process; *base* is the characters (lines) before it.

    Findings are serialised here, not in the parent, which shares the cores and then
    only writes them out.
    """
    sink = _Sink(fmt, spill)
    problem = None
    try:
        with open(part.path, "rb") as raw:
            if part.lo == 0:
                _check_binary(raw.read(_BINARY_PROBE), part.path)
            if part.lines:
                length, problem = _scan_line_range(raw, part, base, lang, sink)
            else:
                length = _scan_text_range(raw, part, base, lang, sink)
    except _BadInput as exc:
        return _Part(sink.discard(), 0, str(exc))
    except OSError as exc:
        return _Part(sink.discard(), 0, f"{part.path}: {exc.strerror or exc}")
    return _Part(sink.block(), length, problem)


def _measure(part: _Range) -> int:
    """The characters (a line file: the lines) of a range, the next range's base.

    A bad byte counts as one character, and an unreadable file as empty: the range's
    own scan reports either, and the file's later ranges are then not written.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    total = 0
    try:
        with open(part.path, "rb") as raw:
            raw.seek(part.lo)
            position = part.lo
            while True:
                want = CHUNK_CHARS if part.hi is None else min(CHUNK_CHARS, part.hi - position)
                block = raw.read(want) if want > 0 else b""
                if not block:
                    return total
                position += len(block)
                total += block.count(b"\n") if part.lines else len(decoder.decode(block))
    except OSError:
        return 0


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


def _plan(path: Path, lines: bool) -> _Plan:
    """The ranges of one file, each but the last ending just after a newline.

    Raises:
        _BadInput: the file is large enough to split, and binary.
        OSError: the file cannot be read.
    """
    name = str(path)
    size = path.stat().st_size
    step = max(RANGE_BYTES, size // _RANGES)
    if size < 2 * step:
        return _Plan([_Range(name, 0, None, lines)], size)  # its worker checks it
    cuts = [0]
    with path.open("rb") as raw:
        # Checked here, not by each range: a large binary file costs no work.
        _check_binary(raw.read(_BINARY_PROBE), name)
        target = step
        while target + step <= size:
            cut = _after_newline(raw, target)
            if cut is None or cut >= size:
                target += step  # a long line is not cut: this range grows
                continue
            cuts.append(cut)
            target = cut + step
    ends: list[int | None] = [*cuts[1:], None]
    return _Plan([_Range(name, lo, hi, lines) for lo, hi in zip(cuts, ends, strict=True)], size)


def _after_newline(raw: BinaryIO, target: int) -> int | None:
    """The offset just after the first newline at or after *target*, if one is near."""
    raw.seek(target)
    position = target
    while position - target < _NEWLINE_SEARCH:
        block = raw.read(_SEARCH_BLOCK)
        if not block:
            return None
        at = block.find(b"\n")
        if at >= 0:
            return position + at + 1
        position += len(block)
    return None


class _Step(NamedTuple):
    """One range under way: its file's index, its bytes, whether it is the file's last."""

    file: int
    size: int
    last: bool
    task: Future[_Part]


class _Inline:
    """Runs each task as it is submitted, in this process (one job)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(fn(*args))
        return done


def _done(part: _Part) -> Future[_Part]:
    done: Future[_Part] = Future()
    done.set_result(part)
    return done


def _steps(
    pool: Any,
    plans: list[_Plan | str],
    lang: str | None,
    fmt: str,
    failed: set[int],
    spill: str,
) -> Iterator[_Step]:
    """Submit each file's ranges in order; a file in *failed* gets no more submitted."""
    ahead = not isinstance(pool, _Inline)
    for index, plan in enumerate(plans):
        if isinstance(plan, str):
            yield _Step(index, 0, True, _done(_Part(_Sink(fmt, None).block(), 0, plan)))
            continue
        ranges = plan.ranges
        counts: list[Future[int]] = []
        base = 0
        for k, part in enumerate(ranges):
            if index in failed:
                break
            last = k == len(ranges) - 1
            end = plan.size if last else ranges[k + 1].lo
            task = pool.submit(_scan_range, part, base, lang, fmt, spill)
            if k == 0 and ahead:
                # Each range's base is the sum of the lengths before it: with workers, a
                # quick first pass counts them while the first range, whose base is 0,
                # is scanned; in this process, each scan gives the next one's.
                counts = [pool.submit(_measure, each) for each in ranges[:-1]]
            yield _Step(index, end - part.lo, last, task)
            if not last:
                base += counts[k].result() if ahead else task.result().length


def _settle() -> None:
    """Let the C allocator serve a chunk's multi-megabyte temporaries from its heap.

    glibc maps each block over a threshold (128 KiB at first) straight from the kernel
    and unmaps it when freed, so that the next one costs a page fault per 4 KiB; it
    also gives the top of its heap back beyond a second threshold. Freeing a mapped
    block raises both, to its size and twice that, but how soon a process gets there
    depends on the order of sizes it happens to meet. Measured on 2 cores: one of two
    forked workers took 25% longer per range (78,000 page faults against 7,000), and
    ranges of 2.3 MB took 12% longer in any process. Freeing one block of
    :data:`_HEAP_BYTES` sets both thresholds now, here and in the workers forked from
    here. Other allocators ignore it; it costs two system calls.
    """
    bytes(_HEAP_BYTES)


def _run(
    plans: list[_Plan | str],
    lang: str | None,
    workers: int,
    fmt: str,
    rows: list[dict[str, object]],
    problems: list[str],
    advance: Callable[[_Step], None],
) -> None:
    """Scan every range of every file, *workers* at a time, and emit in input order.

    *plans* holds each file's ranges, or why it cannot be scanned; *advance* is told
    of each range done.
    """
    failed: set[int] = set()

    def finish(step: _Step) -> None:
        if step.file in failed:
            return  # a range after its file's bad one, submitted before that was known
        part = step.task.result()
        _emit_block(part.block, rows)
        if part.problem is not None:
            problems.append(part.problem)
            failed.add(step.file)
            step = step._replace(last=True)  # the file's last range to be written
        advance(step)

    import tempfile

    _settle()
    # Ranges with many findings leave them in files here; removed whatever happens.
    with tempfile.TemporaryDirectory(prefix="sovra-scan-") as spill:
        if workers <= 1:
            for step in _steps(_Inline(), plans, lang, fmt, failed, spill):
                finish(step)
        else:
            _run_in_workers(plans, lang, workers, fmt, failed, spill, finish)


def _run_in_workers(
    plans: list[_Plan | str],
    lang: str | None,
    workers: int,
    fmt: str,
    failed: set[int],
    spill: str,
    finish: Callable[[_Step], None],
) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _warm(lang)
    # Forked workers start with the tables _warm built. Asked for by name on Linux, since
    # Python 3.14 starts workers another way there by default (each would build its own
    # tables); elsewhere (macOS, Windows) the platform's default: the same output.
    context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # A bounded window of ranges in flight keeps memory flat on a huge input.
        pending: deque[_Step] = deque()
        for step in _steps(pool, plans, lang, fmt, failed, spill):
            pending.append(step)
            if len(pending) >= workers * 4:
                finish(pending.popleft())
        while pending:
            finish(pending.popleft())


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _emit(findings: Iterable[dict[str, object]], fmt: str, rows: list[dict[str, object]]) -> None:
    for finding in findings:
        if fmt == "json":
            sys.stdout.write(_json_line(finding))
        else:
            rows.append(finding)
    if fmt == "json":
        sys.stdout.flush()


def _emit_block(block: _Block, rows: list[dict[str, object]]) -> None:
    if isinstance(block, _Spilled):
        with open(block.path, encoding="utf-8", newline="") as spilled:
            while piece := spilled.read(CHUNK_CHARS):
                sys.stdout.write(piece)
        os.unlink(block.path)
        sys.stdout.flush()
    elif isinstance(block, str):
        if block:
            sys.stdout.write(block)
            sys.stdout.flush()
    else:
        rows.extend(block)


def _table(rows: list[dict[str, object]]) -> None:
    from rich.table import Table

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
    print_table(table)


def _check_lang(value: str) -> str | None:
    from sovra.classify.scanner import LANGUAGES

    if value == "auto":
        return None
    if value not in LANGUAGES:
        raise typer.BadParameter(f"unknown language {value!r}; use auto or one of {LANGUAGES}")
    return value


def _check_format(fmt: str, as_json: bool) -> None:
    if fmt not in {"json", "table"}:
        raise typer.BadParameter(f"--format must be json or table, not {fmt!r}")
    if as_json and fmt != "json":
        raise typer.BadParameter("--json is --format json; give one of them")


def scan(
    path: Annotated[str, typer.Argument(help="a file, a directory, or - for standard input")],
    fmt: Annotated[
        str, typer.Option("--format", help="json (one finding per line) or table")
    ] = "json",
    lang: Annotated[
        str, typer.Option(help="auto, or one of en pl vi de fr es zh for its word lists")
    ] = "auto",
    jobs: Annotated[
        int,
        typer.Option(help="worker processes, 0 for one per core; the output does not depend on it"),
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Find sensitive data (identifiers, contacts, accounts, special categories), offline."""
    _check_format(fmt, as_json)
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
            files = _files(target)
            if not files:
                err.print(f"{target}: no files", highlight=False)
        elif target.is_file():
            files = [target]
        else:
            error(f"{path}: no such file or directory")
            raise typer.Exit(ExitCode.ERROR)
        if files:
            _scan_files(target, files, language, workers, fmt, rows, problems)
    if fmt == "table":
        _table(rows)
    for problem in problems:
        error(problem)
    if problems:
        raise typer.Exit(ExitCode.ERROR)


def _scan_files(
    target: Path,
    files: list[Path],
    lang: str | None,
    workers: int,
    fmt: str,
    rows: list[dict[str, object]],
    problems: list[str],
) -> None:
    plans: list[_Plan | str] = []
    for file in files:
        # A line file (JSONL, CSV, ...) is read a record a line, in a directory too; its
        # findings carry their line, and their offsets are within it.
        lines = file.suffix.lower() in _LINE_FORMATS
        try:
            plans.append(_plan(file, lines))
        except _BadInput as exc:
            plans.append(str(exc))
        except OSError as exc:
            plans.append(f"{file}: {exc.strerror or exc}")
    ranges = sum(len(plan.ranges) for plan in plans if isinstance(plan, _Plan))
    single = target.is_file()
    # One file: its bytes; a directory: its files, each counted when its last range is.
    total = sum(plan.size for plan in plans if isinstance(plan, _Plan)) if single else len(files)
    with progress(f"scanning {target.name if single else target}") as bar:
        task = bar.add_task("", total=total or None)

        def advance(step: _Step) -> None:
            if single:
                bar.advance(task, step.size)
            elif step.last:
                bar.advance(task, 1)

        _run(plans, lang, min(workers, ranges), fmt, rows, problems, advance)
