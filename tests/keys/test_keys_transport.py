"""Key envelopes between a client and a custodian (sovra.keys.transport), and the
custodian's two client-side calls: wrap a client's envelope, release to a client's key."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn
from _allow import logged_allow
from _sealed import sealed_header
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, Denied, IntegrityError
from sovra.keys import transport
from sovra.keys.local import LocalCustodian
from sovra.keys.protocol import SealingCustodian
from sovra.keys.remote import RemoteCustodian
from sovra.model import (
    ReleaseAuthorization,
    subject_commitment,
)
from sovra.server.custodian import create_custodian_app

KEY = bytes(range(32))
NOW = 1_750_000_000_000
BOB = subject_commitment(b"c" * 32, "PL", "bob")
REQUESTER = "svc-support"


def authorize(log_key: Ed25519PrivateKey, recipient: bytes | None = None) -> ReleaseAuthorization:
    return logged_allow(
        log_key,
        [sealed_header()],
        principal=REQUESTER,
        time_ms=NOW,
        recipient=recipient,
        index=41,
    )


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def pl(tmp_path: Path, log_key: Ed25519PrivateKey) -> LocalCustodian:
    return LocalCustodian.create(tmp_path / "PL.key", "PL", log_key.public_key(), clock=lambda: NOW)


SUITES = sorted(transport.SUITES)


@pytest.mark.parametrize("suite", SUITES)
def test_envelope_round_trip_and_size(suite: str) -> None:
    me = transport.new_recipient(suite)
    hdr = sealed_header()
    sealed = transport.seal_key(transport.public_bytes(me), KEY, "to-client", hdr)
    assert len(sealed) == transport.envelope_size(suite) != transport.LEGACY_ENVELOPE_SIZE
    assert sealed.startswith(b"HPKE")  # RFC 9180's suite_id leads the message
    assert KEY not in sealed
    assert transport.open_key(me, sealed, "to-client", hdr) == KEY


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong", ["direction", "record", "subject", "recipient", "byte"])
def test_envelope_opens_for_nothing_else(wrong: str, suite: str) -> None:
    me = transport.new_recipient(suite)
    hdr = sealed_header()
    sealed = transport.seal_key(transport.public_bytes(me), KEY, "to-custodian", hdr)
    key, direction, header = me, "to-custodian", hdr
    if wrong == "direction":
        direction = "to-client"
    elif wrong == "record":
        header = sealed_header("rec-2")
    elif wrong == "subject":
        header = sealed_header(subject=BOB)
    elif wrong == "recipient":
        key = transport.new_recipient(suite)
    else:
        sealed = sealed[:40] + bytes([sealed[40] ^ 1]) + sealed[41:]
    with pytest.raises(IntegrityError, match="does not open"):
        transport.open_key(key, sealed, direction, header)  # type: ignore[arg-type]


@pytest.mark.parametrize("recipient", [b"\x00" * 32, b"\x01" * 31], ids=["low-order", "short"])
def test_unusable_recipients_are_refused(recipient: bytes) -> None:
    with pytest.raises(BadRequest):
        transport.check_public(recipient)
    with pytest.raises(BadRequest):
        transport.seal_key(recipient, KEY, "to-client", sealed_header())


def test_transport_key_is_stable_per_kek_and_changes_on_rotation(pl: LocalCustodian) -> None:
    assert isinstance(pl, SealingCustodian)
    version, key = pl.transport_key()
    assert (version, key) == pl.transport_key() and len(key) == 32  # X25519 by default
    pl.rotate()
    assert pl.transport_key()[0] == 2 and pl.transport_key()[1] != key


def test_client_sealed_record_opens_only_after_a_logged_allow(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    hdr = sealed_header()
    _, public = pl.transport_key()
    blob, envelope = transport.seal_record(hdr, b"alice's note", public)
    wrapped = pl.wrap_sealed(envelope, hdr)
    me = transport.new_recipient()
    mine = transport.public_bytes(me)
    with pytest.raises(Denied):
        pl.unwrap_many_to([(wrapped, hdr)], None, REQUESTER, mine)
    assert [j.outcome for j in pl.journal()] == ["wrapped", "denied"]
    (sealed,) = pl.unwrap_many_to([(wrapped, hdr)], authorize(log_key, mine), REQUESTER, mine)
    assert transport.open_record(hdr, blob, sealed, me) == b"alice's note"
    with pytest.raises(IntegrityError):
        transport.open_record(hdr, blob, sealed, transport.new_recipient())


def test_keys_go_only_to_the_recipient_the_logged_allow_names(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    hdr = sealed_header()
    _, public = pl.transport_key()
    _, envelope = transport.seal_record(hdr, b"alice's note", public)
    wrapped = pl.wrap_sealed(envelope, hdr)
    client = transport.public_bytes(transport.new_recipient())
    gateway = transport.public_bytes(transport.new_recipient())
    # A gateway that swaps in its own key must log that key, or be refused.
    with pytest.raises(Denied, match="names another recipient key"):
        pl.unwrap_many_to([(wrapped, hdr)], authorize(log_key, client), REQUESTER, gateway)
    with pytest.raises(Denied, match="names no recipient key"):
        pl.unwrap_many_to([(wrapped, hdr)], authorize(log_key), REQUESTER, client)
    assert [j.outcome for j in pl.journal()][-2:] == ["denied", "denied"]


@pytest.mark.parametrize("wrong", ["record", "subject", "content-type", "jurisdiction"])
def test_wrap_sealed_refuses_an_envelope_for_another_header(pl: LocalCustodian, wrong: str) -> None:
    hdr = sealed_header()
    _, public = pl.transport_key()
    _, envelope = transport.seal_record(hdr, b"x", public)
    other = {
        "record": sealed_header("rec-2"),
        "subject": sealed_header(subject=BOB),
        "content-type": replace(hdr, content_type="text/plain; charset=utf-8"),
        "jurisdiction": replace(
            hdr, jurisdiction="DE", subject=subject_commitment(b"c" * 32, "DE", "x")
        ),
    }[wrong]
    with pytest.raises(BadRequest):
        pl.wrap_sealed(envelope, other)
    assert [j.outcome for j in pl.journal()] == ["refused"]


def test_seal_record_wants_a_prepared_header() -> None:
    plain = replace(sealed_header(), content_type="text/plain; charset=utf-8")
    with pytest.raises(BadRequest, match="client-side"):
        transport.seal_record(plain, b"x", transport.public_bytes(transport.new_recipient()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("suite", SUITES)
def test_a_custodian_service_takes_client_sealed_keys(
    tmp_path: Path, log_key: Ed25519PrivateKey, suite: str
) -> None:
    pl = LocalCustodian.create(
        tmp_path / "PL.key", "PL", log_key.public_key(), clock=lambda: NOW, transport_suite=suite
    )
    token = b"t" * 32
    app = create_custodian_app(pl, token=token)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with RemoteCustodian(f"http://127.0.0.1:{port}", "PL", token) as remote:
            assert isinstance(remote, SealingCustodian)
            assert remote.transport_key() == pl.transport_key()
            hdr = sealed_header()
            blob, envelope = transport.seal_record(hdr, b"alice's note", remote.transport_key()[1])
            with pytest.raises(BadRequest, match="does not open"):
                remote.wrap_sealed(envelope, sealed_header("rec-2"))
            wrapped = remote.wrap_sealed(envelope, hdr)
            me = transport.new_recipient(suite)
            mine = transport.public_bytes(me)
            with pytest.raises(Denied):
                remote.unwrap_many_to([(wrapped, hdr)], None, REQUESTER, mine)
            allow = authorize(log_key, mine)
            (sealed,) = remote.unwrap_many_to([(wrapped, hdr)], allow, REQUESTER, mine)
            assert transport.open_record(hdr, blob, sealed, me) == b"alice's note"
            with pytest.raises(BadRequest):
                remote.unwrap_many_to([(wrapped, hdr)], allow, REQUESTER, b"x")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert [j.outcome for j in pl.journal()] == ["refused", "wrapped", "released"]
