"""Protected values: tokens and sealed values only the subject's custodian turns back."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from _allow import logged_allow
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from sovra.errors import BadRequest, Denied, IntegrityError, NotFound
from sovra.keys import LocalCustodian
from sovra.keys.protocol import ValueCustodian
from sovra.keys.values import Mode, open_value, protect_value, value_key
from sovra.model import RecordHeader, ReleaseAuthorization, subject_commitment

ALICE = subject_commitment(b"c" * 32, "PL", "alice")
BOB = subject_commitment(b"c" * 32, "PL", "bob")
REQUESTER = "authority-pl"
PESEL = "44051401359"


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def custodian(tmp_path: Path, log_key: Ed25519PrivateKey) -> Iterator[LocalCustodian]:
    c = LocalCustodian.create(tmp_path / "PL.key", "PL", log_key.public_key())
    yield c
    c.close()


def header(record_id: str = "r-1", subject: str = ALICE) -> RecordHeader:
    return RecordHeader(record_id, subject, "PL", "eu", 1)


def authorize(
    log_key: Ed25519PrivateKey,
    headers: list[RecordHeader],
    *,
    action: str = "reveal",
    allow: bool = True,
    principal: str = REQUESTER,
) -> ReleaseAuthorization:
    return logged_allow(
        log_key,
        headers,
        principal=principal,
        purpose="domestic-legal-process",
        action=action,
        allow=allow,
    )


# -- the construction ------------------------------------------------------------------------


def test_tokens_are_deterministic_and_match_an_independent_aes_siv() -> None:
    key = bytes(range(64))
    token = protect_value(key, Mode.TOKENIZE, "pl_pesel", "r-1", PESEL)
    assert protect_value(key, Mode.TOKENIZE, "pl_pesel", "r-2", PESEL) == token
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    # RFC 5297 with the documented associated data, computed here without sovra's code.
    assert raw == AESSIV(key).encrypt(PESEL.encode(), [b"tokenize", b"pl_pesel"])
    assert "=" not in token and "+" not in token and "/" not in token
    assert open_value(key, Mode.TOKENIZE, "pl_pesel", "r-9", token) == PESEL


def test_sealed_values_are_randomised_and_bound_to_their_record() -> None:
    key = bytes(range(64))
    one = protect_value(key, Mode.SEAL, "iban", "r-1", "PL61 1090")
    two = protect_value(key, Mode.SEAL, "iban", "r-1", "PL61 1090")
    assert one != two
    assert open_value(key, Mode.SEAL, "iban", "r-1", one) == "PL61 1090"
    with pytest.raises(IntegrityError):
        open_value(key, Mode.SEAL, "iban", "r-2", one)


def test_value_key_depends_on_subject_key_jurisdiction_and_subject() -> None:
    base = value_key(b"k" * 32, "PL", ALICE)
    assert len(base) == 64
    assert value_key(b"k" * 32, "PL", ALICE) == base
    others = {
        value_key(b"j" * 32, "PL", ALICE),
        value_key(b"k" * 32, "VN", ALICE),
        value_key(b"k" * 32, "PL", BOB),
    }
    assert base not in others and len(others) == 3


@pytest.mark.parametrize(
    ("mode", "kind", "body"),
    [
        (Mode.TOKENIZE, "iban", "token-of-pesel"),  # another kind
        (Mode.SEAL, "pl_pesel", "token-of-pesel"),  # another mode
        (Mode.TOKENIZE, "pl_pesel", "AAAA"),  # too short
        (Mode.TOKENIZE, "pl_pesel", "not base64!"),
        (Mode.TOKENIZE, "pl_pesel", "A" * 3000),  # oversized
        (Mode.SEAL, "iban", "A" * 40),  # forged
    ],
    ids=["other-kind", "other-mode", "short", "not-base64", "oversized", "forged"],
)
def test_bodies_that_do_not_authenticate(mode: Mode, kind: str, body: str) -> None:
    key = bytes(range(64))
    if body == "token-of-pesel":
        body = protect_value(key, Mode.TOKENIZE, "pl_pesel", "r-1", PESEL)
    with pytest.raises(IntegrityError):
        open_value(key, mode, kind, "r-1", body)


def test_one_flipped_bit_is_detected() -> None:
    key = bytes(range(64))
    token = protect_value(key, Mode.TOKENIZE, "pl_pesel", "r-1", PESEL)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for i in range(len(raw)):
        raw[i] ^= 1
        forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        with pytest.raises(IntegrityError):
            open_value(key, Mode.TOKENIZE, "pl_pesel", "r-1", forged)
        raw[i] ^= 1


# -- the custodian ---------------------------------------------------------------------------


def test_custodian_protects_and_reveals_against_a_logged_reveal(
    custodian: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    assert isinstance(custodian, ValueCustodian)
    h = header()
    token, sealed = custodian.protect(h, [("tokenize", "pl_pesel", PESEL), ("seal", "iban", "X1")])
    items = [(h, "tokenize", "pl_pesel", token), (h, "seal", "iban", sealed)]
    assert custodian.reveal(items, authorize(log_key, [h]), REQUESTER) == [PESEL, "X1"]
    assert [e.operation for e in custodian.journal()] == ["protect", "reveal"]
    assert [e.outcome for e in custodian.journal()] == ["protected", "revealed"]


def test_tokens_join_records_of_one_subject_not_across_subjects(
    custodian: LocalCustodian,
) -> None:
    (a1,) = custodian.protect(header("r-1"), [("tokenize", "pl_pesel", PESEL)])
    (a2,) = custodian.protect(header("r-2"), [("tokenize", "pl_pesel", PESEL)])
    (b1,) = custodian.protect(header("r-3", BOB), [("tokenize", "pl_pesel", PESEL)])
    assert a1 == a2 != b1


# name -> (authorization maker, requester, message)
DENIALS = {
    "read-allow": (lambda k, h: authorize(k, h, action="read"), REQUESTER, "not 'reveal'"),
    "deny": (lambda k, h: authorize(k, h, allow=False), REQUESTER, "not 'allow'"),
    "other-requester": (authorize, "svc-pl", "was issued to"),
    "other-record": (lambda k, h: authorize(k, [header("r-other")]), REQUESTER, "this record"),
    "forged": (
        lambda k, h: authorize(Ed25519PrivateKey.generate(), h),
        REQUESTER,
        "does not verify",
    ),
    "none": (lambda k, h: None, REQUESTER, "none was presented"),
}


@pytest.mark.parametrize(("make", "requester", "message"), DENIALS.values(), ids=DENIALS.keys())
def test_reveal_is_denied_without_a_matching_reveal_allow(
    custodian: LocalCustodian, log_key: Ed25519PrivateKey, make, requester, message
) -> None:
    h = header()
    (token,) = custodian.protect(h, [("tokenize", "pl_pesel", PESEL)])
    with pytest.raises(Denied, match=message):
        custodian.reveal([(h, "tokenize", "pl_pesel", token)], make(log_key, [h]), requester)
    if message != "none was presented":
        assert custodian.journal()[-1].outcome == "denied"


def test_a_sealed_value_moved_to_another_record_stays_sealed(
    custodian: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    (sealed,) = custodian.protect(header("r-1"), [("seal", "iban", "X1")])
    other = header("r-2")
    assert custodian.reveal(
        [(other, "seal", "iban", sealed)], authorize(log_key, [other]), REQUESTER
    ) == [None]


def test_shredding_makes_tokens_unrevealable_and_refuses_new_ones(
    custodian: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    h = header()
    (token,) = custodian.protect(h, [("tokenize", "pl_pesel", PESEL)])
    assert custodian.shred(ALICE)
    with pytest.raises(NotFound, match="crypto-shredded"):
        custodian.reveal([(h, "tokenize", "pl_pesel", token)], authorize(log_key, [h]), REQUESTER)
    with pytest.raises(BadRequest, match="crypto-shredded"):
        custodian.protect(h, [("tokenize", "pl_pesel", PESEL)])


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "1..10000 values"),
        ([("hash", "iban", "x")], "mode must be"),
        ([("seal", "Iban", "x")], "not a kind name"),
        ([("seal", "iban", "")], "1..1024 bytes"),
    ],
)
def test_bad_protect_batches(custodian: LocalCustodian, items, message) -> None:
    with pytest.raises(BadRequest, match=message):
        custodian.protect(header(), items)
    assert custodian.status().subjects == 0  # nothing was made for a refused batch


def test_other_jurisdiction_is_refused(custodian: LocalCustodian) -> None:
    foreign = RecordHeader("r-1", ALICE, "VN", "ap", 1)
    with pytest.raises(BadRequest, match="holds keys only for PL"):
        custodian.protect(foreign, [("seal", "iban", "x")])
