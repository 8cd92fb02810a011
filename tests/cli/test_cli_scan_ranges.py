"""``sovra scan`` splits a large file into ranges cut at newlines and scans them in parallel.

Small ranges and chunks stand in for large ones (the module's sizes are patched; forked
workers inherit them), so a few kilobytes hold dozens of cuts. Every case is checked
three ways: ``--jobs 2`` against ``--jobs 1`` byte for byte, and both against the
scanner run over the whole file as one text, which knows nothing of ranges or chunks.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovra._cli import scan as scan_module
from sovra.classify import scan as scan_text
from sovra.cli import app

PESEL = "44051401359"
# Findings at both ends of lines, labels on the line above their value (context read
# across a newline), multi-byte text (Polish, Vietnamese, Chinese) on either side.
LINES = (
    f"Anna Kowalska, PESEL {PESEL}, tel. +48 601 234 567",
    "PESEL:",
    PESEL,
    "tel.",
    "601 234 567 to jej numer",
    "mail: jan.nowak@firma.pl",
    "IBAN PL61 1090 1014 0000 0712 1981 2874",
    "Số điện thoại: 0912 345 678, sinh ngày 12 tháng 3 năm 1980",
    "身份证 11010519491231002X\uff0c电话 138 0013 8000\uff0c患有糖尿病",  # full-width commas
    "Er leidet an Diabetes.",
    "ur. 12.03.1980 w Krakowie, serwer 192.168.1.20",
    "Zażółć gęślą jaźń. Tiếng Việt có dấu. 中文字符测试。",
    "",
    "a@b.pl",
    "ES91 2100 0418 4502 0005 1332",
)


def _text(lines: int, seed: int, newline: str = "\n") -> str:
    rng = random.Random(seed)
    return newline.join(rng.choice(LINES) for _ in range(lines)) + newline


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, ["scan", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _reference(path: Path) -> str:
    """The scanner over the whole file at once, printed as the command prints."""
    text = path.read_bytes().decode("utf-8")
    found = scan_text(text, max_chars=len(text) + 1, max_numbers=len(text) + 1)
    return "".join(
        json.dumps({"path": str(path), **f.to_dict()} | {"start": f.start, "end": f.end}) + "\n"
        for f in found
    )


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of about 64 bytes and chunks of 300 characters."""
    monkeypatch.setattr(scan_module, "RANGE_BYTES", 64)
    monkeypatch.setattr(scan_module, "CHUNK_CHARS", 300)


def _same_three_ways(path: Path) -> str:
    one = _run(str(path), "--jobs", "1")
    assert _run(str(path), "--jobs", "2") == one
    reference = _reference(path)
    # Key order aside (the reference builds its dicts another way), line for line equal.
    assert [json.loads(line) for line in one.splitlines()] == [
        json.loads(line) for line in reference.splitlines()
    ]
    return one


@pytest.mark.usefixtures("small")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ranges_cut_at_newlines_change_no_finding(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(_text(400, seed), encoding="utf-8")
    ranges = scan_module._plan(path, lines=False).ranges
    assert len(ranges) > 30
    data = path.read_bytes()
    assert all(data[part.lo - 1 : part.lo] == b"\n" for part in ranges[1:])
    assert [part.hi for part in ranges[:-1]] == [part.lo for part in ranges[1:]]
    found = _same_three_ways(path)
    kinds = {json.loads(line)["kind"] for line in found.splitlines()}
    assert {"pl_pesel", "phone", "email", "iban", "health", "date_of_birth"} <= kinds


@pytest.mark.usefixtures("small")
def test_a_label_on_the_line_before_a_cut_still_counts(tmp_path: Path) -> None:
    # "tel." on one line and a national number on the next, at every cut: the number is
    # reported as named (a higher confidence) whichever range it falls in.
    path = tmp_path / "labels.txt"
    path.write_text("tel.\n601 234 567\n" * 300, encoding="utf-8")
    found = [json.loads(line) for line in _same_three_ways(path).splitlines()]
    assert len(found) == 300
    assert len({f["confidence"] for f in found}) == 1


@pytest.mark.usefixtures("small")
def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "windows.txt"
    path.write_bytes(_text(300, 4, "\r\n").encode())
    assert _same_three_ways(path)


@pytest.mark.usefixtures("small")
@pytest.mark.parametrize("fill", ["ệ", "中", "😀"])
def test_multibyte_characters_around_every_cut(tmp_path: Path, fill: str) -> None:
    # Each line ends and starts in two-, three- or four-byte characters, so the context
    # read before a range starts inside one; offsets count characters, not bytes.
    path = tmp_path / "wide.txt"
    path.write_text(
        "".join(f"{fill * (i % 7)}PESEL {PESEL} {fill * (i % 5)}\n" for i in range(300)),
        encoding="utf-8",
    )
    found = [json.loads(line) for line in _same_three_ways(path).splitlines()]
    text = path.read_text(encoding="utf-8")
    assert [text[f["start"] : f["end"]] for f in found] == [PESEL] * 300


@pytest.mark.usefixtures("small")
def test_a_file_without_a_newline_is_one_range(tmp_path: Path) -> None:
    path = tmp_path / "one-line.txt"
    path.write_text(_text(200, 5).replace("\n", " "), encoding="utf-8")
    assert len(scan_module._plan(path, lines=False).ranges) == 1
    assert _same_three_ways(path)


@pytest.mark.usefixtures("small")
def test_lines_longer_than_the_newline_search_are_not_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_module, "_NEWLINE_SEARCH", 200)
    monkeypatch.setattr(scan_module, "_SEARCH_BLOCK", 16)
    rng = random.Random(10)
    lines = [
        " ".join(rng.choice(LINES) for _ in range(rng.choice([1, 1, 2, 12]))) for _ in range(150)
    ]
    path = tmp_path / "long-lines.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    data = path.read_bytes()
    ranges = scan_module._plan(path, lines=False).ranges
    assert 10 < len(ranges) < 150
    assert all(data[part.lo - 1 : part.lo] == b"\n" for part in ranges[1:])
    assert _same_three_ways(path)


@pytest.mark.usefixtures("small")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_empty_file(tmp_path: Path, jobs: str) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert _run(str(path), "--jobs", jobs) == ""
    assert _run(str(tmp_path), "--jobs", jobs) == ""


@pytest.mark.usefixtures("small")
def test_a_directory_with_one_large_file_among_small_ones(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(LINES[0], encoding="utf-8")
    (tmp_path / "b.txt").write_text(_text(400, 6), encoding="utf-8")
    (tmp_path / "c.txt").write_text("mail: jan@firma.pl\n", encoding="utf-8")
    one = _run(str(tmp_path), "--jobs", "1")
    assert _run(str(tmp_path), "--jobs", "2") == one
    paths = [Path(json.loads(line)["path"]).name for line in one.splitlines()]
    assert paths == sorted(paths)
    assert paths.count("a.txt") == 2 and paths.count("c.txt") == 1


@pytest.mark.usefixtures("small")
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_files_in_ranges_keep_their_line_numbers(tmp_path: Path, newline: str) -> None:
    rows = [json.dumps({"note": line}, ensure_ascii=False) for line in _text(400, 7).split("\n")]
    path = tmp_path / "rows.jsonl"
    path.write_text(newline.join(rows), encoding="utf-8")  # no newline after the last
    assert len(scan_module._plan(path, lines=True).ranges) > 30
    one = _run(str(path), "--jobs", "1")
    assert _run(str(path), "--jobs", "2") == one
    expected = [
        {"path": str(path), "line": number, **f.to_dict()}
        for number, row in enumerate(rows, start=1)
        for f in scan_text(row)
    ]
    assert [json.loads(line) for line in one.splitlines()] == expected


@pytest.mark.usefixtures("small")
@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_invalid_utf8_in_a_later_range(tmp_path: Path, suffix: str) -> None:
    text = _text(400, 8).encode()
    bad = text.index(b"\n", len(text) // 2) + 1
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(text[:bad] + b"\xff" + text[bad:])
    runs = [CliRunner().invoke(app, ["scan", str(path), "--jobs", jobs]) for jobs in "12"]
    assert [r.exit_code for r in runs] == [1, 1]
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stderr == runs[1].stderr
    if suffix == ".txt":
        assert f"not UTF-8 (invalid byte at offset {bad})" in runs[0].stderr
    else:
        line = text[:bad].count(b"\n") + 1
        assert f"not UTF-8 (line {line}, byte 0 of the line)" in runs[0].stderr
    # What came before the bad range is written, nothing after it.
    written = [json.loads(line) for line in runs[0].stdout.splitlines()]
    assert written
    if suffix == ".txt":
        assert all(f["end"] <= bad for f in written)


def test_no_finding_spans_a_newline() -> None:
    # What the cuts rely on: values broken by a newline are not joined into one finding.
    text = (
        f"PESEL {PESEL[:5]}\n{PESEL[5:]}, tel. +48 601\n234 567, IBAN PL61 1090 1014\n0000 "
        "0712 1981 2874, a@b.\npl, 192.168.\n1.20, ur. 12.03.\n1980, 138 0013\n8000, "
        "身份证 110105194912\n31002X, leidet an\nDiabetes, ES91 2100 0418\n4502 0005 1332\n"
    )
    text += _text(400, 9)
    for finding in scan_text(text, max_numbers=len(text)):
        assert "\n" not in text[finding.start : finding.end], finding
