"""The command against a live gateway: ingest, read, refusals, grants, reports and the log.

Every test names its own subjects, so the tests of this module share one server in any
order. Outcomes are checked against the server's own deployment: the record it stored,
the log entry a message points at.
"""

from __future__ import annotations

import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import NoteSigner, verify_checkpoint
from sovra.model import Grant, Role
from sovra.policy import verify_grant_signature

PESEL = "44051401359"
IBAN = "PL61 1090 1014 0000 0712 1981 2874"


def _polish(name: str) -> str:
    return f"Klientka {name}, PESEL {PESEL}, tel. +48 601 234 567, rachunek {IBAN}."


def _log_entry(live, index: int) -> dict[str, object]:
    entry: dict[str, object] = json.loads(live.dep.gateway.log.entry(index))
    return entry


def _logged_index(message: str) -> int:
    found = re.search(r"\(logged at index (\d+)\)$", message)
    assert found, message
    return int(found.group(1))


def test_put_from_a_file_and_from_stdin(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(_polish("Ewa"), encoding="utf-8")
    from_file = sovra(
        *live.args(
            "put", "--as", "svc-pl", "--subject", "ewa@example.pl", "--jurisdiction", "PL", note
        )
    )
    assert from_file.code == 0, from_file.err
    receipt = from_file.json()
    assert receipt["record_id"].startswith("r-")
    assert receipt["region"] == "eu-central-pl"
    assert receipt["actions"]["pl_pesel"] == "tokenize"
    assert _log_entry(live, receipt["log_index"])["kind"] == "ingest"

    from_stdin = sovra(
        *live.args(
            "put", "--as", "svc-pl", "--subject", "ewa@example.pl", "--jurisdiction", "PL", "-"
        ),
        stdin=_polish("Ewa").encode(),
    )
    assert from_stdin.code == 0, from_stdin.err
    second = from_stdin.json()["record_id"]
    assert second != receipt["record_id"]
    ewa = live.dep.gateway.commitment("PL", "ewa@example.pl")
    assert {m.header.record_id for m in live.dep.store.records_for_subject(ewa)} == {
        receipt["record_id"],
        second,
    }


def test_get_by_record_returns_the_minimised_text(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(_polish("Zofia"), encoding="utf-8")
    put = sovra(
        *live.args(
            "put", "--as", "svc-pl", "--subject", "zofia@example.pl", "--jurisdiction", "PL", note
        )
    )
    rid = put.json()["record_id"]

    ran = sovra(
        *live.args("get", "--as", "svc-pl", "--purpose", "customer-support", "--record", rid)
    )
    assert ran.code == 0, ran.err
    body = ran.json()
    assert body["decision"]["effect"] == "allow"
    expected = re.escape(_polish("Zofia").replace(IBAN, "[REDACTED:iban]")).replace(
        re.escape(PESEL), r"\[TOKEN:pl_pesel:[A-Za-z0-9_-]{20,}\]"
    )
    assert list(body["records"]) == [rid]
    assert re.fullmatch(expected, body["records"][rid])
    assert PESEL not in ran.out

    # Her home authority may reveal: the custodian turns the token back.
    revealed = sovra(
        *live.args(
            "get",
            "--as",
            "authority-pl",
            "--purpose",
            "domestic-legal-process",
            "--justification",
            "domestic-legal-process",
            "--record",
            rid,
            "--reveal",
        )
    )
    assert revealed.code == 0, revealed.err
    assert revealed.json()["records"][rid] == _polish("Zofia").replace(IBAN, "[REDACTED:iban]")
    assert revealed.json()["decision"]["action"] == "reveal"

    # The service may not: denied, and the deny is logged.
    refused = sovra(
        *live.args(
            "get", "--as", "svc-pl", "--purpose", "customer-support", "--record", rid, "--reveal"
        )
    )
    assert refused.code == 4
    assert "reveal" in refused.err
    decision = _log_entry(live, body["log_index"])
    assert (decision["principal"], decision["effect"]) == ("svc-pl", "allow")


def test_foreign_authority_needs_a_grant(sovra, live, tmp_path):
    lan = "tran.thi.mai@example.vn"
    text = tmp_path / "lan.txt"
    text.write_text(f"Khách hàng {lan}, điện thoại +84 912 345 678.", encoding="utf-8")
    put = sovra(*live.args("put", "--as", "svc-vn", "--subject", lan, "--jurisdiction", "VN", text))
    assert put.code == 0, put.err
    rid = put.json()["record_id"]
    request = live.args(
        "get",
        "--as",
        "authority-us",
        "--purpose",
        "foreign-legal-process",
        "--subject",
        f"VN:{lan}",
    )

    denied = sovra(*request)
    assert denied.code == 4
    assert denied.out == ""
    assert denied.message.startswith("error denied: ")
    assert "grant" in denied.message
    refusal = _log_entry(live, _logged_index(denied.message))
    assert (refusal["principal"], refusal["effect"]) == ("authority-us", "deny")

    grant_file = tmp_path / "g.json"
    request_file = tmp_path / "request.json"
    requested = sovra(
        *live.args(
            "grant",
            "request",
            "--approver",
            "VN",
            "--grantee",
            "authority-us",
            "--grantee-jurisdiction",
            "US",
            "--subject",
            lan,
            "--days",
            "7",
            "--grant-id",
            "mla-cli-0001",
            "--out",
            request_file,
        )
    )
    assert requested.code == 0, requested.err
    granted = sovra(*live.args("grant", "approve", request_file, "--out", grant_file))
    assert granted.code == 0, granted.err
    shown = re.fullmatch(
        r"grant mla-cli-0001 registered at log index (\d+), written to (.+)", granted.out.strip()
    )
    assert shown, granted.out
    assert shown.group(2) == str(grant_file)
    assert _log_entry(live, int(shown.group(1)))["kind"] == "grant"
    grant = Grant.from_json(grant_file.read_bytes())
    assert (grant.grant_id, grant.grantee, grant.approver, grant.subjects) == (
        "mla-cli-0001",
        "authority-us",
        "VN",
        (lan,),
    )
    assert grant.not_after - grant.not_before == 7 * 86400 + 60
    verify_grant_signature(grant, {"VN": live.dep.authority_key("VN").public_key()})

    allowed = sovra(*request, "--grant", grant_file)
    assert allowed.code == 0, allowed.err
    body = allowed.json()
    assert body["decision"]["effect"] == "allow"
    assert body["decision"]["grant"] == grant.digest()
    assert body["records"] == {rid: f"Khách hàng {lan}, điện thoại +84 912 345 678."}


def test_report_verifies_every_entry_about_the_subject(sovra, live, tmp_path):
    subject = "halina@example.pl"
    live.dep.register(
        "subject-halina", "PL", Role.SUBJECT, subject=live.dep.gateway.commitment("PL", subject)
    )
    note = tmp_path / "note.txt"
    note.write_text(_polish("Halina"), encoding="utf-8")
    rid = sovra(
        *live.args("put", "--as", "svc-pl", "--subject", subject, "--jurisdiction", "PL", note)
    ).json()["record_id"]
    read = sovra(*live.args("get", "--as", "svc-pl", "--purpose", "billing", "--record", rid))
    assert read.code == 0, read.err

    base = live.args(
        "report", "--as", "subject-halina", "--jurisdiction", "PL", "--subject", subject
    )
    ran = sovra(*base, "--json")
    assert ran.code == 0, ran.err
    rows = ran.json()["entries"]
    assert len(rows) >= 2  # the ingest and the read, at least
    assert all(row["verified"] is True for row in rows)
    assert any((r["entry"], r["requester"]) == ("ingest", "svc-pl") for r in rows)
    assert any(
        (r["entry"], r["effect"], r["purpose"]) == ("decision", "allow", "billing") for r in rows
    )
    assert ran.json()["checkpoint_size"] <= live.dep.gateway.log.size

    text = sovra(*base)
    assert text.code == 0, text.err
    summary = re.search(
        r"^(\d+) entries, every inclusion proof verified against the checkpoint of size (\d+)$",
        text.out,
        re.MULTILINE,
    )
    assert summary, text.out
    # The first report is logged too, so the second shows one entry more.
    assert int(summary.group(1)) == len(rows) + 1
    assert int(summary.group(2)) >= ran.json()["checkpoint_size"]
    assert "trusted on first use" in text.message  # no --vkey: the server's own key

    asked = ("report", "--as", "subject-halina", "--jurisdiction", "PL", "--subject", subject)
    pinned = sovra(*live.args(*asked, "--vkey", live.dep.gateway.log.verifier_key))
    assert pinned.code == 0, pinned.err
    assert "trusted on first use" not in pinned.message
    impostor = NoteSigner("sovra.test/cli", Ed25519PrivateKey.generate()).vkey
    refused = sovra(*live.args(*asked, "--vkey", impostor))
    assert refused.code == 3
    assert refused.message.startswith("error verification_failed: ")
    assert "verified" not in refused.out


def test_report_about_someone_else_is_denied(sovra, live):
    live.dep.register(
        "subject-irena",
        "PL",
        Role.SUBJECT,
        subject=live.dep.gateway.commitment("PL", "irena@example.pl"),
    )
    ran = sovra(
        *live.args(
            "report", "--as", "subject-irena", "--jurisdiction", "PL", "--subject", "ewa@example.pl"
        )
    )
    assert ran.code == 4
    assert ran.out == ""
    assert ran.message.startswith("error denied: ")
    assert _log_entry(live, _logged_index(ran.message))["principal"] == "subject-irena"


def test_log_checkpoint_prints_the_signed_note_byte_for_byte(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("nothing sensitive", encoding="utf-8")
    sovra(
        *live.args(
            "put", "--as", "svc-pl", "--subject", "cp@example.pl", "--jurisdiction", "PL", note
        )
    )

    ran = sovra("log", "checkpoint", "--url", live.url)
    assert ran.code == 0, ran.err
    checkpoint = verify_checkpoint(ran.out, live.dep.gateway.log.verifier_key)
    assert checkpoint.origin == "sovra.test/cli"
    assert 1 <= checkpoint.size <= live.dep.gateway.log.size


def test_log_commands_read_the_url_from_sovra_url(live):
    from typer.testing import CliRunner

    from sovra.cli import app

    result = CliRunner().invoke(app, ["log", "checkpoint"], env={"SOVRA_URL": live.url})
    assert result.exit_code == 0, result.output
    verify_checkpoint(result.stdout, live.dep.gateway.log.verifier_key)


def test_log_prove_prints_a_verified_inclusion_proof(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("nothing sensitive", encoding="utf-8")
    sovra(
        *live.args(
            "put", "--as", "svc-pl", "--subject", "prove@example.pl", "--jurisdiction", "PL", note
        )
    )

    ran = sovra("log", "prove", "0", "--url", live.url)
    assert ran.code == 0, ran.err
    # No --vkey: checked against the key the server states, and said so.
    assert "trusted on first use" in ran.message
    body = ran.json()
    assert body["index"] == 0
    assert body["verified"] is True
    assert body["entry"] == _log_entry(live, 0)
    assert 1 <= body["size"] <= live.dep.gateway.log.size
    assert len(body["proof"]) == (body["size"] - 1).bit_length()  # leftmost leaf

    vkey = live.dep.gateway.log.verifier_key
    pinned = sovra("log", "prove", "0", "--url", live.url, "--vkey", vkey)
    assert pinned.code == 0, pinned.err
    assert pinned.err == ""
    assert pinned.json()["entry"] == body["entry"]
    impostor = NoteSigner("sovra.test/cli", Ed25519PrivateKey.generate()).vkey
    refused = sovra("log", "prove", "0", "--url", live.url, "--vkey", impostor)
    assert refused.code == 3
    assert refused.out == ""

    beyond = sovra(
        "log", "prove", str(live.dep.gateway.log.size + 5), "--url", live.url, "--vkey", vkey
    )
    assert beyond.code == 1
    assert beyond.message.startswith("error ")


def test_log_verify_replays_the_whole_log(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("nothing sensitive", encoding="utf-8")
    sovra(
        *live.args(
            "put", "--as", "svc-pl", "--subject", "audit@example.pl", "--jurisdiction", "PL", note
        )
    )

    ran = sovra("log", "verify", "--url", live.url)
    assert ran.code == 0, ran.err
    assert "no --vkey" in ran.message and "trusted on first use" in ran.message
    shown = re.fullmatch(
        r"verified (\d+) entries and (\d+) checkpoints, up to size (\d+) of the (\d+) "
        r"entries the log held: every root recomputed, every signature checked",
        " ".join(ran.out.split()),
    )
    assert shown, ran.out
    entries, checkpoints, size, held = map(int, shown.groups())
    assert 1 <= entries == size == held <= live.dep.gateway.log.size
    assert checkpoints >= 1

    pinned = sovra("log", "verify", "--url", live.url, "--vkey", live.dep.gateway.log.verifier_key)
    assert pinned.code == 0, pinned.err
    assert "trusted on first use" not in pinned.message


def test_log_verify_with_another_key_is_a_verification_failure(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("nothing sensitive", encoding="utf-8")
    sovra(
        *live.args(
            "put", "--as", "svc-pl", "--subject", "other@example.pl", "--jurisdiction", "PL", note
        )
    )
    # Same origin name, another key: a valid vkey that did not sign this log.
    impostor = NoteSigner("sovra.test/cli", Ed25519PrivateKey.generate()).vkey

    ran = sovra("log", "verify", "--url", live.url, "--vkey", impostor)
    assert ran.code == 3
    assert ran.out == ""
    assert ran.message.startswith("error verification_failed: ")


@pytest.mark.parametrize("vkey", ["not-a-vkey", "sovra.test/cli+0000000+AAAA"])
def test_log_verify_with_a_malformed_key_is_a_bad_request(sovra, live, vkey):
    ran = sovra("log", "verify", "--url", live.url, "--vkey", vkey)
    assert ran.code == 1
    assert ran.message.startswith("error bad_request: ")
