"""Envelope encryption: round trips, every flipped byte, moved headers, one opaque error."""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sovra.errors import IntegrityError, PayloadTooLarge
from sovra.keys import envelope
from sovra.keys.envelope import BLOB_OVERHEAD, BLOB_PREFIX, open_blob, seal
from sovra.model import RecordHeader, subject_commitment

HEADER = RecordHeader(
    record_id="rec-1",
    subject=subject_commitment(b"k" * 32, "PL", "alice"),
    jurisdiction="PL",
    region="eu-central",
    kek_version=1,
)
OPAQUE = "record rec-1 failed authentication"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=512))
@example(b"")
def test_round_trip_any_content(plaintext: bytes) -> None:
    blob, data_key = seal(HEADER, plaintext)
    assert blob.startswith(BLOB_PREFIX)
    assert len(blob) == len(plaintext) + BLOB_OVERHEAD
    assert len(data_key) == 32
    assert open_blob(HEADER, blob, data_key) == plaintext


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=1 << 18))
@example(0)
def test_round_trip_sizes(size: int) -> None:
    plaintext = random.Random(size).randbytes(size)
    blob, data_key = seal(HEADER, plaintext)
    assert open_blob(HEADER, blob, data_key) == plaintext


def test_each_seal_uses_a_fresh_data_key() -> None:
    (blob1, key1), (blob2, key2) = seal(HEADER, b"same"), seal(HEADER, b"same")
    assert key1 != key2
    assert blob1 != blob2
    with pytest.raises(IntegrityError):
        open_blob(HEADER, blob1, key2)


def test_plaintext_does_not_appear_in_blob() -> None:
    plaintext = b"PESEL 44051401359 belongs to alice"
    blob, _ = seal(HEADER, plaintext)
    assert plaintext not in blob
    assert b"alice" not in blob


def test_flipping_any_bit_of_a_small_blob_fails() -> None:
    blob, data_key = seal(HEADER, b"hi")
    assert len(blob) == 2 + BLOB_OVERHEAD
    for position in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[position] ^= 1 << bit
            with pytest.raises(IntegrityError) as info:
                open_blob(HEADER, bytes(tampered), data_key)
            assert str(info.value) == OPAQUE


@pytest.mark.parametrize(
    "change",
    [
        {"record_id": "rec-2"},
        {"subject": subject_commitment(b"k" * 32, "PL", "bob")},
        {"jurisdiction": "DE"},
        {"region": "eu-west"},
        {"kek_version": 2},
        {"content_type": "application/json"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_blob_moved_to_another_header_fails(change: dict[str, object]) -> None:
    blob, data_key = seal(HEADER, b"content")
    moved = replace(HEADER, **change)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        open_blob(moved, blob, data_key)
    # The original header still opens it: the failure came from the binding.
    assert open_blob(HEADER, blob, data_key) == b"content"


def test_every_failure_has_one_message_and_the_cause_goes_to_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    blob, data_key = seal(HEADER, b"content")
    wrong_version = b"SOVR\x02" + blob[len(BLOB_PREFIX) :]
    bad_inputs = {
        "wrong key": (blob, bytes(32)),
        "short key": (blob, data_key[:16]),
        "truncated": (blob[:-1], data_key),
        "prefix only": (BLOB_PREFIX, data_key),
        "empty": (b"", data_key),
        "wrong magic": (b"XXXX" + blob[4:], data_key),
        "wrong version": (wrong_version, data_key),
        "appended byte": (blob + b"\x00", data_key),
    }
    messages = set()
    with caplog.at_level(logging.WARNING, logger="sovra.keys.envelope"):
        for blob_in, key_in in bad_inputs.values():
            with pytest.raises(IntegrityError) as info:
                open_blob(HEADER, blob_in, key_in)
            messages.add(str(info.value))
    assert messages == {OPAQUE}
    logged = caplog.text
    assert "magic" in logged
    assert "shorter" in logged
    assert "tag does not verify" in logged
    assert "key is 16 bytes" in logged


def test_oversized_blob_is_refused_without_decrypting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "MAX_PLAINTEXT_BYTES", 8)
    blob, data_key = seal(HEADER, b"12345678")
    assert open_blob(HEADER, blob, data_key) == b"12345678"
    with pytest.raises(PayloadTooLarge, match="over the 8-byte limit"):
        seal(HEADER, b"123456789")


def test_seal_refuses_oversized_plaintext_before_any_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(envelope, "MAX_PLAINTEXT_BYTES", 4)
    with pytest.raises(PayloadTooLarge, match="record rec-1 is 5 bytes"):
        seal(HEADER, b"12345")


def test_open_refuses_blob_longer_than_seal_can_make(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blob, data_key = seal(HEADER, b"123456789")
    monkeypatch.setattr(envelope, "MAX_PLAINTEXT_BYTES", 8)
    with (
        caplog.at_level(logging.WARNING, logger="sovra.keys.envelope"),
        pytest.raises(IntegrityError, match=OPAQUE),
    ):
        open_blob(HEADER, blob, data_key)
    assert "larger than seal can produce" in caplog.text
