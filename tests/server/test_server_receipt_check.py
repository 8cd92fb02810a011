"""``sovra-verify receipt``: a gateway's receipts checked offline with the log key alone.

The receipts are the real ones a deployment hands out (an ingest answer over HTTP, an
access answer with its decision and release receipts, the receipts of one batch); the
command reads them from files, with the key given on the command line, and touches no
network. Each kind of tampering is its own case, and each fails with exit code 3.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from sovra.auth import make_token
from sovra.deployment import Deployment
from sovra.flow_types import IngestItem
from sovra.model import LogReceipt
from sovra_verify.cli import EXIT_UNVERIFIED, main
from sovra_verify.note import NoteVerifier

NOTE = "Anna Kowalska, tel. +48 601 234 567"
VERIFY = Path(sys.executable).with_name("sovra-verify")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One deployment's answers holding receipts, its log key and the entries they cover."""
    root = tmp_path_factory.mktemp("receipts") / "deployment"
    Deployment.init(root, origin="sovra.test/receipts", custodians="in-process")
    dep = Deployment.open(root)
    try:
        with TestClient(_app(dep)) as http:
            ingest = _post(http, dep, "svc-pl", "/v1/records", _ingest_body())
            access = _post(
                http,
                dep,
                "svc-pl",
                "/v1/access",
                {"purpose": "customer-support", "record_ids": [ingest["record_id"]]},
            )
        svc = dep.store.get_principal("svc-pl")
        batch = dep.gateway.ingest_many(
            svc, [IngestItem("jan@example.pl", "PL", NOTE) for _ in range(5)]
        )
        log = dep.gateway.log
        yield {
            "vkey": log.verifier_key,
            "ingest": ingest,
            "access": access,
            "batch": [r.receipt.to_dict() for r in batch if not isinstance(r, Exception)],
            "entries": {i: log.entry(i) for i in range(log.stored_size())},
        }
    finally:
        dep.close()


def _app(dep: Deployment) -> Any:
    from sovra.server import create_app

    return create_app(dep)


def _ingest_body() -> dict[str, Any]:
    return {"subject_id": "anna@example.pl", "jurisdiction": "PL", "content": NOTE}


def _post(http: TestClient, dep: Deployment, who: str, path: str, body: Any) -> Any:
    data = json.dumps(body).encode()
    token = make_token(dep.principal_key(who), who, "POST", path, data, now_s=int(time.time()))
    headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
    got = http.post(path, content=data, headers=headers)
    assert got.status_code in (200, 201), got.text
    return got.json()


def _check(
    capsys: Any, tmp_path: Path, document: Any, vkey: str, *entries: bytes
) -> tuple[int, str, str]:
    """``sovra-verify receipt`` on *document* written to a file; (exit code, out, err)."""
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    args = ["receipt", str(path), "--vkey", vkey]
    for n, entry in enumerate(entries):
        (tmp_path / f"entry-{n}").write_bytes(entry)
        args += ["--entry", str(tmp_path / f"entry-{n}")]
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_an_ingest_receipt_verifies_with_the_log_key_and_covers_its_entry(made, tmp_path, capsys):
    index = made["ingest"]["log_index"]
    code, out, err = _check(capsys, tmp_path, made["ingest"], made["vkey"], made["entries"][index])
    assert code == 0, err
    report = json.loads(out)
    assert report["verified"] is True
    assert [(r["field"], r["index"]) for r in report["receipts"]] == [("receipt", index)]
    assert report["entries_covered"] == 1


def test_an_access_answer_has_both_its_receipts_checked(made, tmp_path, capsys):
    access = made["access"]
    decision = made["entries"][access["log_index"]]
    code, out, err = _check(capsys, tmp_path, access, made["vkey"], decision)
    assert code == 0, err
    fields = [r["field"] for r in json.loads(out)["receipts"]]
    assert fields == ["decision_receipt", "release_receipt"]


def test_each_receipt_of_a_batch_verifies_and_agrees_with_the_gateways_check(
    made, tmp_path, capsys
):
    assert len(made["batch"]) == 5
    key = NoteVerifier.from_vkey(made["vkey"]).public_key
    for receipt in made["batch"]:
        assert receipt["batch"]["size"] == 5
        entry = made["entries"][receipt["index"]]
        code, _, err = _check(capsys, tmp_path, receipt, made["vkey"], entry)
        assert code == 0, err
        LogReceipt.from_dict(receipt).verify(key, entry)  # the gateway's own check agrees


def _flip_hex(value: str) -> str:
    return ("0" if value[0] != "0" else "1") + value[1:]


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (lambda r: r.update(signature=_flip_hex(r["signature"])), "not the log key's"),
        (lambda r: r.update(time_ms=r["time_ms"] + 1), "not the log key's"),
        (lambda r: r.update(leaf_hash=_flip_hex(r["leaf_hash"])), "not the log key's"),
        (lambda r: r.update(index=r["index"] + 1), ""),
        (lambda r: r["batch"]["path"].__setitem__(0, _flip_hex(r["batch"]["path"][0])), ""),
        (lambda r: r["batch"].update(size=r["batch"]["size"] + 1), ""),
        (lambda r: r.update(origin="sovra.test/other"), "the key for 'sovra.test/receipts'"),
    ],
    ids=["signature", "time", "leaf", "index", "path", "batch-size", "origin"],
)
def test_a_tampered_receipt_does_not_verify(made, tmp_path, capsys, tamper, why):
    receipt = json.loads(json.dumps(made["batch"][2]))
    tamper(receipt)
    code, out, err = _check(capsys, tmp_path, receipt, made["vkey"])
    assert code == EXIT_UNVERIFIED, out
    assert "NOT VERIFIED" in err
    assert why in err


def test_another_key_for_the_same_log_name_does_not_verify(made, tmp_path, capsys):
    other = NoteVerifier("sovra.test/receipts", Ed25519PrivateKey.generate().public_key())
    code, _, err = _check(capsys, tmp_path, made["ingest"], other.vkey)
    assert code == EXIT_UNVERIFIED
    assert "not the log key's" in err


def test_an_entry_no_receipt_covers_does_not_verify(made, tmp_path, capsys):
    other = made["entries"][made["ingest"]["log_index"] + 1]
    code, _, err = _check(capsys, tmp_path, made["ingest"], made["vkey"], other)
    assert code == EXIT_UNVERIFIED
    assert "covers the given entry" in err


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ("{not json", "is not JSON"),
        ({"hello": 1}, "no receipt found"),
        ({"receipt": {"origin": "x"}}, "malformed receipt: missing"),
        (
            {
                "receipt": {
                    "origin": "x",
                    "index": -1,
                    "leaf_hash": "00" * 32,
                    "time_ms": 1,
                    "signature": "00" * 64,
                }
            },
            "index is a non-negative integer",
        ),
        (
            {
                "receipt": {
                    "origin": "x",
                    "index": 1,
                    "leaf_hash": "zz",
                    "time_ms": 1,
                    "signature": "00" * 64,
                }
            },
            "leaf_hash is not hex",
        ),
    ],
    ids=["not-json", "no-receipt", "missing", "negative", "bad-hex"],
)
def test_malformed_input_is_refused_with_its_reason(made, tmp_path, capsys, document, why):
    code, _, err = _check(capsys, tmp_path, document, made["vkey"])
    assert code == 1
    assert why in err


def test_the_installed_command_checks_a_receipt_file(made, tmp_path):
    if not VERIFY.exists():
        pytest.skip(f"no sovra-verify beside {sys.executable}: pip install -e . installs it")
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(made["access"]))
    ran = subprocess.run(
        [str(VERIFY), "receipt", str(path), "--vkey", made["vkey"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["verified"] is True


def test_the_worked_example_of_docs_ledger_checks(tmp_path, capsys):
    text = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text(encoding="utf-8")
    receipt = json.loads(re.search(r"```json\n(\{\"origin\".*?)\n```", text, re.DOTALL)[1])
    vkey = re.search(r"```\n(example\.sovra\.dev/log\+[0-9a-f]{8}\+\S+)\n```", text)[1]
    code, out, err = _check(capsys, tmp_path, receipt, vkey, b"beta")
    assert code == 0, err
    assert json.loads(out)["receipts"][0]["index"] == 1
    code, _, _ = _check(capsys, tmp_path, receipt, vkey, b"gamma")
    assert code == EXIT_UNVERIFIED
