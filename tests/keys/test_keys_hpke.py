"""HPKE key envelopes (format 2) at the custodian: suites per jurisdiction, bad input, and
envelopes of format 1 still opening."""

from __future__ import annotations

from pathlib import Path

import pytest
from _allow import logged_allow
from _sealed import seal_v1, sealed_header
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, IntegrityError
from sovra.keys import _hpke, transport
from sovra.keys.envelope import seal
from sovra.keys.local import LocalCustodian

KEY = bytes(range(32))
NOW = 1_750_000_000_000
REQUESTER = "svc-support"
HYBRID = "mlkem768-x25519"


header = sealed_header


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def custodian(tmp_path: Path, log_key: Ed25519PrivateKey, suite: str) -> LocalCustodian:
    return LocalCustodian.create(
        tmp_path / f"PL-{suite}.key",
        "PL",
        log_key.public_key(),
        clock=lambda: NOW,
        transport_suite=suite,
    )


def _released(c: LocalCustodian) -> list[str]:
    return [j.outcome for j in c.journal() if j.outcome == "released"]


# -- the message layer: precise about public facts, opaque about keys --------------------


def test_a_message_of_another_suite_is_named_and_refused() -> None:
    classical, hybrid = transport.new_recipient(), transport.new_recipient(HYBRID)
    sealed = transport.seal_key(hybrid.public, KEY, "to-client", header())
    with pytest.raises(
        BadRequest, match=r"sealed with MLKEM768-X25519.*0x647a.*takes DHKEM\(X25519"
    ):
        transport.open_key(classical, sealed, "to-client", header())


def test_an_unknown_suite_and_a_missing_header_are_refused() -> None:
    me = transport.new_recipient()
    sealed = transport.seal_key(me.public, KEY, "to-client", header())
    unknown = sealed[:8] + b"\x00\x09" + sealed[10:]  # AEAD id 9: no such suite here
    with pytest.raises(BadRequest, match=r"an unknown suite \(0x0020, 0x0001, 0x0009\)"):
        transport.open_key(me, unknown, "to-client", header())
    with pytest.raises(BadRequest, match="not an HPKE message"):
        transport.open_key(me, b"XPKE" + sealed[4:], "to-client", header())


@pytest.mark.parametrize("suite", sorted(transport.SUITES))
@pytest.mark.parametrize("cut", [1, 16, "enc"])
def test_a_truncated_message_is_refused_with_its_size(suite: str, cut: object) -> None:
    me = transport.new_recipient(suite)
    sealed = transport.seal_key(me.public, KEY, "to-client", header())
    enc = _hpke.SUITES[suite].enc_size
    short = sealed[: _hpke.HEADER_SIZE + enc // 2] if cut == "enc" else sealed[: -int(str(cut))]
    with pytest.raises(BadRequest, match=r"truncated"):
        transport.open_key(me, short, "to-client", header())
    with pytest.raises(BadRequest, match="more than one sealed key"):
        transport.open_key(me, sealed + b"\x00", "to-client", header())


@pytest.mark.parametrize("suite", sorted(transport.SUITES))
def test_a_wrong_key_gets_one_opaque_error(suite: str) -> None:
    sealed = transport.seal_key(transport.new_recipient(suite).public, KEY, "to-client", header())
    with pytest.raises(IntegrityError, match=r"^key envelope of record rec-1 does not open$"):
        transport.open_key(transport.new_recipient(suite), sealed, "to-client", header())


def test_the_client_reports_a_bad_envelope_as_an_integrity_failure() -> None:
    me = transport.new_recipient()
    other = transport.seal_key(transport.new_recipient(HYBRID).public, KEY, "to-client", header())
    with pytest.raises(IntegrityError, match="sealed with MLKEM768-X25519"):
        transport.open_record(header(), b"", other, me)


# -- a custodian's suite is its jurisdiction's -----------------------------------------


@pytest.mark.parametrize("suite", sorted(transport.SUITES))
def test_a_custodian_takes_and_releases_in_its_suite(
    tmp_path: Path, log_key: Ed25519PrivateKey, suite: str
) -> None:
    c = custodian(tmp_path, log_key, suite)
    version, public = c.transport_key()
    assert transport.check_public(public) == suite
    assert (version, public) == c.transport_key()  # derived from the KEK, stable
    hdr = header()
    blob, envelope = transport.seal_record(hdr, b"alice's note", public)
    wrapped = c.wrap_sealed(envelope, hdr)
    me = transport.new_recipient(suite)
    auth = logged_allow(log_key, [hdr], principal=REQUESTER, time_ms=NOW, recipient=me.public)
    (sealed,) = c.unwrap_many_to([(wrapped, hdr)], auth, REQUESTER, me.public)
    assert len(sealed) == transport.envelope_size(suite)
    assert transport.open_record(hdr, blob, sealed, me) == b"alice's note"
    c.rotate()
    assert c.transport_key()[1] != public


def test_transport_keys_of_one_kek_differ_by_suite(
    tmp_path: Path, log_key: Ed25519PrivateKey
) -> None:
    kek = bytes(32)
    keys = {s: transport.derive_transport_key(kek, "PL", 1, s).public for s in transport.SUITES}
    assert len(set(keys.values())) == len(keys)
    # The X25519 key is the one derived before suites existed: pins made then still hold.
    assert keys["x25519"] == transport.derive_transport_key(kek, "PL", 1).public


def test_a_hybrid_custodian_refuses_a_classical_envelope_and_wraps_nothing(
    tmp_path: Path, log_key: Ed25519PrivateKey
) -> None:
    c = custodian(tmp_path, log_key, HYBRID)
    hdr = header()
    classical = transport.new_recipient().public
    for envelope in (
        transport.seal_key(classical, KEY, "to-custodian", hdr),
        seal_v1(classical, KEY, "to-custodian", hdr),
    ):
        with pytest.raises(BadRequest, match="this key takes MLKEM768-X25519"):
            c.wrap_sealed(envelope, hdr)
    assert [j.outcome for j in c.journal()] == ["refused", "refused"]
    assert c.status().subjects == 0


@pytest.mark.parametrize("weaker", ["x25519", "mlkem768-x25519"])
def test_no_key_is_released_to_a_recipient_weaker_than_the_jurisdiction_asks(
    tmp_path: Path, log_key: Ed25519PrivateKey, weaker: str
) -> None:
    c = custodian(tmp_path, log_key, "mlkem1024-p384")
    hdr = header()
    wrapped = c.wrap_sealed(transport.seal_record(hdr, b"x", c.transport_key()[1])[1], hdr)
    me = transport.new_recipient(weaker)
    auth = logged_allow(log_key, [hdr], principal=REQUESTER, time_ms=NOW, recipient=me.public)
    with pytest.raises(
        BadRequest, match=f"only to mlkem1024-p384 .* this recipient key is {weaker}"
    ):
        c.unwrap_many_to([(wrapped, hdr)], auth, REQUESTER, me.public)
    assert not _released(c)


def test_a_classical_custodian_releases_to_a_stronger_recipient(
    tmp_path: Path, log_key: Ed25519PrivateKey
) -> None:
    c = custodian(tmp_path, log_key, "x25519")
    hdr = header()
    blob, envelope = transport.seal_record(hdr, b"x", c.transport_key()[1])
    wrapped = c.wrap_sealed(envelope, hdr)
    me = transport.new_recipient(HYBRID)
    auth = logged_allow(log_key, [hdr], principal=REQUESTER, time_ms=NOW, recipient=me.public)
    (sealed,) = c.unwrap_many_to([(wrapped, hdr)], auth, REQUESTER, me.public)
    assert transport.open_record(hdr, blob, sealed, me) == b"x"


def test_an_unknown_suite_setting_is_refused(tmp_path: Path, log_key: Ed25519PrivateKey) -> None:
    with pytest.raises(BadRequest, match="unknown HPKE suite 'kyber'"):
        custodian(tmp_path, log_key, "kyber")


# -- format 1 still opens ----------------------------------------------------------------


def test_a_record_stored_from_a_format_1_envelope_reads_after_the_change(
    tmp_path: Path, log_key: Ed25519PrivateKey
) -> None:
    c = custodian(tmp_path, log_key, "x25519")
    hdr = header()
    public = c.transport_key()[1]
    blob, data_key = seal(hdr, b"stored before HPKE")
    old = seal_v1(public, data_key, "to-custodian", hdr)
    assert len(old) == transport.LEGACY_ENVELOPE_SIZE
    wrapped = c.wrap_sealed(old, hdr)  # as a client of the earlier version stored it
    me = transport.new_recipient()
    auth = logged_allow(log_key, [hdr], principal=REQUESTER, time_ms=NOW, recipient=me.public)
    (sealed,) = c.unwrap_many_to([(wrapped, hdr)], auth, REQUESTER, me.public)
    assert sealed.startswith(b"HPKE")  # released in format 2
    assert transport.open_record(hdr, blob, sealed, me) == b"stored before HPKE"


def test_a_format_1_release_from_an_earlier_custodian_opens_on_the_client() -> None:
    me = transport.new_recipient()
    hdr = header()
    blob, data_key = seal(hdr, b"released the old way")
    old = seal_v1(me.public, data_key, "to-client", hdr)
    assert transport.open_record(hdr, blob, old, me) == b"released the old way"
    changed = old[:50] + bytes([old[50] ^ 1]) + old[51:]
    with pytest.raises(IntegrityError, match="does not open"):
        transport.open_record(hdr, blob, changed, me)
    with pytest.raises(IntegrityError, match="does not open"):
        transport.open_key(me, old, "to-custodian", hdr)  # another direction
