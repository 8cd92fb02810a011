"""``sovra scan``: streamed JSON findings, tables, directories, line files and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovra._cli import scan as scan_module
from sovra.cli import app

SOVRA = Path(sys.executable).parent / "sovra"
PESEL = "44051401359"
TEXT = f"Anna Kowalska, PESEL {PESEL}, tel. +48 601 234 567, prosi o kontakt.\n"


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_file_streams_one_json_object_per_finding(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_text(TEXT, encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", str(path)])
    assert result.exit_code == 0, result.output
    found = _lines(result.stdout)
    assert [(f["kind"], TEXT[f["start"] : f["end"]]) for f in found] == [  # type: ignore[misc]
        ("pl_pesel", PESEL),
        ("phone", "+48 601 234 567"),
    ]
    assert list(found[0]) == ["path", "start", "end", "kind", "confidence", "validated"]
    assert PESEL not in result.stdout  # never the value


def test_standard_input_and_table() -> None:
    result = CliRunner().invoke(app, ["scan", "-", "--format", "table"], input=TEXT)
    assert result.exit_code == 0, result.output
    assert "pl_pesel" in result.stdout and "phone" in result.stdout
    assert PESEL not in result.stdout


def test_language_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scan", "-", "--lang", "de"], input="Er leidet an Diabetes.")
    assert [f["kind"] for f in _lines(result.stdout)] == ["health"]
    bad = CliRunner().invoke(app, ["scan", "-", "--lang", "xx"], input="x")
    assert bad.exit_code == 2
    assert "unknown language 'xx'" in bad.output


def test_directory_in_parallel_with_bad_files_reported(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("mail: jan@firma.pl", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "image.bin").write_bytes(b"\x89PNG\x00\x00" + bytes(range(256)))
    (tmp_path / "latin1.txt").write_bytes("Zażółć".encode("utf-16-le"))
    result = CliRunner().invoke(app, ["scan", str(tmp_path), "--jobs", "2"])
    assert result.exit_code == 1
    found = _lines(result.stdout)
    assert sorted((Path(str(f["path"])).name, f["kind"]) for f in found) == [
        ("a.txt", "phone"),
        ("a.txt", "pl_pesel"),
        ("b.txt", "email"),
    ]
    assert "image.bin: binary file" in result.stderr
    assert "latin1.txt: binary file" in result.stderr or "latin1.txt: not UTF-8" in result.stderr


def test_invalid_utf8_names_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok \xff bad")
    result = CliRunner().invoke(app, ["scan", str(path)])
    assert result.exit_code == 1
    assert "not UTF-8 (invalid byte at offset 3)" in result.stderr


def test_empty_input_finds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    result = CliRunner().invoke(app, ["scan", str(path)])
    assert (result.exit_code, result.stdout) == (0, "")


def test_missing_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scan", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no such file or directory" in result.stderr


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_line_files_report_line_numbers(tmp_path: Path, suffix: str) -> None:
    rows = [f'{{"pesel": "{PESEL}"}}', '{"n": 1}', '{"mail": "a@b.pl"}'] * 1500
    path = tmp_path / f"data{suffix}"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", str(path), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    found = _lines(result.stdout)
    assert len(found) == 3000
    assert [f["line"] for f in found[:2]] == [1, 3]
    assert [f["line"] for f in found] == sorted(f["line"] for f in found)  # type: ignore[type-var]
    assert (found[0]["start"], found[0]["end"]) == (11, 22)


def test_line_files_in_a_directory_report_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text(f"PESEL\n{PESEL}\n", encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text(f'{{"n": 1}}\n{{"pesel": "{PESEL}"}}\n', encoding="utf-8")
    outputs = []
    for jobs in ("1", "2"):
        result = CliRunner().invoke(app, ["scan", str(tmp_path), "--jobs", jobs])
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    notes, rows = _lines(outputs[0])
    assert notes["path"].endswith("notes.txt") and "line" not in notes  # type: ignore[union-attr]
    assert (notes["start"], notes["end"]) == (6, 17)
    assert rows["path"].endswith("rows.jsonl")  # type: ignore[union-attr]
    assert (rows["line"], rows["start"], rows["end"]) == (2, 11, 22)


def test_one_long_line_is_read_in_overlapping_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks stand in for a 1 GB single line: findings on and across every chunk
    # boundary are each reported exactly once, with offsets into the whole file.
    monkeypatch.setattr(scan_module, "CHUNK_CHARS", 700)
    unit = f"x PESEL {PESEL} y " + "słowo " * 20
    text = unit * 40
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", str(path)])
    assert result.exit_code == 0, result.output
    found = _lines(result.stdout)
    assert [text[f["start"] : f["end"]] for f in found] == [PESEL] * 40  # type: ignore[misc]
    assert len({f["start"] for f in found}) == 40


@pytest.mark.parametrize("name", ["long.txt", "rows.jsonl"])
def test_a_range_with_many_findings_is_held_in_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A small threshold stands in for millions of findings in one range (a 1 GB line
    # dense with numbers): the output is the same, and no spilled file is left.
    path = tmp_path / name
    path.write_text(f"x PESEL {PESEL}, tel. 601 234 567\n" * 300, encoding="utf-8")
    spill_root = tmp_path / "tmp"
    spill_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill_root))
    expected = CliRunner().invoke(app, ["scan", str(path), "--jobs", "1"])
    assert expected.exit_code == 0, expected.output
    assert len(_lines(expected.stdout)) == 600
    monkeypatch.setattr(scan_module, "_SPILL_CHARS", 500)
    for jobs in ("1", "2"):
        result = CliRunner().invoke(app, ["scan", str(path), "--jobs", jobs])
        assert result.exit_code == 0, result.output
        assert result.stdout == expected.stdout
    assert list(spill_root.iterdir()) == []


def test_a_spilled_range_that_turns_out_bad_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(f"PESEL {PESEL}\n".encode() * 200 + b"\xff\n")
    spill_root = tmp_path / "tmp"
    spill_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill_root))
    monkeypatch.setattr(scan_module, "_SPILL_CHARS", 500)
    result = CliRunner().invoke(app, ["scan", str(path)])
    assert result.exit_code == 1
    assert "not UTF-8" in result.stderr
    assert result.stdout == ""  # the one range is bad: none of it is written
    assert list(spill_root.iterdir()) == []


def test_installed_command_streams_from_a_pipe() -> None:
    done = subprocess.run(
        [str(SOVRA), "scan", "-"], input=TEXT.encode(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [f["kind"] for f in _lines(done.stdout.decode())] == ["pl_pesel", "phone"]
