"""The custodian: wraps bound to jurisdiction, version, header; release only on a logged allow."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, ConfigError, Denied, IntegrityError
from sovra.keys import local as local_module
from sovra.keys import open_blob, seal
from sovra.keys.custodian import BaseCustodian
from sovra.keys.files import write_secret
from sovra.keys.local import LocalCustodian
from sovra.keys.protocol import Custodian, JournalEntry
from sovra.model import (
    Decision,
    LogReceipt,
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    subject_commitment,
)

NOW = 1_750_000_000_000
MAX_AGE = 300_000
ALICE = subject_commitment(b"c" * 32, "PL", "alice")
BOB = subject_commitment(b"c" * 32, "PL", "bob")
REQUESTER = "svc-support"


@dataclass
class FakeClock:
    now: int = NOW

    def __call__(self) -> int:
        return self.now


def header(record_id: str = "rec-1", subject: str = ALICE, **changes: Any) -> RecordHeader:
    base = RecordHeader(
        record_id=record_id,
        subject=subject,
        jurisdiction="PL",
        region="eu-central",
        kek_version=1,
    )
    return replace(base, **changes)


def decision(
    *,
    allow: bool = True,
    records: tuple[str, ...] = ("rec-1",),
    subjects: tuple[str, ...] = (ALICE,),
    principal: str = REQUESTER,
) -> Decision:
    return Decision(
        decision_id="dec-1",
        allow=allow,
        reason="customer asked for a copy",
        principal=principal,
        purpose="customer-support",
        records=records,
        subjects=subjects,
        policies=("pl-default",),
    )


def receipt_for(entry: bytes, log_key: Ed25519PrivateKey, *, index: int = 41) -> LogReceipt:
    unsigned = LogReceipt(
        origin="sovra.test/log",
        index=index,
        leaf_hash=hashlib.sha256(b"\x00" + entry).digest(),
        time_ms=NOW,
    )
    return replace(unsigned, signature=log_key.sign(unsigned.signed_bytes()))


def authorize(
    log_key: Ed25519PrivateKey, *, time_ms: int = NOW, **decision_args: Any
) -> ReleaseAuthorization:
    entry = decision(**decision_args).to_entry(time_ms).to_bytes()
    return ReleaseAuthorization(entry=entry, receipt=receipt_for(entry, log_key))


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "custodian-PL.json"


@pytest.fixture
def pl(key_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock) -> LocalCustodian:
    return LocalCustodian.create(
        key_path, "PL", log_key.public_key(), clock=clock, max_authorization_age_ms=MAX_AGE
    )


def wrapped_for(custodian: LocalCustodian, hdr: RecordHeader | None = None) -> WrappedKey:
    return custodian.wrap(bytes(range(32)), hdr or header())


# --- the full path ----------------------------------------------------------------------


def test_seal_wrap_unwrap_open(pl: LocalCustodian, log_key: Ed25519PrivateKey) -> None:
    hdr = header()
    blob, data_key = seal(hdr, b"alice's address")
    wrapped = pl.wrap(data_key, hdr)
    assert (wrapped.jurisdiction, wrapped.kek_version) == ("PL", 1)
    assert data_key not in wrapped.blob
    released = pl.unwrap(wrapped, hdr, authorize(log_key), REQUESTER)
    assert released == data_key
    assert open_blob(hdr, blob, released) == b"alice's address"


def test_local_custodian_satisfies_the_protocol(pl: LocalCustodian) -> None:
    assert isinstance(pl, Custodian)
    assert isinstance(pl, BaseCustodian)
    assert pl.jurisdiction == "PL"
    assert pl.current_kek_version == 1


def test_base_custodian_cannot_be_used_without_the_private_methods() -> None:
    with pytest.raises(TypeError):
        BaseCustodian("PL", Ed25519PrivateKey.generate().public_key())  # type: ignore[abstract]


# --- wrap refusals ----------------------------------------------------------------------


def test_wrap_refuses_another_jurisdiction(pl: LocalCustodian) -> None:
    with pytest.raises(BadRequest, match="belongs to jurisdiction DE; custodian PL"):
        pl.wrap(bytes(32), header(jurisdiction="DE"))
    assert pl.journal()[-1].outcome == "refused"


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_wrap_refuses_data_keys_that_are_not_32_bytes(pl: LocalCustodian, size: int) -> None:
    with pytest.raises(BadRequest, match=f"32 bytes, got {size}"):
        pl.wrap(bytes(size), header())


def test_wrap_refuses_a_header_naming_another_kek_version(pl: LocalCustodian) -> None:
    with pytest.raises(BadRequest, match="names KEK version 2, but custodian PL wraps new keys"):
        pl.wrap(bytes(32), header(kek_version=2))


# --- tampering: every byte of the wrapped key, every field of the header -----------------


def test_flipping_any_byte_of_the_wrapped_key_fails(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    wrapped = wrapped_for(pl)
    authorization = authorize(log_key)
    assert pl.unwrap(wrapped, header(), authorization, REQUESTER) == bytes(range(32))
    for position in range(len(wrapped.blob)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(wrapped.blob)
            tampered[position] ^= mask
            with pytest.raises(IntegrityError) as info:
                pl.unwrap(
                    replace(wrapped, blob=bytes(tampered)), header(), authorization, REQUESTER
                )
            assert str(info.value) == "wrapped key of record rec-1 failed authentication"


@pytest.mark.parametrize(
    "blob", [b"", b"\x00", bytes(27), bytes(4097)], ids=["empty", "one", "short", "huge"]
)
def test_malformed_wrapped_blob_fails(
    pl: LocalCustodian, log_key: Ed25519PrivateKey, blob: bytes
) -> None:
    with pytest.raises(IntegrityError) as info:
        pl.unwrap(WrappedKey("PL", 1, blob), header(), authorize(log_key), REQUESTER)
    assert str(info.value) == "wrapped key of record rec-1 failed authentication"


@pytest.mark.parametrize(
    "change",
    [{"record_id": "rec-2"}, {"subject": BOB}, {"region": "eu-west"}, {"kek_version": 1}],
    ids=lambda change: next(iter(change)),
)
def test_wrapped_key_moved_to_another_header_fails(
    key_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock, change: dict[str, Any]
) -> None:
    # Both versions hold the same KEK, so only the binding can make the version change fail.
    same = bytes(range(32, 64))
    pl = LocalCustodian(key_path, "PL", log_key.public_key(), {1: same, 2: same}, clock=clock)
    original = header(kek_version=2)
    wrapped = pl.wrap(bytes(32), original)
    moved = replace(original, **change)
    authorization = authorize(log_key, records=("rec-1", "rec-2"), subjects=(ALICE, BOB))
    with pytest.raises(IntegrityError, match="failed authentication"):
        pl.unwrap(wrapped, moved, authorization, REQUESTER)
    assert pl.unwrap(wrapped, original, authorization, REQUESTER) == bytes(32)


def test_wrapped_key_relabelled_to_another_kek_version_fails(
    key_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    same = bytes(range(32, 64))
    pl = LocalCustodian(key_path, "PL", log_key.public_key(), {1: same, 2: same}, clock=clock)
    hdr = header(kek_version=2)
    wrapped = pl.wrap(bytes(32), hdr)
    for version in (1, 3):
        with pytest.raises(IntegrityError):
            pl.unwrap(replace(wrapped, kek_version=version), hdr, authorize(log_key), REQUESTER)
    assert pl.unwrap(wrapped, hdr, authorize(log_key), REQUESTER) == bytes(32)


def test_wrapped_key_moved_to_another_jurisdiction_fails(
    tmp_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    # Same KEK in both custodians: the jurisdiction in the associated data is what refuses.
    same = {1: bytes(range(32))}
    pl = LocalCustodian(tmp_path / "pl", "PL", log_key.public_key(), same, clock=clock)
    de = LocalCustodian(tmp_path / "de", "DE", log_key.public_key(), same, clock=clock)
    wrapped = pl.wrap(bytes(32), header())
    de_header = header(jurisdiction="DE")
    with pytest.raises(IntegrityError):
        de.unwrap(replace(wrapped, jurisdiction="DE"), de_header, authorize(log_key), REQUESTER)
    # Unrelabelled, DE refuses the foreign label just the same.
    with pytest.raises(IntegrityError):
        de.unwrap(wrapped, de_header, authorize(log_key), REQUESTER)
    # And PL will not look at a DE header at all.
    with pytest.raises(BadRequest, match="belongs to jurisdiction DE"):
        pl.unwrap(wrapped, de_header, authorize(log_key), REQUESTER)


def test_another_custodians_kek_cannot_open(
    tmp_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    first = LocalCustodian.create(tmp_path / "a", "PL", log_key.public_key(), clock=clock)
    second = LocalCustodian.create(tmp_path / "b", "PL", log_key.public_key(), clock=clock)
    wrapped = wrapped_for(first)
    with pytest.raises(IntegrityError):
        second.unwrap(wrapped, header(), authorize(log_key), REQUESTER)


def test_integrity_cause_goes_to_the_log_only(
    pl: LocalCustodian, log_key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    wrapped = wrapped_for(pl)
    messages = set()
    with caplog.at_level(logging.WARNING, logger="sovra.keys.custodian"):
        for bad in (
            replace(wrapped, kek_version=9),
            replace(wrapped, jurisdiction="DE"),
            replace(wrapped, blob=wrapped.blob[:-1]),
        ):
            with pytest.raises(IntegrityError) as info:
                pl.unwrap(bad, header(), authorize(log_key), REQUESTER)
            messages.add(str(info.value))
    assert messages == {"wrapped key of record rec-1 failed authentication"}
    # The version is associated data of the wrap: a relabelled one fails its tag.
    assert "tag does not verify" in caplog.text
    assert "labelled 'DE'" in caplog.text
    assert "tag does not verify" in caplog.text
    assert pl.journal()[-1].reason == "integrity"


# --- release only against a fresh logged allow -------------------------------------------


def test_unwrap_without_authorization_is_denied(pl: LocalCustodian) -> None:
    with pytest.raises(Denied) as info:
        pl.unwrap(wrapped_for(pl), header(), None, REQUESTER)
    assert str(info.value) == (
        "custodian PL releases keys only against a logged allow; none was presented"
    )


def test_receipt_signed_by_another_key_is_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    entry = decision().to_entry(NOW).to_bytes()
    forged = ReleaseAuthorization(entry, receipt_for(entry, Ed25519PrivateKey.generate()))
    with pytest.raises(Denied, match="receipt signature is not the log's"):
        pl.unwrap(wrapped_for(pl), header(), forged, REQUESTER)


def test_receipt_with_a_mangled_signature_is_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    good = authorize(log_key)
    for signature in (b"", good.receipt.signature[:-1], bytes(64)):
        bad = replace(good, receipt=replace(good.receipt, signature=signature))
        with pytest.raises(Denied, match="receipt signature is not the log's"):
            pl.unwrap(wrapped_for(pl), header(), bad, REQUESTER)


def test_receipt_for_another_entry_is_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    # A genuine receipt, but for a different (also allowing) entry.
    other = decision(records=("rec-9",)).to_entry(NOW).to_bytes()
    entry = decision().to_entry(NOW).to_bytes()
    swapped = ReleaseAuthorization(entry, receipt_for(other, log_key))
    with pytest.raises(Denied, match="receipt does not cover this entry"):
        pl.unwrap(wrapped_for(pl), header(), swapped, REQUESTER)


def test_receipt_fields_changed_after_signing_are_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    good = authorize(log_key)
    bad = replace(good, receipt=replace(good.receipt, index=good.receipt.index + 1))
    with pytest.raises(Denied, match="receipt signature is not the log's"):
        pl.unwrap(wrapped_for(pl), header(), bad, REQUESTER)


def test_logged_deny_is_denied(pl: LocalCustodian, log_key: Ed25519PrivateKey) -> None:
    with pytest.raises(Denied, match="effect is 'deny', not 'allow'"):
        pl.unwrap(wrapped_for(pl), header(), authorize(log_key, allow=False), REQUESTER)


def test_logged_entry_of_another_kind_is_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    # Same fields as an allow, but a different kind of entry.
    entry = replace(decision().to_entry(NOW), kind="key_release").to_bytes()
    authorization = ReleaseAuthorization(entry, receipt_for(entry, log_key))
    with pytest.raises(Denied, match="is a key_release entry, not a decision"):
        pl.unwrap(wrapped_for(pl), header(), authorization, REQUESTER)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (b"not json", "does not parse"),
        (b'{"v":2,"kind":"decision","time_ms":1,"principal":"x"}', "does not parse"),
        (b'{"v":1,"kind":["decision"],"time_ms":1,"principal":"x"}', "does not parse"),
        (b"[" * 5000 + b"]" * 5000, "does not parse"),
    ],
    ids=["not-json", "version", "unhashable-kind", "deep-nesting"],
)
def test_signed_but_malformed_entry_is_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey, entry: bytes, reason: str
) -> None:
    authorization = ReleaseAuthorization(entry, receipt_for(entry, log_key))
    with pytest.raises(Denied, match=reason):
        pl.unwrap(wrapped_for(pl), header(), authorization, REQUESTER)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"records": "rec-1"}, "names no records, neither listed nor by root"),
        ({"records": [["rec-1"]]}, "does not cover this record"),
        ({"subjects": ALICE}, "names no subjects, neither listed nor by root"),
        ({"effect": "ALLOW"}, "not 'allow'"),
        ({"effect": True}, "not 'allow'"),
    ],
    ids=["records-str", "records-nested", "subjects-str", "effect-case", "effect-bool"],
)
def test_allow_with_malformed_members_is_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey, fields: dict[str, Any], reason: str
) -> None:
    base = decision().to_entry(NOW)
    entry = replace(base, fields={**base.fields, **fields}).to_bytes()
    authorization = ReleaseAuthorization(entry, receipt_for(entry, log_key))
    with pytest.raises(Denied, match=reason):
        pl.unwrap(wrapped_for(pl), header(), authorization, REQUESTER)


def test_entry_time_that_is_a_boolean_is_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    entry = json.dumps(
        {
            **decision().to_entry(NOW).fields,
            "kind": "decision",
            "principal": REQUESTER,
            "time_ms": True,
            "v": 1,
        },
        sort_keys=True,
    ).encode()
    authorization = ReleaseAuthorization(entry, receipt_for(entry, log_key))
    with pytest.raises(Denied, match="time_ms must be an integer"):
        pl.unwrap(wrapped_for(pl), header(), authorization, REQUESTER)


def test_oversized_entry_is_denied_before_hashing(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    entry = b" " * (64 * 1024 + 1)
    authorization = ReleaseAuthorization(entry, receipt_for(entry, log_key))
    with pytest.raises(Denied, match="over 65536 bytes"):
        pl.unwrap(wrapped_for(pl), header(), authorization, REQUESTER)


@pytest.mark.parametrize(
    ("decision_args", "reason"),
    [
        ({"records": ("rec-2",)}, "does not cover this record$"),
        ({"records": ()}, "does not cover this record$"),
        ({"subjects": (BOB,)}, "does not cover this record's subject"),
        ({"principal": "svc-other"}, "issued to 'svc-other', not 'svc-support'"),
    ],
    ids=["other-record", "no-records", "other-subject", "other-requester"],
)
def test_allow_for_something_else_is_denied(
    pl: LocalCustodian,
    log_key: Ed25519PrivateKey,
    decision_args: dict[str, Any],
    reason: str,
) -> None:
    with pytest.raises(Denied, match=reason):
        pl.unwrap(wrapped_for(pl), header(), authorize(log_key, **decision_args), REQUESTER)


def test_allow_naming_several_records_releases_each(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    authorization = authorize(log_key, records=("rec-1", "rec-2"), subjects=(ALICE, BOB))
    for hdr in (header(), header("rec-2", BOB)):
        assert pl.unwrap(wrapped_for(pl, hdr), hdr, authorization, REQUESTER) == bytes(range(32))


def test_allow_must_be_fresh(
    pl: LocalCustodian, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    wrapped = wrapped_for(pl)
    authorization = authorize(log_key)
    clock.now = NOW + MAX_AGE  # exactly at the limit: still fresh
    assert pl.unwrap(wrapped, header(), authorization, REQUESTER) == bytes(range(32))
    clock.now = NOW + MAX_AGE + 1
    with pytest.raises(Denied, match=f"is {MAX_AGE + 1} ms old, over the {MAX_AGE} ms limit"):
        pl.unwrap(wrapped, header(), authorization, REQUESTER)


def test_allow_from_the_future_is_denied(
    pl: LocalCustodian, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    wrapped = wrapped_for(pl)
    clock.now = NOW - MAX_AGE
    assert pl.unwrap(wrapped, header(), authorize(log_key), REQUESTER) == bytes(range(32))
    clock.now = NOW - MAX_AGE - 1
    with pytest.raises(Denied, match="in the future"):
        pl.unwrap(wrapped, header(), authorize(log_key), REQUESTER)


def test_age_limit_is_configurable(
    key_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    LocalCustodian.create(key_path, "PL", log_key.public_key())
    strict = LocalCustodian.open(
        key_path, "PL", log_key.public_key(), clock=clock, max_authorization_age_ms=1000
    )
    wrapped = wrapped_for(strict)
    clock.now = NOW + 1001
    with pytest.raises(Denied, match="over the 1000 ms limit"):
        strict.unwrap(wrapped, header(), authorize(log_key), REQUESTER)


def test_policy_checks_come_before_any_decryption(
    pl: LocalCustodian, caplog: pytest.LogCaptureFixture
) -> None:
    # A garbage wrapped key without authorization is a denial, not an integrity error:
    # nothing is decrypted for a caller who has no logged allow.
    with caplog.at_level(logging.WARNING, logger="sovra.keys.custodian"), pytest.raises(Denied):
        pl.unwrap(WrappedKey("PL", 1, b"garbage"), header(), None, REQUESTER)
    assert caplog.text == ""


@pytest.mark.parametrize("requester", ["", "has space", "x" * 200])
def test_unwrap_refuses_a_malformed_requester(
    pl: LocalCustodian, log_key: Ed25519PrivateKey, requester: str
) -> None:
    with pytest.raises(BadRequest, match="requester"):
        pl.unwrap(wrapped_for(pl), header(), authorize(log_key), requester)
    entry = pl.journal()[-1]
    assert entry.outcome == "refused"
    assert entry.requester is not None
    assert len(entry.requester) <= 128


# --- journal -----------------------------------------------------------------------------


def test_journal_records_every_request(
    pl: LocalCustodian, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    wrapped = wrapped_for(pl)
    clock.now += 5
    pl.unwrap(wrapped, header(), authorize(log_key), REQUESTER)
    with pytest.raises(Denied):
        pl.unwrap(wrapped, header(), None, "svc-other")
    with pytest.raises(IntegrityError):
        pl.unwrap(replace(wrapped, blob=bytes(60)), header(), authorize(log_key), REQUESTER)
    with pytest.raises(BadRequest):
        pl.wrap(bytes(3), header())
    journal = pl.journal()
    assert [(e.operation, e.requester, e.record_id, e.outcome) for e in journal] == [
        ("wrap", None, "rec-1", "wrapped"),
        ("unwrap", REQUESTER, "rec-1", "released"),
        ("unwrap", "svc-other", "rec-1", "denied"),
        ("unwrap", REQUESTER, "rec-1", "failed"),
        ("wrap", None, "rec-1", "refused"),
    ]
    assert journal[0].time_ms == NOW
    assert journal[1].time_ms == NOW + 5
    assert "none was presented" in journal[2].reason
    assert all(isinstance(e, JournalEntry) for e in journal)


def test_journal_is_bounded(key_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock) -> None:
    pl = LocalCustodian.create(key_path, "PL", log_key.public_key(), clock=clock, journal_size=3)
    for i in range(5):
        wrapped_for(pl, header(f"rec-{i}"))
    assert [e.record_id for e in pl.journal()] == ["rec-2", "rec-3", "rec-4"]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_authorization_age_ms": 0}, {"journal_size": 0}, {"max_authorization_age_ms": -1}],
)
def test_nonsense_settings_are_config_errors(
    key_path: Path, log_key: Ed25519PrivateKey, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError):
        LocalCustodian(key_path, "PL", log_key.public_key(), {1: bytes(32)}, **kwargs)


# --- key file ----------------------------------------------------------------------------


def test_key_file_is_0600_and_reopens(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    body = json.loads(key_path.read_text())
    assert body["type"] == "sovra-custodian-keys"
    assert body["format"] == 1
    assert body["jurisdiction"] == "PL"
    assert [k["version"] for k in body["keks"]] == [1]
    wrapped = wrapped_for(pl)
    reopened = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=clock)
    assert reopened.unwrap(wrapped, header(), authorize(log_key), REQUESTER) == bytes(range(32))


def test_create_refuses_an_existing_file(pl: LocalCustodian, key_path: Path) -> None:
    before = key_path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        LocalCustodian.create(key_path, "PL", Ed25519PrivateKey.generate().public_key())
    assert key_path.read_bytes() == before


def test_key_file_open_to_others_is_refused(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    key_path.chmod(0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {key_path}"):
        LocalCustodian.open(key_path, "PL", log_key.public_key())


def test_missing_key_file(tmp_path: Path, log_key: Ed25519PrivateKey) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        LocalCustodian.open(tmp_path / "absent.json", "PL", log_key.public_key())


def test_rotation_keeps_old_keys_working(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey, clock: FakeClock
) -> None:
    old = wrapped_for(pl)
    assert pl.rotate() == 2
    assert pl.current_kek_version == 2
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    with pytest.raises(BadRequest, match="wraps new keys under version 2"):
        wrapped_for(pl)
    new = wrapped_for(pl, header(kek_version=2))
    assert new.kek_version == 2
    reopened = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=clock)
    assert reopened.current_kek_version == 2
    auth = authorize(log_key)
    assert reopened.unwrap(old, header(), auth, REQUESTER) == bytes(range(32))
    assert reopened.unwrap(new, header(kek_version=2), auth, REQUESTER) == bytes(range(32))


def test_failed_rotation_changes_nothing(
    pl: LocalCustodian, key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = key_path.read_bytes()

    def refuse(*_: object, **__: object) -> None:
        raise ConfigError("disk full")

    monkeypatch.setattr(local_module, "write_secret", refuse)
    with pytest.raises(ConfigError, match="disk full"):
        pl.rotate()
    assert pl.current_kek_version == 1
    assert key_path.read_bytes() == before


def _rewrite(path: Path, text: str) -> None:
    write_secret(path, text.encode(), overwrite=True)


def _edit(body: dict[str, Any], case: str) -> str:
    kek = body["keks"][0]
    if case == "flipped-key-digit":
        kek["key"] = ("0" if kek["key"][0] != "0" else "1") + kek["key"][1:]
    elif case == "flipped-check-digit":
        kek["check"] = ("0" if kek["check"][0] != "0" else "1") + kek["check"][1:]
    elif case == "renumbered-version":
        kek["version"] = 2
    elif case == "other-jurisdiction":
        body["jurisdiction"] = "DE"
    elif case == "unknown-field":
        body["comment"] = "hello"
    elif case == "unknown-kek-field":
        kek["created"] = 1
    elif case == "missing-field":
        del body["type"]
    elif case == "format-2":
        body["format"] = 2
    elif case == "format-bool":
        body["format"] = True
    elif case == "upper-case-hex":
        kek["key"] = kek["key"].upper()
    elif case == "short-key":
        kek["key"] = kek["key"][:62]
    elif case == "no-keks":
        body["keks"] = []
    elif case == "keks-not-list":
        body["keks"] = {"1": kek}
    elif case == "bool-version":
        kek["version"] = True
    elif case == "duplicate-version":
        body["keks"].append(dict(kek))
    elif case == "other-type":
        body["type"] = "something-else"
    text = json.dumps(body, indent=2)
    if case == "duplicate-field":
        text = text.replace('"format": 1,', '"format": 1, "format": 1,')
    elif case == "nan":
        text = text.replace('"format": 1', '"format": NaN')
    elif case == "truncated":
        text = text[: len(text) // 2]
    return text


TAMPER_CASES = {
    "flipped-key-digit": "does not match its check value",
    "flipped-check-digit": "does not match its check value",
    "renumbered-version": "does not match its check value",
    "other-jurisdiction": "holds keys of jurisdiction 'DE', not 'PL'",
    "unknown-field": r"unknown field\(s\) comment",
    "unknown-kek-field": r"keks\[0\] has unknown field\(s\) created",
    "missing-field": "is missing type",
    "format-2": "format 2 is not 1",
    "format-bool": "format True is not 1",
    "upper-case-hex": "64 lower-case hex",
    "short-key": "64 lower-case hex",
    "no-keks": "keks must be a list",
    "keks-not-list": "keks must be a list",
    "bool-version": "version must be an integer",
    "duplicate-version": r"keks\[1\] version must be an integer above 1",
    "other-type": "type is 'something-else'",
    "duplicate-field": "duplicate field 'format'",
    "nan": "non-standard JSON constant NaN",
    "truncated": "not valid JSON",
}


@pytest.mark.parametrize(("case", "reason"), TAMPER_CASES.items(), ids=list(TAMPER_CASES))
def test_tampered_key_file_is_refused(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey, case: str, reason: str
) -> None:
    _rewrite(key_path, _edit(json.loads(key_path.read_text()), case))
    tampered = key_path.read_bytes()
    with pytest.raises(ConfigError, match=reason) as info:
        LocalCustodian.open(key_path, "PL", log_key.public_key())
    assert str(key_path) in str(info.value)
    assert key_path.read_bytes() == tampered  # refusing never rewrites the file


def test_key_file_that_is_not_utf8_is_refused(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    write_secret(key_path, b"\xff" + key_path.read_bytes(), overwrite=True)
    with pytest.raises(ConfigError, match="not valid JSON"):
        LocalCustodian.open(key_path, "PL", log_key.public_key())


def test_key_file_opened_for_another_jurisdiction_is_refused(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    with pytest.raises(ConfigError, match="holds keys of jurisdiction 'PL', not 'DE'"):
        LocalCustodian.open(key_path, "DE", log_key.public_key())


def test_versions_out_of_order_are_refused(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    pl.rotate()
    body = json.loads(key_path.read_text())
    body["keks"].reverse()
    _rewrite(key_path, json.dumps(body))
    with pytest.raises(ConfigError, match=r"keks\[1\] version must be an integer above 2"):
        LocalCustodian.open(key_path, "PL", log_key.public_key())


def test_oversized_key_file_is_refused(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    # Written around write_secret, which refuses to create a secret this large.
    key_path.write_text(key_path.read_text() + " " * (1024 * 1024))
    key_path.chmod(0o600)
    with pytest.raises(ConfigError, match="over the 1048576-byte limit"):
        LocalCustodian.open(key_path, "PL", log_key.public_key())


def test_invalid_jurisdiction_code(key_path: Path, log_key: Ed25519PrivateKey) -> None:
    with pytest.raises(BadRequest, match="two upper-case letters"):
        LocalCustodian.create(key_path, "pl", log_key.public_key())
    assert not key_path.exists()
