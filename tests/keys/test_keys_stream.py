"""Segmented AEAD (blob format 2): round trips, every stream attack, range reads, memory."""

from __future__ import annotations

import io
import logging
import random
import struct
import tracemalloc
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sovra.errors import BadRequest, IntegrityError
from sovra.keys import _aead, _stream, envelope
from sovra.model import RecordHeader, subject_commitment

SEG = _stream.MIN_SEGMENT_SIZE
TAG = 16
KEY = bytes(range(32))
AAD = b"sovra-record\n{}"
HEADER = RecordHeader(
    record_id="rec-big",
    subject=subject_commitment(b"k" * 32, "PL", "alice"),
    jurisdiction="PL",
    region="eu-central",
    kek_version=1,
)
OPAQUE = "record rec-big failed authentication"


def _plain(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def _seal(plaintext: bytes, key: bytes = KEY, aad: bytes = AAD) -> bytes:
    out = bytearray(_stream.sealed_size(len(plaintext), SEG))
    n = _stream.seal_into(key, plaintext, aad, out, SEG)
    assert n == len(out)
    return bytes(out)


def _open(sealed: bytes, key: bytes = KEY, aad: bytes = AAD) -> bytes:
    out = bytearray(len(sealed))
    n = _stream.open_into(key, sealed, aad, out)
    return bytes(out[:n])


def _open_streaming(sealed: bytes, key: bytes = KEY, aad: bytes = AAD) -> bytes:
    sink = io.BytesIO()
    n = _stream.open_stream(key, io.BytesIO(sealed), sink, aad)
    assert n == len(sink.getvalue())
    return sink.getvalue()


def _segments(sealed: bytes) -> list[bytes]:
    body = sealed[_stream.HEADER_SIZE :]
    return [body[i : i + SEG + TAG] for i in range(0, len(body), SEG + TAG)]


def _join(sealed: bytes, segments: list[bytes]) -> bytes:
    return sealed[: _stream.HEADER_SIZE] + b"".join(segments)


# -- round trips -------------------------------------------------------------------------

SIZES = [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 17]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_every_way(size: int) -> None:
    plaintext = _plain(size)
    sealed = _seal(plaintext)
    assert len(sealed) == _stream.sealed_size(size, SEG)
    assert _open(sealed) == plaintext
    assert _open_streaming(sealed) == plaintext
    sink = io.BytesIO()
    written = _stream.seal_stream(KEY, io.BytesIO(plaintext), sink, AAD, SEG)
    streamed = sink.getvalue()
    assert written == len(streamed) == len(sealed)
    assert _open(streamed) == plaintext
    assert _open_streaming(streamed) == plaintext


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=6 * SEG))
@example(4 * SEG)
def test_round_trip_any_size(size: int) -> None:
    plaintext = _plain(size)
    sink = io.BytesIO()
    _stream.seal_stream(KEY, _Trickle(plaintext), sink, AAD, SEG)
    assert _open_streaming(sink.getvalue()) == plaintext
    assert _stream.plaintext_size(len(sink.getvalue()), SEG) == size


class _Trickle:
    """A reader that returns short reads, as pipes and sockets do."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self._rng = random.Random(len(data))

    def readinto(self, buffer: memoryview, /) -> int:
        n = min(len(buffer), self._rng.randint(1, 3 * SEG))
        return self._data.readinto(buffer[:n])


def test_matches_an_independent_reading_of_the_format() -> None:
    # Parse the layout documented in docs/keys.md by hand and decrypt with plain AESGCM.
    plaintext = _plain(2 * SEG + 5)
    sealed = _seal(plaintext)
    magic, seg, prefix = struct.unpack(">5sI7s", sealed[:16])
    assert (magic, seg) == (b"SOVR\x02", SEG)
    segments = _segments(sealed)
    assert [len(s) for s in segments] == [SEG + TAG, SEG + TAG, 5 + TAG]
    recovered = b""
    for index, segment in enumerate(segments):
        nonce = prefix + struct.pack(">IB", index, index == len(segments) - 1)
        recovered += AESGCM(KEY).decrypt(nonce, segment, sealed[:16] + AAD)
    assert recovered == plaintext


def test_each_stream_draws_a_new_nonce_prefix() -> None:
    assert _seal(b"same")[9:16] != _seal(b"same")[9:16]


# -- attacks on the stream ----------------------------------------------------------------

THREE = _plain(3 * SEG)  # three full segments, the last one full too
TWO_AND_A_BIT = _plain(2 * SEG + 100)

ATTACKS: list[tuple[str, bytes, Callable[[bytes], bytes]]] = [
    ("truncated-at-boundary", THREE, lambda s: _join(s, _segments(s)[:2])),
    ("truncated-to-first", TWO_AND_A_BIT, lambda s: _join(s, _segments(s)[:1])),
    ("truncated-inside-segment", TWO_AND_A_BIT, lambda s: s[:-50]),
    ("truncated-inside-tag", TWO_AND_A_BIT, lambda s: s[:-5]),
    ("header-only", THREE, lambda s: s[: _stream.HEADER_SIZE]),
    ("shorter-than-header", THREE, lambda s: s[:7]),
    ("empty", THREE, lambda s: b""),
    ("reordered", THREE, lambda s: _join(s, [_segments(s)[i] for i in (1, 0, 2)])),
    ("middle-dropped", THREE, lambda s: _join(s, [_segments(s)[i] for i in (0, 2)])),
    ("segment-repeated", THREE, lambda s: _join(s, [_segments(s)[i] for i in (0, 0, 1, 2)])),
    ("extended-by-copy", THREE, lambda s: s + _segments(s)[-1]),
    ("extended-by-bytes", TWO_AND_A_BIT, lambda s: s + b"\x00" * 20),
    ("extended-empty-tag", THREE, lambda s: s + b"\x00" * TAG),
    ("segment-size-changed", THREE, lambda s: s[:5] + struct.pack(">I", 2 * SEG) + s[9:]),
    ("segment-size-too-small", THREE, lambda s: s[:5] + struct.pack(">I", 16) + s[9:]),
    ("prefix-changed", THREE, lambda s: s[:10] + bytes([s[10] ^ 1]) + s[11:]),
    ("magic-changed", THREE, lambda s: b"SOVR\x03" + s[5:]),
    ("last-tag-flipped", THREE, lambda s: s[:-1] + bytes([s[-1] ^ 0x80])),
    ("first-byte-flipped", THREE, lambda s: s[:16] + bytes([s[16] ^ 1]) + s[17:]),
]


@pytest.mark.parametrize(("plaintext", "attack"), [(p, a) for _, p, a in ATTACKS],
                         ids=[name for name, _, _ in ATTACKS])  # fmt: skip
def test_attack_is_detected(plaintext: bytes, attack: Callable[[bytes], bytes]) -> None:
    tampered = attack(_seal(plaintext))
    with pytest.raises(IntegrityError):
        _open(tampered)
    with pytest.raises(IntegrityError):
        _open_streaming(tampered)


def test_splicing_a_segment_from_another_stream_under_the_same_key_fails() -> None:
    first, second = _seal(THREE), _seal(THREE)
    spliced = _join(first, [_segments(first)[0], _segments(second)[1], _segments(first)[2]])
    with pytest.raises(IntegrityError):
        _open(spliced)


@pytest.mark.parametrize(
    ("key", "aad"), [(bytes(32), AAD), (KEY, AAD + b"x"), (KEY, b"")], ids=["key", "aad", "no-aad"]
)
def test_wrong_key_or_associated_data_fails(key: bytes, aad: bytes) -> None:
    sealed = _seal(TWO_AND_A_BIT)
    with pytest.raises(IntegrityError):
        _open(sealed, key, aad)
    with pytest.raises(IntegrityError):
        _open_streaming(sealed, key, aad)


def test_envelope_hides_the_cause_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    blob, data_key = envelope.seal(HEADER, _plain(envelope.STREAM_THRESHOLD + 1))
    tampered = blob[: -TAG - 1]
    with caplog.at_level(logging.WARNING, logger="sovra.keys.envelope"):
        for call in (
            lambda: envelope.open_blob(HEADER, tampered, data_key),
            lambda: envelope.open_stream(HEADER, io.BytesIO(tampered), io.BytesIO(), data_key),
            lambda: envelope.open_into(HEADER, tampered, data_key, bytearray(len(tampered))),
        ):
            with pytest.raises(IntegrityError) as info:
                call()
            assert str(info.value) == OPAQUE
    assert "segment" in caplog.text or "stream" in caplog.text


def test_plaintext_size_refuses_impossible_lengths() -> None:
    assert _stream.plaintext_size(16 + TAG, SEG) == 0
    assert _stream.plaintext_size(16 + SEG + TAG, SEG) == SEG
    for bad in (0, 16, 16 + TAG - 1, 16 + SEG + TAG + 3, 16 + SEG + TAG + TAG):
        with pytest.raises(IntegrityError):
            _stream.plaintext_size(bad, SEG)


@pytest.mark.parametrize("segment_size", [0, SEG - 1, _stream.MAX_SEGMENT_SIZE + 1])
def test_segment_size_out_of_range_is_refused(segment_size: int) -> None:
    with pytest.raises(BadRequest):
        _stream.seal_into(KEY, b"x", AAD, bytearray(100), segment_size)


def test_seal_refuses_a_short_key_and_a_short_buffer() -> None:
    with pytest.raises(BadRequest):
        _stream.seal_into(KEY[:16], b"x", AAD, bytearray(100), SEG)
    with pytest.raises(BadRequest):
        _stream.seal_into(KEY, b"xy", AAD, bytearray(16 + TAG + 1), SEG)


# -- envelope: formats and thresholds --------------------------------------------------------


def test_seal_switches_to_segments_above_the_threshold() -> None:
    small, key_small = envelope.seal(HEADER, _plain(envelope.STREAM_THRESHOLD))
    large, key_large = envelope.seal(HEADER, _plain(envelope.STREAM_THRESHOLD + 1))
    assert small.startswith(envelope.BLOB_PREFIX)
    assert large.startswith(envelope.STREAM_PREFIX)
    assert envelope.open_blob(HEADER, small, key_small) == _plain(envelope.STREAM_THRESHOLD)
    assert envelope.open_blob(HEADER, large, key_large) == _plain(envelope.STREAM_THRESHOLD + 1)


@pytest.mark.parametrize("size", [0, 10, 3 * SEG + 1])
def test_open_stream_reads_both_formats(size: int) -> None:
    plaintext = _plain(size)
    one_shot, key1 = envelope.seal(HEADER, plaintext)
    sink = io.BytesIO()
    _, key2 = envelope.seal_stream(HEADER, io.BytesIO(plaintext), sink, segment_size=SEG)
    for blob, key in ((one_shot, key1), (sink.getvalue(), key2)):
        out = io.BytesIO()
        assert envelope.open_stream(HEADER, io.BytesIO(blob), out, key) == size
        assert out.getvalue() == plaintext


def test_a_stream_moved_to_another_record_fails() -> None:
    sink = io.BytesIO()
    _, key = envelope.seal_stream(HEADER, io.BytesIO(THREE), sink, segment_size=SEG)
    moved = RecordHeader(
        record_id="rec-other",
        subject=HEADER.subject,
        jurisdiction="PL",
        region="eu-central",
        kek_version=1,
    )
    with pytest.raises(IntegrityError):
        envelope.open_blob(moved, sink.getvalue(), key)


# -- range reads -----------------------------------------------------------------------------


class _CountingFile(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def readinto(self, buffer: memoryview, /) -> int:  # type: ignore[override]
        n = super().readinto(buffer)
        self.bytes_read += n
        return n


SIX = _plain(6 * SEG - 7)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(SIX)), st.integers(0, 3 * SEG))
@example(0, 0)
@example(len(SIX), 0)
@example(SEG - 1, 2)
def test_range_read_returns_the_slice_and_reads_only_its_segments(start: int, n: int) -> None:
    length = min(n, len(SIX) - start)
    sink = io.BytesIO()
    size, key = envelope.seal_stream(HEADER, io.BytesIO(SIX), sink, segment_size=SEG)
    source = _CountingFile(sink.getvalue())
    got = envelope.open_range(HEADER, source, size, key, start=start, length=length)
    assert got == SIX[start : start + length]
    covered = max(1, -(-(start % SEG + length) // SEG))
    probe = len(envelope.STREAM_PREFIX)  # the envelope reads the magic to pick the format
    assert source.bytes_read <= probe + _stream.HEADER_SIZE + covered * (SEG + TAG)


def test_range_read_of_a_one_shot_blob() -> None:
    blob, key = envelope.seal(HEADER, b"0123456789")
    got = envelope.open_range(HEADER, io.BytesIO(blob), len(blob), key, start=3, length=4)
    assert got == b"3456"


def test_range_read_ignores_damage_outside_and_catches_damage_inside() -> None:
    sink = io.BytesIO()
    size, key = envelope.seal_stream(HEADER, io.BytesIO(SIX), sink, segment_size=SEG)
    blob = bytearray(sink.getvalue())
    blob[_stream.HEADER_SIZE + 4 * (SEG + TAG) + 3] ^= 1  # damage segment 4
    ok = envelope.open_range(HEADER, io.BytesIO(bytes(blob)), size, key, start=SEG, length=SEG)
    assert ok == SIX[SEG : 2 * SEG]
    with pytest.raises(IntegrityError) as info:
        envelope.open_range(HEADER, io.BytesIO(bytes(blob)), size, key, start=4 * SEG, length=1)
    assert str(info.value) == OPAQUE


def test_range_read_detects_truncation_of_the_segment_it_reads() -> None:
    sealed = _seal(THREE)
    cut = _join(sealed, _segments(sealed)[:2])  # segment 1 was sealed as not-last
    with pytest.raises(IntegrityError):
        _stream.open_range(KEY, io.BytesIO(cut), len(cut), AAD, start=SEG, length=1)


@pytest.mark.parametrize(("start", "length"), [(-1, 1), (0, -1), (0, len(SIX) + 1)])
def test_range_outside_the_plaintext_is_a_bad_request(start: int, length: int) -> None:
    sink = io.BytesIO()
    size, key = envelope.seal_stream(HEADER, io.BytesIO(SIX), sink, segment_size=SEG)
    with pytest.raises(BadRequest):
        envelope.open_range(HEADER, io.BytesIO(sink.getvalue()), size, key, start=start,
                            length=length)  # fmt: skip


# -- constant memory ---------------------------------------------------------------------------


class _Zeros:
    """An input of *size* bytes that occupies no memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readinto(self, buffer: memoryview, /) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n) if n <= 65536 else b"\x00" * n
        self.left -= n
        return n


class _Discard:
    """A sink that keeps only a count (and the bytes, when asked to)."""

    def __init__(self, keep: bool = False) -> None:
        self.count = 0
        self.kept = io.BytesIO() if keep else None

    def write(self, data: memoryview, /) -> int:
        self.count += len(data)
        if self.kept is not None:
            self.kept.write(data)
        return len(data)


def test_seal_and_open_stream_in_constant_memory() -> None:
    segment = 64 * 1024
    size = 32 * 1024 * 1024  # 512 segments; peak must stay near a few segments
    tracemalloc.start()
    try:
        sink = _Discard(keep=False)
        _, key = envelope.seal_stream(HEADER, _Zeros(size), sink, segment_size=segment)
        _, peak_seal = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.count == envelope.sealed_size(size, segment)
    assert peak_seal < 8 * segment

    # Open a smaller sealed copy held in memory; measure only what open_stream adds.
    small = io.BytesIO()
    _, key = envelope.seal_stream(HEADER, _Zeros(4 * 1024 * 1024), small, segment_size=segment)
    data = small.getvalue()
    tracemalloc.start()
    try:
        out = _Discard()
        envelope.open_stream(HEADER, io.BytesIO(data), out, key)
        _, peak_open = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.count == 4 * 1024 * 1024
    assert peak_open < 8 * segment + len(data)  # BytesIO shares the buffer until written


def test_aead_constants_agree() -> None:
    assert _aead.TAG_SIZE == TAG
    assert _stream.HEADER_SIZE == 16


@pytest.mark.parametrize("start", [0, SEG, 2 * SEG])
def test_an_empty_range_still_checks_the_key(start: int) -> None:
    sealed = _seal(_plain(2 * SEG))
    assert (
        _stream.open_range(KEY, io.BytesIO(sealed), len(sealed), AAD, start=start, length=0) == b""
    )
    with pytest.raises(IntegrityError):
        _stream.open_range(bytes(32), io.BytesIO(sealed), len(sealed), AAD, start=start, length=0)
