"""The two flows end to end on the embedded default, and the security properties.

Every property of DESIGN.md that a test can pin is pinned here: no plaintext without a
logged allow, denies are logged, tampering with stored bytes is detected, bad input
changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.deployment import Deployment
from sovra.errors import (
    BadRequest,
    Denied,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
    VerificationError,
)
from sovra.ledger import verify_checkpoint, verify_entry_inclusion
from sovra.model import Grant, LogEntry, Principal
from sovra.policy import sign_grant
from sovra.store import SMALL_BLOBS_NAME

PESEL = "44051401359"
ANNA = "anna@example.pl"
LAN = "lan@example.vn"
ANNA_TEXT = f"Anna Kowalska, PESEL {PESEL}, tel. +48 601 234 567, prosi o kontakt."
LAN_TEXT = "Nguyễn Thị Lan, điện thoại +84 912 345 678, hỏi về đơn hàng."


def _entry(dep: Deployment, index: int) -> LogEntry:
    return LogEntry.from_bytes(dep.gateway.log.entry(index))


def _ingest_pair(dep: Deployment, principals: dict[str, object]) -> tuple[str, str]:
    gw = dep.gateway
    a = gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=ANNA_TEXT)
    b = gw.ingest(principals["svc-vn"], subject_id=LAN, jurisdiction="VN", content=LAN_TEXT)
    return a.record_id, b.record_id


def _grant(dep: Deployment, clock, *, subjects=(LAN,), approver="VN", key=None, days=7) -> Grant:
    now = int(clock())
    body = Grant(
        grant_id="g-1",
        grantee="authority-us",
        grantee_jurisdiction="US",
        approver=approver,
        subjects=tuple(subjects),
        purpose="foreign-legal-process",
        legal_basis="MLA 2026/1",
        not_before=now - 10,
        not_after=now + days * 86400,
    )
    return sign_grant(body, key or dep.authority_key(approver))


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# -- ingest ----------------------------------------------------------------------------------


def test_ingest_seals_places_logs_and_minimises(dep, principals, root):
    gw = dep.gateway
    r = gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=ANNA_TEXT)
    assert r.region == "eu-central-pl"
    assert r.findings == {"pl_pesel": 1, "phone": 1}
    assert r.actions["pl_pesel"] == "tokenize"
    entry = _entry(dep, r.receipt.index)
    assert entry.kind == "ingest"
    assert entry.fields["record"] == r.record_id
    # the log is public: it names the subject only by commitment, never by id or content
    raw = gw.log.entry(r.receipt.index)
    assert ANNA.encode() not in raw and PESEL.encode() not in raw
    assert entry.fields["subject"] == gw.commitment("PL", ANNA)
    # residency: the blob sits in PL's region folder only, and no file holds plaintext
    assert [p.parent.name for p in _small_blob_files(root, r.record_id)] == ["eu-central-pl"]
    for path in _files_under(root):
        data = path.read_bytes()
        assert PESEL.encode() not in data, path
        assert b"Kowalska" not in data, path


def test_ingest_unknown_jurisdiction_changes_nothing(dep, principals):
    gw, size = dep.gateway, dep.gateway.log.size
    with pytest.raises(BadRequest, match="unknown jurisdiction 'FR'"):
        gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="FR", content="x")
    with pytest.raises(BadRequest, match="two upper-case letters"):
        gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="pl", content="x")
    assert gw.log.size == size
    assert gw.store.count_records() == 0


def test_ingest_oversized_record_changes_nothing(dep, principals):
    gw, size = dep.gateway, dep.gateway.log.size
    big = "a" * (dep.config.max_record_bytes + 1)
    with pytest.raises(PayloadTooLarge, match="at most"):
        gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=big)
    assert gw.log.size == size
    assert gw.store.count_records() == 0


def test_minimisation_refusal_is_logged_and_stores_nothing(root, clock, principals):
    config = (
        (root / "sovra.toml").read_text().replace('pl_pesel = "tokenize"', 'pl_pesel = "refuse"')
    )
    (root / "sovra.toml").write_text(config)
    dep = Deployment.open(root, clock=clock)
    try:
        with pytest.raises(BadRequest, match="pl_pesel") as info:
            dep.gateway.ingest(
                dep.store.get_principal("svc-pl"),
                subject_id=ANNA,
                jurisdiction="PL",
                content=ANNA_TEXT,
            )
        assert PESEL not in info.value.message
        entry = _entry(dep, info.value.log_index)
        assert (entry.kind, entry.fields["effect"], entry.fields["action"]) == (
            "decision",
            "deny",
            "ingest",
        )
        assert dep.gateway.store.count_records() == 0
    finally:
        dep.close()


def test_only_services_ingest_and_refusal_is_logged(dep, principals):
    with pytest.raises(Denied) as info:
        dep.gateway.ingest(
            principals["authority-us"], subject_id=ANNA, jurisdiction="PL", content="x"
        )
    assert _entry(dep, info.value.log_index).fields["effect"] == "deny"


# -- access ----------------------------------------------------------------------------------


def test_home_service_reads_minimised_content(dep, principals):
    anna_id, _ = _ingest_pair(dep, principals)
    res = dep.gateway.access(principals["svc-pl"], purpose="customer-support", record_ids=[anna_id])
    text = res.records[anna_id]
    assert "+48 601 234 567" in text  # PL keeps phone numbers
    assert PESEL not in text and "[TOKEN:pl_pesel:" in text  # ...and tokenizes PESELs
    assert res.decision.allow
    assert "home-service-declared-purpose" in res.decision.policies
    decision = _entry(dep, res.decision_receipt.index)
    release = _entry(dep, res.release_receipt.index)
    assert decision.fields["effect"] == "allow"
    assert release.kind == "key_release"
    assert release.fields["decision_index"] == res.decision_receipt.index
    assert res.decision_receipt.index < res.release_receipt.index


def test_undeclared_purpose_is_denied_and_logged(dep, principals):
    anna_id, _ = _ingest_pair(dep, principals)
    with pytest.raises(Denied, match="does not allow services the purpose 'marketing'") as info:
        dep.gateway.access(principals["svc-pl"], purpose="marketing", record_ids=[anna_id])
    assert _entry(dep, info.value.log_index).fields["effect"] == "deny"


def test_foreign_service_is_denied(dep, principals):
    anna_id, _ = _ingest_pair(dep, principals)
    with pytest.raises(Denied, match="foreign access needs judicial assistance"):
        dep.gateway.access(principals["svc-vn"], purpose="customer-support", record_ids=[anna_id])


def test_foreign_authority_needs_a_grant(dep, principals, clock):
    _, lan_id = _ingest_pair(dep, principals)
    gw, us = dep.gateway, principals["authority-us"]
    with pytest.raises(Denied, match="no legal-assistance grant") as info:
        gw.access(us, purpose="foreign-legal-process", record_ids=[lan_id])
    denied = _entry(dep, info.value.log_index)
    assert denied.fields["effect"] == "deny"
    assert denied.fields["records"] == [lan_id]

    grant = _grant(dep, clock)
    dep.governance.register_grant(principals["authority-vn"], grant)
    res = gw.access(us, purpose="foreign-legal-process", record_ids=[lan_id], grant=grant)
    assert "Lan" in res.records[lan_id]
    assert res.decision.policies == ("judicial-assistance-grant",)
    assert res.decision.grant == grant.digest()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad-signature", "not signed by the VN authority"),
        ("other-subject", "does not name the subject"),
        ("expired", "expired"),
        ("not-yet-valid", "not valid before"),
        ("revoked", "revoked"),
        ("wrong-purpose", "covers purpose"),
        ("other-grantee", "was issued to authority-cn"),
        ("wrong-approver", "approved by PL"),
    ],
)
def test_bad_grants_are_denied_and_logged(dep, principals, clock, case, message):
    _, lan_id = _ingest_pair(dep, principals)
    gw = dep.gateway
    grant = _grant(dep, clock)
    purpose = "foreign-legal-process"
    if case == "bad-signature":
        grant = _grant(dep, clock, key=Ed25519PrivateKey.generate())
    elif case == "other-subject":
        grant = _grant(dep, clock, subjects=("someone.else@example.vn",))
    elif case == "expired":
        clock.now += 8 * 86400
    elif case == "not-yet-valid":
        clock.now -= 3600
    elif case == "wrong-purpose":
        grant = sign_grant(replace(grant, purpose="customs"), dep.authority_key("VN"))
    elif case == "other-grantee":
        grant = sign_grant(replace(grant, grantee="authority-cn"), dep.authority_key("VN"))
    elif case == "wrong-approver":
        grant = _grant(dep, clock, approver="PL")
    if case != "bad-signature":  # a forged grant cannot be registered (tested below)
        dep.governance.register_grant(principals[f"authority-{grant.approver.lower()}"], grant)
    if case == "revoked":
        dep.governance.revoke_grant(principals["authority-vn"], grant.grant_id)
    size = gw.log.size
    with pytest.raises(Denied, match=message) as info:
        gw.access(principals["authority-us"], purpose=purpose, record_ids=[lan_id], grant=grant)
    assert info.value.log_index == size  # the deny is the entry appended by this request
    assert _entry(dep, size).fields["effect"] == "deny"


def test_bulk_collection_is_denied_and_logged(dep, principals):
    gw = dep.gateway
    limit = dep.config.request_subject_limit
    for i in range(limit + 1):
        gw.ingest(principals["svc-vn"], subject_id=f"vn-{i}", jurisdiction="VN", content=f"đơn {i}")
    with pytest.raises(Denied, match="bulk-collection limit") as info:
        gw.access(principals["authority-cn"], purpose="foreign-legal-process", jurisdiction="VN")
    entry = _entry(dep, info.value.log_index)
    assert entry.fields["policies"] == ["bulk-collection-per-request"]
    assert len(entry.fields["subjects"]) == limit + 1
    # even the home service may not pull more than the limit in one request
    with pytest.raises(Denied, match="bulk-collection limit"):
        gw.access(principals["svc-vn"], purpose="customer-support", jurisdiction="VN")


def test_window_budget_stops_slow_enumeration(dep, principals):
    gw = dep.gateway
    window = dep.config.window_subject_limit
    ids = [
        gw.ingest(
            principals["svc-pl"], subject_id=f"pl-{i}", jurisdiction="PL", content="x"
        ).record_id
        for i in range(window + 1)
    ]
    svc = principals["svc-pl"]
    step = dep.config.request_subject_limit
    for start in range(0, window, step):
        gw.access(svc, purpose="billing", record_ids=ids[start : start + step])
    with pytest.raises(Denied, match="sliding-window budget"):
        gw.access(svc, purpose="billing", record_ids=[ids[window]])


def test_operator_never_reads(dep, principals):
    anna_id, _ = _ingest_pair(dep, principals)
    with pytest.raises(Denied, match="may never read") as info:
        dep.gateway.access(
            principals["operator"], purpose="service-operation", record_ids=[anna_id]
        )
    assert _entry(dep, info.value.log_index).fields["effect"] == "deny"


def test_unknown_record_is_not_found_and_logs_nothing(dep, principals):
    _ingest_pair(dep, principals)
    size = dep.gateway.log.size
    with pytest.raises(NotFound):
        dep.gateway.access(principals["svc-pl"], purpose="billing", record_ids=["r-nope"])
    with pytest.raises(BadRequest, match="exactly one"):
        dep.gateway.access(principals["svc-pl"], purpose="billing")
    with pytest.raises(BadRequest, match="purpose"):
        dep.gateway.access(principals["svc-pl"], purpose="Bad Purpose!", record_ids=["r-x"])
    assert dep.gateway.log.size == size


# -- no plaintext without a logged allow --------------------------------------------------------


def test_every_released_key_was_backed_by_a_logged_allow(dep, principals, clock):
    """Intercept every custodian: each successful unwrap must present an allow that is in the
    log at the receipt's index, for that record, by that requester."""
    gw = dep.gateway
    releases: list[tuple[str, object, str]] = []
    for custodian in gw.custodians.values():
        original = custodian.unwrap_many
        original_batches = custodian.unwrap_batches

        def spy(items, authorization, requester, _orig=original):
            keys = _orig(items, authorization, requester)
            releases.extend((header.record_id, authorization, requester) for _, header in items)
            return keys

        def spy_batches(requests, _orig=original_batches):
            released = _orig(requests)
            for (items, authorization, requester), keys in zip(requests, released, strict=True):
                if isinstance(keys, list):
                    releases.extend(
                        (header.record_id, authorization, requester) for _, header in items
                    )
            return released

        custodian.unwrap_many = spy  # type: ignore[method-assign]
        custodian.unwrap_batches = spy_batches  # type: ignore[method-assign]
    anna_id, lan_id = _ingest_pair(dep, principals)
    grant = _grant(dep, clock)
    dep.governance.register_grant(principals["authority-vn"], grant)
    attempts = [
        ("svc-pl", "customer-support", [anna_id], None),
        ("svc-pl", "customer-support", [lan_id], None),
        ("svc-vn", "billing", [lan_id], None),
        ("authority-us", "foreign-legal-process", [lan_id], None),
        ("authority-us", "foreign-legal-process", [lan_id], grant),
        ("authority-cn", "foreign-legal-process", [lan_id], grant),
        ("operator", "service-operation", [anna_id, lan_id], None),
    ]
    allowed = 0
    for who, purpose, ids, g in attempts:
        try:
            gw.access(principals[who], purpose=purpose, record_ids=ids, grant=g)
            allowed += 1
        except Denied:
            pass
    assert allowed == 3
    assert len(releases) == 3
    for record_id, authorization, requester in releases:
        logged = gw.log.entry(authorization.receipt.index)
        assert logged == authorization.entry
        entry = LogEntry.from_bytes(logged)
        assert entry.fields["effect"] == "allow"
        assert record_id in entry.fields["records"]
        assert entry.principal == requester


def test_custodian_refuses_without_a_logged_allow(dep, principals):
    anna_id, _ = _ingest_pair(dep, principals)
    meta = dep.store.get_record(anna_id)
    custodian = dep.gateway.custodians["PL"]
    with pytest.raises(Denied, match="logged allow"):
        custodian.unwrap(meta.wrapped_key, meta.header, None, "operator")
    # a deny that IS in the log does not unlock anything either
    with pytest.raises(Denied) as info:
        dep.gateway.access(principals["svc-vn"], purpose="billing", record_ids=[anna_id])
    from sovra.model import ReleaseAuthorization

    index = info.value.log_index
    deny = dep.gateway.log.entry(index)
    receipt = dep.gateway.log.append(b"{}", ())  # any genuine receipt, for another entry
    with pytest.raises((Denied, VerificationError), match=r"receipt|allow"):
        custodian.unwrap(
            meta.wrapped_key, meta.header, ReleaseAuthorization(deny, receipt), "svc-vn"
        )


# -- tampering ---------------------------------------------------------------------------------


def _small_blob_files(root: Path, record_id: str) -> list[Path]:
    """The regions' small-blob files that hold *record_id*'s blob."""
    found = []
    for path in sorted((root / "blobs").glob(f"*/{SMALL_BLOBS_NAME}")):
        with closing(sqlite3.connect(path)) as db:
            if db.execute("SELECT 1 FROM blobs WHERE key = ?", (record_id,)).fetchone():
                found.append(path)
    return found


def _read_blob(root: Path, record_id: str) -> bytes:
    [path] = _small_blob_files(root, record_id)
    with closing(sqlite3.connect(path)) as db:
        return bytes(db.execute("SELECT data FROM blobs WHERE key = ?", (record_id,)).fetchone()[0])


def _write_blob(root: Path, record_id: str, data: bytes) -> None:
    """Change the stored bytes behind the store's back, as someone with the file could."""
    [path] = _small_blob_files(root, record_id)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE blobs SET data = ? WHERE key = ?", (data, record_id))


def test_flipping_any_blob_byte_fails_loudly_and_restoring_recovers(dep, principals, root):
    anna_id, _ = _ingest_pair(dep, principals)
    original = _read_blob(root, anna_id)
    svc = principals["svc-pl"]
    for position in range(len(original)):
        tampered = bytearray(original)
        tampered[position] ^= 0x01
        _write_blob(root, anna_id, bytes(tampered))
        with pytest.raises(IntegrityError, match=anna_id):
            dep.gateway.access(svc, purpose="billing", record_ids=[anna_id])
    _write_blob(root, anna_id, original)
    assert (
        PESEL
        not in dep.gateway.access(svc, purpose="billing", record_ids=[anna_id]).records[anna_id]
    )


def test_truncated_or_swapped_blob_fails(dep, principals, root):
    anna_id, lan_id = _ingest_pair(dep, principals)
    original = _read_blob(root, anna_id)
    _write_blob(root, anna_id, original[:-1])
    with pytest.raises(IntegrityError):
        dep.gateway.access(principals["svc-pl"], purpose="billing", record_ids=[anna_id])
    _write_blob(root, anna_id, _read_blob(root, lan_id))  # another record's valid ciphertext
    with pytest.raises(IntegrityError):
        dep.gateway.access(principals["svc-pl"], purpose="billing", record_ids=[anna_id])


def test_flipping_any_wrapped_key_byte_fails_loudly(dep, principals, root):
    anna_id, _ = _ingest_pair(dep, principals)
    original = dep.store.get_record(anna_id).wrapped_key.blob
    db = sqlite3.connect(root / "sovra.db")
    table, column = _wrapped_key_column(db)
    try:
        for position in range(len(original)):
            tampered = bytearray(original)
            tampered[position] ^= 0x80
            with db:
                db.execute(
                    f"UPDATE {table} SET {column} = ? WHERE record_id = ?",
                    (bytes(tampered), anna_id),
                )
            with pytest.raises(IntegrityError):
                dep.gateway.access(principals["svc-pl"], purpose="billing", record_ids=[anna_id])
    finally:
        with db:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE record_id = ?", (original, anna_id))
        db.close()
    dep.gateway.access(principals["svc-pl"], purpose="billing", record_ids=[anna_id])


def _wrapped_key_column(db: sqlite3.Connection) -> tuple[str, str]:
    """Find the column holding wrapped keys, so the test does not pin the schema."""
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        cols = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        wrapped = [
            c
            for c in cols
            if "wrapped" in c
            and ("blob" in c or "key" in c)
            and "version" not in c
            and "jurisdiction" not in c
        ]
        if "record_id" in cols and wrapped:
            return table, wrapped[0]
    raise AssertionError("no wrapped-key column found")


# -- the subject's report ----------------------------------------------------------------------


def test_subject_report_lists_everything_with_proofs(dep, principals, clock):
    anna_id, _ = _ingest_pair(dep, principals)
    gw = dep.gateway
    gw.access(principals["svc-pl"], purpose="customer-support", record_ids=[anna_id])
    with pytest.raises(Denied):
        gw.access(principals["authority-us"], purpose="foreign-legal-process", record_ids=[anna_id])
    report = dep.governance.subject_report(
        principals["subject-anna"], jurisdiction="PL", subject_id=ANNA
    )
    entries = [LogEntry.from_bytes(e.entry) for e in report.entries]
    assert [e.kind for e in entries] == [
        "ingest",
        "decision",
        "key_release",
        "decision",
        "decision",
    ]
    # the report itself is a decision about her, logged (allowed) before it is taken
    assert entries[-1].fields["action"] == "report"
    assert entries[-1].fields["effect"] == "allow"
    assert entries[-1].fields["policies"] == ["report-to-subject-or-home-authority"]
    checkpoint = verify_checkpoint(report.checkpoint, gw.log.verifier_key)
    for e in report.entries:
        verify_entry_inclusion(e.entry, e.index, list(e.proof), checkpoint)
    # an altered proof or entry does not verify
    e = report.entries[0]
    bad = [bytes([e.proof[0][0] ^ 1]) + e.proof[0][1:], *e.proof[1:]]
    with pytest.raises(VerificationError):
        verify_entry_inclusion(e.entry, e.index, bad, checkpoint)
    with pytest.raises(VerificationError):
        verify_entry_inclusion(
            e.entry.replace(b"ingest", b"ingesT"), e.index, list(e.proof), checkpoint
        )


def test_subject_report_is_only_for_the_subject_or_home_authority(dep, principals):
    _ingest_pair(dep, principals)
    dep.governance.subject_report(principals["authority-pl"], jurisdiction="PL", subject_id=ANNA)
    with pytest.raises(Denied) as info:
        dep.governance.subject_report(
            principals["authority-us"], jurisdiction="PL", subject_id=ANNA
        )
    assert _entry(dep, info.value.log_index).fields["effect"] == "deny"
    with pytest.raises(Denied):
        dep.governance.subject_report(principals["subject-anna"], jurisdiction="VN", subject_id=LAN)


def test_an_unregistered_or_substituted_grant_is_denied(dep, principals, clock):
    _, lan_id = _ingest_pair(dep, principals)
    gw, us = dep.gateway, principals["authority-us"]
    grant = _grant(dep, clock)
    with pytest.raises(Denied, match="not registered"):
        gw.access(us, purpose="foreign-legal-process", record_ids=[lan_id], grant=grant)
    dep.governance.register_grant(principals["authority-vn"], grant)
    wider = sign_grant(replace(grant, not_after=grant.not_after + 10**6), dep.authority_key("VN"))
    with pytest.raises(Denied, match="differs from the grant registered"):
        gw.access(us, purpose="foreign-legal-process", record_ids=[lan_id], grant=wider)
    with pytest.raises(BadRequest):
        dep.governance.register_grant(principals["authority-vn"], wider)  # the id is taken


def test_a_grant_with_a_bad_signature_is_not_registered(dep, principals, clock):
    forged = _grant(dep, clock, key=Ed25519PrivateKey.generate())
    with pytest.raises(Denied, match="not signed") as info:
        dep.governance.register_grant(principals["authority-us"], forged)
    with pytest.raises(NotFound):
        dep.governance.get_grant(forged.grant_id)
    assert _entry(dep, info.value.log_index).fields["action"] == "register-grant"


def test_principal_constructor_rejects_bad_keys():
    with pytest.raises(BadRequest):
        Principal("x", "PL", "service", b"short")  # type: ignore[arg-type]
    assert json.loads(Grant.from_json(_minimal_grant()).to_json())["grant_id"] == "g"


def _minimal_grant() -> bytes:
    return json.dumps(
        {
            "approver": "VN",
            "grant_id": "g",
            "grantee": "a",
            "grantee_jurisdiction": "US",
            "legal_basis": "x",
            "not_after": 2,
            "not_before": 1,
            "purpose": "p",
            "subjects": ["s"],
        }
    ).encode()


# -- minimisation per purpose, and reveal -----------------------------------------------------

IBAN = "PL61 1090 1014 0000 0712 1981 2874"
BILLING_TEXT = f"Anna Kowalska, PESEL {PESEL}, konto {IBAN}, faktura 7/2026."


def test_purpose_picks_the_rule_and_is_logged_without_values(dep, principals):
    gw = dep.gateway
    base = gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=BILLING_TEXT)
    billing = gw.ingest(
        principals["svc-pl"],
        subject_id=ANNA,
        jurisdiction="PL",
        content=BILLING_TEXT,
        purpose="billing",
    )
    assert base.actions == {"iban": "redact", "pl_pesel": "tokenize"}
    assert billing.actions == {"iban": "seal", "pl_pesel": "tokenize"}
    entry = _entry(dep, billing.receipt.index)
    assert entry.fields["purpose"] == "billing"
    assert entry.fields["actions"] == {"iban": "seal", "pl_pesel": "tokenize"}
    raw = dep.gateway.log.entry(billing.receipt.index).decode()
    assert PESEL not in raw and IBAN not in raw and IBAN.replace(" ", "") not in raw
    assert "purpose" not in _entry(dep, base.receipt.index).fields

    read = gw.access(
        principals["svc-pl"],
        purpose="customer-support",
        record_ids=[base.record_id, billing.record_id],
    )
    assert "[REDACTED:iban]" in read.records[base.record_id]
    stored = read.records[billing.record_id]
    assert "[SEALED:iban:" in stored and "[TOKEN:pl_pesel:" in stored
    assert IBAN not in stored and PESEL not in stored
    # One subject, one value: the same token in both records.
    tokens = {t.body for r in read.records.values() for t in _spans(r) if t.mode == "tokenize"}
    assert len(tokens) == 1


def _spans(text):
    from sovra.classify import protected_spans

    return protected_spans(text)


def test_home_authority_reveals_and_the_reveal_is_logged(dep, principals):
    gw = dep.gateway
    r = gw.ingest(
        principals["svc-pl"],
        subject_id=ANNA,
        jurisdiction="PL",
        content=BILLING_TEXT,
        purpose="billing",
    )
    res = gw.access(
        principals["authority-pl"],
        purpose="domestic-legal-process",
        justification="domestic-legal-process",
        record_ids=[r.record_id],
        reveal=True,
    )
    # The token gives back the canonical value; the sealed IBAN its exact text.
    assert res.records[r.record_id] == BILLING_TEXT
    decision = _entry(dep, res.decision_receipt.index)
    assert (decision.fields["action"], decision.fields["effect"]) == ("reveal", "allow")
    release = _entry(dep, res.release_receipt.index)
    assert release.fields["action"] == "reveal"
    assert res.decision_receipt.index < res.release_receipt.index
    pl = gw.custodians["PL"]
    assert [e.outcome for e in pl.journal() if e.operation == "reveal"] == ["revealed"]


def test_subject_reveals_her_own_record(dep, principals):
    gw = dep.gateway
    r = gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=ANNA_TEXT)
    res = gw.access(
        principals["subject-anna"],
        purpose="subject-access",
        record_ids=[r.record_id],
        justification="subject-request",
        reveal=True,
    )
    assert res.records[r.record_id] == ANNA_TEXT


def test_a_service_may_read_but_not_reveal_and_the_deny_is_logged(dep, principals):
    gw = dep.gateway
    r = gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=ANNA_TEXT)
    size = gw.log.size
    with pytest.raises(Denied, match="reveal the values") as info:
        gw.access(
            principals["svc-pl"], purpose="customer-support", record_ids=[r.record_id], reveal=True
        )
    entry = _entry(dep, info.value.log_index)
    assert (entry.kind, entry.fields["action"], entry.fields["effect"]) == (
        "decision",
        "reveal",
        "deny",
    )
    assert gw.log.size == size + 1  # the deny, and no key release
    assert not [e for e in gw.custodians["PL"].journal() if e.operation == "reveal"]


def test_a_reveal_for_a_foreign_authority_without_a_grant_is_denied(dep, principals):
    gw = dep.gateway
    r = gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=ANNA_TEXT)
    with pytest.raises(Denied):
        gw.access(
            principals["authority-us"],
            purpose="foreign-legal-process",
            record_ids=[r.record_id],
            reveal=True,
        )


def test_text_that_looks_like_a_token_is_left_as_written(dep, principals):
    gw = dep.gateway
    fake = "[TOKEN:pl_pesel:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo]"
    r = gw.ingest(
        principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=f"note {fake} end"
    )
    res = gw.access(
        principals["subject-anna"],
        purpose="subject-access",
        record_ids=[r.record_id],
        justification="subject-request",
        reveal=True,
    )
    assert res.records[r.record_id] == f"note {fake} end"


def test_unknown_purpose_stores_and_logs_nothing(dep, principals):
    gw = dep.gateway
    size = gw.log.size
    with pytest.raises(BadRequest, match="not 'marketing'"):
        gw.ingest(
            principals["svc-pl"],
            subject_id=ANNA,
            jurisdiction="PL",
            content=ANNA_TEXT,
            purpose="marketing",
        )
    assert gw.log.size == size
    assert dep.store.records_for_subject(gw.commitment("PL", ANNA)) == []


def test_shredded_subject_ingest_with_tokens_is_refused(dep, principals):
    gw = dep.gateway
    gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=ANNA_TEXT)
    dep.governance.shred(principals["authority-pl"], jurisdiction="PL", subject_id=ANNA)
    with pytest.raises(BadRequest, match="crypto-shredded"):
        gw.ingest(principals["svc-pl"], subject_id=ANNA, jurisdiction="PL", content=ANNA_TEXT)
