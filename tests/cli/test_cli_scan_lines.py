"""``sovra scan`` on JSONL and CSV files: lines scanned in batches, output as one at a time.

The lines of a line file are scanned many to a call (``scan_many``). The expected output
is built here from :func:`~sovra.classify.scan` called on each line alone and printed as
the command documents it, and the command's must equal it byte for byte: with batches of
the default size, of about 300 characters and of one line, in ranges of 64 bytes and in
one, with one job and with two.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovra._cli import scan as scan_module
from sovra.classify import scan as scan_text
from sovra.cli import app

CLASSIFY_TESTS = Path(__file__).parents[1] / "classify"


@functools.cache
def _corpus_lines() -> list[str]:
    """Every line of the scanner's test corpus (its tables, examples and news seeds) and
    of the range tests' lines: every kind, valid and broken, in seven languages."""
    from test_cli_scan_ranges import LINES

    sys.path.insert(0, str(CLASSIFY_TESTS))
    try:
        from test_classify_scan_many import _corpus

        texts = [*_corpus(), *LINES]
    finally:
        sys.path.remove(str(CLASSIFY_TESTS))
    # A line file's records are its lines; a carriage return inside one is kept as text.
    return [line for text in texts for line in text.replace("\r", " ").split("\n")]


def _rows(suffix: str, lines: list[str]) -> list[str]:
    if suffix == ".jsonl":
        return [
            json.dumps({"id": n, "note": line}, ensure_ascii=False) for n, line in enumerate(lines)
        ]
    return [f'{n},"{line.replace(chr(34), 2 * chr(34))}",x' for n, line in enumerate(lines)]


def _expected(path: Path, rows: list[str]) -> str:
    """Each row scanned alone, printed as ``--format json`` documents it."""
    return "".join(
        json.dumps(
            {
                "path": str(path),
                "line": number,
                "start": f.start,
                "end": f.end,
                "kind": f.kind,
                "confidence": round(f.confidence, 3),
                "validated": f.validated,
            },
            ensure_ascii=False,
        )
        + "\n"
        for number, row in enumerate(rows, start=1)
        for f in scan_text(row)
    )


def _run(path: Path, jobs: str) -> str:
    result = CliRunner().invoke(app, ["scan", str(path), "--jobs", jobs])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
@pytest.mark.parametrize("batch", [None, 300, 1])
@pytest.mark.parametrize("range_bytes", [None, 64])
def test_line_files_print_what_each_line_scanned_alone_gives(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    batch: int | None,
    range_bytes: int | None,
) -> None:
    if batch is not None:
        monkeypatch.setattr(scan_module, "_LINE_BATCH_CHARS", batch)
    if range_bytes is not None:
        monkeypatch.setattr(scan_module, "RANGE_BYTES", range_bytes)
    rows = _rows(suffix, _corpus_lines())
    path = tmp_path / f"corpus{suffix}"
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    expected = _expected(path, rows)
    assert expected.count("\n") > 250  # findings to compare
    assert _run(path, "1") == expected
    assert _run(path, "2") == expected


@pytest.mark.parametrize("batch", [None, 300])
def test_a_bad_line_in_a_batch_is_reported_with_its_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int | None
) -> None:
    if batch is not None:
        monkeypatch.setattr(scan_module, "_LINE_BATCH_CHARS", batch)
    rows = _rows(".jsonl", _corpus_lines())
    bad = len(rows) // 2  # the 0-based index of the bad line
    data = "\n".join(rows).encode()
    at = data.index(b'"note": ', sum(len(r.encode()) + 1 for r in rows[:bad])) + 9
    broken = tmp_path / "a-broken.jsonl"
    broken.write_bytes(data[:at] + b"\xff" + data[at:])
    good = tmp_path / "b-good.csv"
    good_rows = _rows(".csv", _corpus_lines()[:80])
    good.write_text("\n".join(good_rows), encoding="utf-8")
    for jobs in "12":
        result = CliRunner().invoke(app, ["scan", str(tmp_path), "--jobs", jobs])
        assert result.exit_code == 1
        # The lines before the bad one, all their findings; nothing of it or after it;
        # the next file whole.
        assert result.stdout == _expected(broken, rows[:bad]) + _expected(good, good_rows)
        start = at - sum(len(r.encode()) + 1 for r in rows[:bad])
        message = f"{broken}: not UTF-8 (line {bad + 1}, byte {start} of the line)"
        assert message in " ".join(result.stderr.split())
