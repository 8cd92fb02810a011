"""The signed-token example in docs/api.md, run as a reader would run it: the bash block
copied out of the document, with curl and openssl, against ``sovra serve``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.server.conftest import Serve, logged, run_shell, shell_block

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"
MARKER = "<!-- the test tests/server/test_server_curl_example.py runs this block"


def _run_example(root: Path, serve: Serve, cwd: Path, key: str) -> subprocess.CompletedProcess[str]:
    """The documented block, signing as svc-pl with the key file *key* of the deployment."""
    script = shell_block(API_DOC, MARKER)
    env = {"PRINCIPAL": "svc-pl", "KEY": str(root / "principals" / key)}
    with serve(root) as url:
        return run_shell(script, {**env, "SOVRA_URL": url}, cwd)


def test_the_documented_curl_example_stores_and_reads_a_record(
    tools: None, root: Path, serve: Serve, tmp_path: Path
) -> None:
    ran = _run_example(root, serve, tmp_path, "svc-pl.key")
    assert ran.returncode == 0, ran.stderr
    receipt_line, read_line = ran.stdout.strip().splitlines()
    receipt, read = json.loads(receipt_line), json.loads(read_line)
    record = receipt["record_id"]
    assert read["decision"]["effect"] == "allow"
    assert read["records"] == {record: "Anna, tel. +48 601 234 567"}
    entries = logged(root)
    assert [(e.kind, e.principal) for e in entries] == [
        ("ingest", "svc-pl"),
        ("decision", "svc-pl"),
        ("key_release", "svc-pl"),
    ]
    assert entries[0].fields["record"] == record
    assert entries[1].fields["records"] == [record]


def test_the_example_is_refused_with_another_principals_key(
    tools: None, root: Path, serve: Serve, tmp_path: Path
) -> None:
    ran = _run_example(root, serve, tmp_path, "svc-de.key")
    assert ran.returncode == 1
    assert ran.stdout == ""
    error = next(line for line in ran.stderr.splitlines() if line.startswith("{"))
    assert json.loads(error) == {
        "error": "unauthenticated",
        "message": "token signature is not svc-pl's: forged or corrupted",
    }
    assert logged(root) == []
