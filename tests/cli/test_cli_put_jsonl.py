"""``sovra put --jsonl FILE``: many records through a running gateway, one line each.

Good lines are stored, each bad line is named by its line number in the file, the exit
code is 1 when any line failed; an empty file stores nothing, a file that is not JSON
lines fails line by line, a missing file is an error before anything is sent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.initial_log import logged_by_init

from sovra.deployment import Deployment
from sovra.model import LogEntry

SOVRA = Path(sys.executable).with_name("sovra")


def _records_of(live: Any, subject: str) -> list[str]:
    commitment = live.dep.gateway.commitment("PL", subject)
    return [m.header.record_id for m in live.dep.store.records_for_subject(commitment)]


def _line(subject: str, content: str = "a note", **more: Any) -> str:
    return json.dumps({"subject_id": subject, "jurisdiction": "PL", "content": content, **more})


def _file(tmp_path: Path, lines: list[str | bytes], name: str = "records.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def test_good_lines_are_stored_and_each_bad_one_is_named_by_its_line(sovra, live, tmp_path):
    path = _file(
        tmp_path,
        [
            _line("jl1@example.pl", "tel. +48 601 234 567"),
            "{not json",
            '{"subject_id": "jl-x@example.pl", "jurisdiction": "PL"}',
            "",
            _line("jl4@example.pl"),
            '{"subject_id": "a", "subject_id": "b", "jurisdiction": "PL", "content": "c"}',
            _line("jl-x@example.pl", jurisdiction="ZZ"),
            b'{"subject_id": "jl-x@example.pl", "jurisdiction": "PL", "content": "\xff"}',
            _line("jl9@example.pl"),
        ],
    )
    ran = sovra(*live.args("put", "--as", "svc-pl", "--jsonl", path))
    assert ran.code == 1
    assert ran.json() == {"lines": 8, "skipped": 0, "stored": 3, "failed": 5}
    message = ran.message
    assert "error line 2: bad_request: line is not valid JSON" in message
    assert "error line 3: bad_request: content: Field required" in message
    assert "error line 6: bad_request: line is not valid JSON: duplicate field 'subject_id'" in (
        message
    )
    assert "error line 7: bad_request: unknown jurisdiction 'ZZ'" in message
    assert "error line 8: bad_request: line is not valid UTF-8" in message
    assert "line 4" not in message  # a blank line is skipped
    assert "5 of 8 lines failed; the others are stored" in message
    for subject in ("jl1", "jl4", "jl9"):
        assert len(_records_of(live, f"{subject}@example.pl")) == 1
    assert _records_of(live, "jl-x@example.pl") == []


def test_failures_and_receipts_go_to_files(sovra, live, tmp_path):
    path = _file(tmp_path, [_line("fr1@example.pl"), "[1, 2]", _line("fr3@example.pl")])
    failures, receipts = tmp_path / "failures.jsonl", tmp_path / "receipts.jsonl"
    ran = sovra(
        *live.args(
            "put", "--as", "svc-pl", "--jsonl", path, "--failures", failures, "--receipts", receipts
        )
    )
    assert ran.code == 1
    assert f"1 of 3 lines failed, listed in {failures}" in ran.message
    assert "line 2" not in ran.message
    (failed,) = [json.loads(x) for x in failures.read_text().splitlines()]
    assert failed == {
        "line": 2,
        "status": 400,
        "error": "bad_request",
        "message": "line is a JSON list, not an object",
    }
    stored = [json.loads(x) for x in receipts.read_text().splitlines()]
    assert [r["line"] for r in stored] == [1, 3]
    for r, subject in zip(stored, ["fr1", "fr3"], strict=True):
        assert _records_of(live, f"{subject}@example.pl") == [r["record_id"]]
        entry = LogEntry.from_bytes(live.dep.gateway.log.entry(r["log_index"]))
        assert entry.fields["record"] == r["record_id"]


def test_skip_resumes_after_a_line(sovra, live, tmp_path):
    path = _file(tmp_path, [_line(f"sk{i}@example.pl") for i in range(1, 6)])
    ran = sovra(*live.args("put", "--as", "svc-pl", "--jsonl", path, "--skip", "3"))
    assert ran.code == 0, ran.err
    assert ran.json() == {"lines": 2, "skipped": 3, "stored": 2, "failed": 0}
    assert [len(_records_of(live, f"sk{i}@example.pl")) for i in range(1, 6)] == [0, 0, 0, 1, 1]


def test_standard_input_in_chunks(sovra, live):
    lines = [_line(f"in{i}@example.pl", f"note {i}") for i in range(7)]
    ran = sovra(
        *live.args("put", "--as", "svc-pl", "--jsonl", "-", "--chunk", "2"),
        stdin="\n".join(lines).encode(),
    )
    assert ran.code == 0, ran.err
    assert ran.json()["stored"] == 7
    assert all(len(_records_of(live, f"in{i}@example.pl")) == 1 for i in range(7))


def test_an_empty_file_stores_nothing_and_says_so(sovra, live, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    before = live.dep.store.count_records()
    ran = sovra(*live.args("put", "--as", "svc-pl", "--jsonl", path))
    assert ran.code == 0
    assert ran.json() == {"lines": 0, "skipped": 0, "stored": 0, "failed": 0}
    assert f"warning {path} holds no records" in ran.message
    assert live.dep.store.count_records() == before


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(
            [{"subject_id": "nj@example.pl", "jurisdiction": "PL", "content": "x"}], indent=2
        ).encode(),
        b"subject_id,jurisdiction,content\nnj@example.pl,PL,x\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
    ],
    ids=["indented JSON", "CSV", "binary"],
)
def test_a_file_that_is_not_json_lines_fails_on_every_line(sovra, live, tmp_path, data):
    path = tmp_path / "not.jsonl"
    path.write_bytes(data)
    lines = len(data.rstrip(b"\n").split(b"\n"))
    before = live.dep.store.count_records()
    ran = sovra(*live.args("put", "--as", "svc-pl", "--jsonl", path))
    assert ran.code == 1
    assert ran.json() == {"lines": lines, "skipped": 0, "stored": 0, "failed": lines}
    for n in range(1, lines + 1):
        assert f"error line {n}: bad_request:" in ran.message
    assert live.dep.store.count_records() == before


def test_a_missing_file_is_an_error_before_anything_is_sent(sovra, live, tmp_path):
    before = live.dep.gateway.log.size
    ran = sovra(*live.args("put", "--as", "svc-pl", "--jsonl", tmp_path / "nope.jsonl"))
    assert ran.code == 1
    assert ran.message == f"error cannot open {tmp_path / 'nope.jsonl'}: No such file or directory"
    assert ran.out == ""
    assert live.dep.gateway.log.size == before


def test_an_unreachable_gateway_says_where_to_resume(sovra, live, dead_url, tmp_path):
    path = _file(tmp_path, [_line("dead@example.pl")])
    ran = sovra(
        "put", "--as", "svc-pl", "--jsonl", path, "--url", dead_url, "--deployment", live.root
    )
    assert ran.code == 5
    assert f"cannot connect to the gateway at {dead_url}" in ran.message
    assert "resume with --skip 0" in ran.message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--jsonl", "x.jsonl", "--subject", "a"),
            "error --jsonl reads every field from its lines: drop --subject",
        ),
        (
            ("--jsonl", "x.jsonl", "note.txt", "--client-side"),
            "error --jsonl reads every field from its lines: drop FILE, --client-side",
        ),
        (
            ("--subject", "a", "--jurisdiction", "PL", "note.txt", "--skip", "2"),
            "error --skip applies to --jsonl only",
        ),
        (
            ("--subject", "a", "note.txt"),
            "error put needs --subject, --jurisdiction and FILE (or --jsonl FILE for many records)",
        ),
    ],
    ids=["subject", "file and client-side", "skip", "no jurisdiction"],
)
def test_options_that_do_not_go_with_jsonl_are_usage_errors(sovra, live, args, message):
    ran = sovra(*live.args("put", "--as", "svc-pl", *args))
    assert ran.code == 2
    assert ran.message == message


def test_a_file_through_two_workers_is_stored_whole_and_in_order(
    sovra, template, tmp_path, free_port
):
    """Two requests in flight, each to whichever worker the kernel picks: every line
    stored once, one dense log, each receipt the record of its own line."""
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    url = f"http://127.0.0.1:{free_port}"
    serve = subprocess.Popen(
        [SOVRA, "serve", root, "--port", str(free_port), "--workers", "2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    n = 400
    path = _file(tmp_path, [_line(f"w{i}@example.pl", f"note {i}") for i in range(n)])
    receipts = tmp_path / "receipts.jsonl"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, serve.communicate()
            try:
                httpx.get(f"{url}/v1/info", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "sovra serve did not answer"
                time.sleep(0.05)
        ran = sovra(
            "put", "--as", "svc-pl", "--jsonl", path, "--chunk", "25", "--receipts", receipts,
            "--url", url, "--deployment", root,
        )  # fmt: skip
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert ran.code == 0, ran.err
    assert ran.json() == {"lines": n, "skipped": 0, "stored": n, "failed": 0}
    stored = [json.loads(x) for x in receipts.read_text().splitlines()]
    assert [r["line"] for r in stored] == list(range(1, n + 1))
    first = logged_by_init(root)  # the entries of sovra init
    assert sorted(r["log_index"] for r in stored) == list(range(first, first + n))
    dep = Deployment.open(root)
    try:
        for i, r in enumerate(stored):
            meta = dep.store.get_record(r["record_id"])
            assert meta.header.subject == dep.gateway.commitment("PL", f"w{i}@example.pl")
        assert dep.store.count_records() == n
    finally:
        dep.close()
