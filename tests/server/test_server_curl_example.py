"""The signed-token example in docs/api.md, run as a reader would run it: the bash block
copied out of the document, with curl and openssl, against ``sovra serve``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.server.conftest import Serve

from sovra.deployment import Deployment
from sovra.model import LogEntry

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"
MARKER = "<!-- the test tests/server/test_server_curl_example.py runs this block"


def shell_block(doc: Path, marker: str) -> str:
    """The first fenced bash block after *marker* in *doc*."""
    text = doc.read_text(encoding="utf-8")
    found = re.search(re.escape(marker) + r".*?\n```bash\n(.*?)\n```", text, re.DOTALL)
    assert found, f"{doc} has no bash block after {marker!r}"
    return found.group(1)


@pytest.fixture
def tools() -> None:
    missing = [t for t in ("bash", "curl", "openssl") if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (scripts/bootstrap installs curl)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the documented curl example")
        pytest.skip(reason)


def _run_example(root: Path, serve: Serve, cwd: Path, key: str) -> subprocess.CompletedProcess[str]:
    """The documented block, signing as svc-pl with the key file *key* of the deployment."""
    script = shell_block(API_DOC, MARKER)
    env = {"PRINCIPAL": "svc-pl", "KEY": str(root / "principals" / key)}
    with serve(root) as url:
        return subprocess.run(
            ["bash", "-c", script],
            env={**os.environ, **env, "SOVRA_URL": url},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


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
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        entries = [LogEntry.from_bytes(e) for e in log.entries(0, log.size)]
    finally:
        dep.close()
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
    dep = Deployment.open(root)
    try:
        assert dep.gateway.log.size == 0
    finally:
        dep.close()
