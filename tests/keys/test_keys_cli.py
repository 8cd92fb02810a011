"""``sovra keys status|rotate|shred`` on a deployment with records in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovra.cli import app
from sovra.deployment import Deployment
from sovra.errors import NotFound

SUBJECTS = [f"person{i}@example.pl" for i in range(5)]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("keys-cli") / "deployment"
    Deployment.init(
        root, jurisdictions=["PL", "VN"], origin="sovra.test/keys", custodians="in-process"
    )
    dep = Deployment.open(root)
    try:
        svc = dep.store.get_principal("svc-pl")
        records = [
            dep.gateway.ingest(
                svc, subject_id=s, jurisdiction="PL", content=f"note of {s}"
            ).record_id
            for s in SUBJECTS
        ]
    finally:
        dep.close()
    return root, records


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def read(root: Path, record: str) -> str:
    dep = Deployment.open(root)
    try:
        svc = dep.store.get_principal("svc-pl")
        return dep.gateway.access(svc, purpose="customer-support", record_ids=[record]).records[
            record
        ]
    finally:
        dep.close()


def test_status_rotate_shred(filled: tuple[Path, list[str]]) -> None:
    root, records = filled
    code, text = run("keys", "status", "-d", str(root), "--json")
    assert code == 0
    by_code = {row["jurisdiction"]: row for row in json.loads(text)}
    assert by_code["PL"]["versions"] == {"1": 5}
    assert by_code["VN"]["subjects"] == 0

    code, text = run("keys", "rotate", "-j", "PL", "-d", str(root))
    assert code == 0, text
    rotated = json.loads(text)
    assert rotated["rewrapped"] == 5
    assert rotated["destroyed_versions"] == [1]
    assert rotated["status"]["versions"] == {"2": 5}
    assert all(read(root, r) == f"note of {s}" for r, s in zip(records, SUBJECTS, strict=True))

    code, text = run(
        "keys", "shred", "-j", "PL", "--subject", SUBJECTS[0], "--as", "authority-pl",
        "-d", str(root),
    )  # fmt: skip
    assert code == 0, text
    assert isinstance(json.loads(text)["log_index"], int)
    with pytest.raises(NotFound):
        read(root, records[0])
    assert read(root, records[1]) == f"note of {SUBJECTS[1]}"

    code, text = run("keys", "status", "-d", str(root))
    assert code == 0
    assert "v2: 4" in text


def test_shred_by_someone_else_is_refused(filled: tuple[Path, list[str]]) -> None:
    root, records = filled
    code, _ = run(
        "keys", "shred", "-j", "PL", "--subject", SUBJECTS[3], "--as", "svc-pl", "-d", str(root)
    )
    assert code == 4  # refused by policy (docs/cli.md, exit codes)
    assert read(root, records[3]) == f"note of {SUBJECTS[3]}"


def test_rotate_an_unknown_jurisdiction_fails(filled: tuple[Path, list[str]]) -> None:
    root, _ = filled
    code, _ = run("keys", "rotate", "-j", "DE", "-d", str(root))
    assert code == 1


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_custodian_serve_runs_its_own_process_with_sealed_keys(
    filled: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import subprocess
    import sys
    import time

    from sovra.errors import ConfigError, Unavailable
    from sovra.keys import read_secret
    from sovra.keys.remote import RemoteCustodian

    root, _ = filled
    monkeypatch.setenv("SOVRA_TEST_PASSPHRASE", "a long enough passphrase")
    code, text = run(
        "custodian", "seal", "-j", "VN", "-d", str(root), "--passphrase-env",
        "SOVRA_TEST_PASSPHRASE",
    )  # fmt: skip
    assert code == 0, text
    assert "sovra-custodian-keys-sealed" in (root / "custodians" / "VN.key").read_text()

    port = _free_port()
    sovra = Path(sys.executable).parent / "sovra"
    proc = subprocess.Popen(
        [str(sovra), "custodian", "serve", "-j", "VN", "-d", str(root), "--port", str(port),
         "--passphrase-env", "SOVRA_TEST_PASSPHRASE"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
    )  # fmt: skip
    try:
        token_path = root / "custodians" / "VN.token"
        deadline = time.monotonic() + 20
        while True:
            try:
                token = read_secret(token_path, expected_len=32)
                with RemoteCustodian(f"http://127.0.0.1:{port}", "VN", token) as vn:
                    assert vn.health()["ekmFleetDetails"][0]["healthStatus"] == "ACTIVE"
                    assert vn.current_kek_version == 1
                break
            except (Unavailable, ConfigError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
