"""Segmented AES-256-GCM: large records sealed and opened in constant memory.

Layout (blob format 2)::

    b"SOVR" | 0x02 | segment size (u32, big-endian) | nonce prefix (7) | segments...
    segment i   = ciphertext (segment size bytes; the last one 0..segment size) | tag (16)
    nonce i     = nonce prefix (7) | i (u32, big-endian) | 0x01 if last else 0x00
    aad i       = the 16-byte stream header | the caller's associated data

This is the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár, "Online
authenticated-encryption and its nonce-reuse misuse-resistance", CRYPTO 2015), as Tink's
streaming AEAD uses it: every segment is authenticated on its own, its position is in its
nonce, and only the last segment carries the last flag. So a dropped, repeated, reordered or
appended segment, a stream cut at a segment boundary, or a header with another segment size
fails to authenticate, and a range read decrypts only the segments it covers.

Keys here are fresh per record (the data key), so the nonce prefix is random only as
defence in depth should a key ever seal two streams. A non-last segment is always full;
only an empty plaintext has an empty (last) segment.

Streaming open writes each segment's plaintext as soon as that segment authenticates: the
output is complete and authentic only once :func:`open_stream` returns. A caller that
forwards the output MUST treat an exception as "everything written so far is incomplete".

Every failure raises :class:`~sovra.errors.IntegrityError` naming its cause; the public
layer (:mod:`sovra.keys.envelope`) logs the cause and shows one opaque message.
"""

from __future__ import annotations

import os
import struct
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovra.errors import BadRequest, IntegrityError
from sovra.keys import _aead

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "Reader",
    "SeekableReader",
    "Writer",
    "open_into",
    "open_range",
    "open_stream",
    "plaintext_size",
    "read_full",
    "seal_into",
    "seal_stream",
    "sealed_size",
]

MAGIC = b"SOVR\x02"
PREFIX_SIZE = 7
HEADER_SIZE = len(MAGIC) + 4 + PREFIX_SIZE
MIN_SEGMENT_SIZE = 4096
MAX_SEGMENT_SIZE = 64 * 1024 * 1024
DEFAULT_SEGMENT_SIZE = 1024 * 1024
"""Large enough that per-segment work (nonce, tag, call) is under 1% of the AES work."""
MAX_SEGMENTS = 2**32 - 1
"""The segment index is 32 bits; at 1 MiB segments a stream may hold 4 PiB."""
_TAG = _aead.TAG_SIZE
_HEADER = struct.Struct(">5sI7s")
_POSITION = struct.Struct(">IB")
_ONLY_SEGMENT = _POSITION.pack(0, True)


class Reader(Protocol):
    """A binary source (a file opened ``rb``, ``io.BytesIO``, a socket file)."""

    def readinto(self, buffer: memoryview, /) -> int | None:
        """Read up to ``len(buffer)`` bytes into *buffer*; 0 means end of input."""
        ...


class SeekableReader(Reader, Protocol):
    """A binary source that can seek, for range reads."""

    def seek(self, offset: int, whence: int = 0, /) -> int:
        """Move to *offset*."""
        ...


class Writer(Protocol):
    """A binary sink (a file opened ``wb``, ``io.BytesIO``)."""

    def write(self, data: memoryview, /) -> int | None:
        """Write all of *data*."""
        ...


def _check_key(key: bytes) -> None:
    if len(key) != _aead.KEY_SIZE:
        raise BadRequest(f"an AES-256-GCM key is {_aead.KEY_SIZE} bytes, got {len(key)}")


def _check_segment_size(segment_size: int) -> None:
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise BadRequest(
            f"segment size must be {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE} bytes, got {segment_size}"
        )


def _segments(plaintext_len: int, segment_size: int) -> int:
    return max(1, -(-plaintext_len // segment_size))


def sealed_size(plaintext_len: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """The exact size of the stream that seals *plaintext_len* bytes.

    Raises:
        BadRequest: a negative length, a segment size out of range, or more segments
            than a stream may hold.
    """
    _check_segment_size(segment_size)
    if plaintext_len < 0:
        raise BadRequest("a plaintext length is not negative")
    count = _segments(plaintext_len, segment_size)
    if count > MAX_SEGMENTS:
        raise BadRequest(f"{plaintext_len} bytes need more than {MAX_SEGMENTS} segments")
    return HEADER_SIZE + plaintext_len + count * _TAG


def plaintext_size(sealed_len: int, segment_size: int) -> int:
    """The plaintext length of a well-formed stream of *sealed_len* bytes.

    Raises:
        IntegrityError: no stream with this segment size has this length.
    """
    body = sealed_len - HEADER_SIZE
    if body < _TAG:
        raise IntegrityError(f"stream of {sealed_len} bytes is shorter than one segment")
    full, rest = divmod(body, segment_size + _TAG)
    if rest == 0:
        if full > MAX_SEGMENTS:
            raise IntegrityError("stream holds more segments than the format allows")
        return full * segment_size
    if rest < _TAG or (rest == _TAG and full > 0):
        # A trailing piece that cannot be a segment, or an empty segment after full ones.
        raise IntegrityError(f"stream of {sealed_len} bytes ends inside a segment tag")
    if full + (rest > 0) > MAX_SEGMENTS:
        raise IntegrityError("stream holds more segments than the format allows")
    return full * segment_size + rest - _TAG


def _parse_header(key: bytes, header: bytes | memoryview) -> tuple[int, bytes]:
    """``(segment size, nonce prefix)`` of a stream header, checked with the key's size.

    Raises:
        IntegrityError: another magic, a segment size out of range, a key not 32 bytes.
    """
    magic, segment_size, prefix = _HEADER.unpack_from(header)
    if magic != MAGIC:
        raise IntegrityError("stream does not start with the format-2 magic")
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise IntegrityError(f"stream names segment size {segment_size}")
    if len(key) != _aead.KEY_SIZE:
        raise IntegrityError(f"key is {len(key)} bytes, not {_aead.KEY_SIZE}")
    return segment_size, prefix


class _Stream:
    """The per-stream state both directions share: key, header, nonce prefix."""

    __slots__ = ("aad", "aead", "header", "prefix", "segment_size")

    def __init__(self, aead: AESGCM, header: bytes, prefix: bytes, segment_size: int, aad: bytes):
        self.aead = aead
        self.header = header
        self.prefix = prefix
        self.segment_size = segment_size
        self.aad = header + aad

    @classmethod
    def new(cls, key: bytes, aad: bytes, segment_size: int) -> _Stream:
        _check_key(key)
        _check_segment_size(segment_size)
        prefix = os.urandom(PREFIX_SIZE)
        header = _HEADER.pack(MAGIC, segment_size, prefix)
        return cls(AESGCM(key), header, prefix, segment_size, aad)

    @classmethod
    def parse(cls, key: bytes, header: bytes, aad: bytes) -> _Stream:
        segment_size, prefix = _parse_header(key, header)
        return cls(AESGCM(key), header, prefix, segment_size, aad)

    def nonce(self, index: int, last: bool) -> bytes:
        if index > MAX_SEGMENTS:
            raise BadRequest(f"a stream holds at most {MAX_SEGMENTS} segments")
        return self.prefix + _POSITION.pack(index, last)

    def seal(self, index: int, last: bool, data: memoryview, out: memoryview) -> int:
        return self.aead.encrypt_into(self.nonce(index, last), data, self.aad, out)

    def open(self, index: int, last: bool, data: memoryview, out: memoryview) -> int:
        if len(data) < _TAG:
            raise IntegrityError(f"segment {index} is shorter than a tag")
        if not last and len(data) != self.segment_size + _TAG:
            raise IntegrityError(f"segment {index} is not full but is not the last")
        if last and index > 0 and len(data) == _TAG:
            raise IntegrityError(f"segment {index} is an empty last segment after others")
        try:
            return self.aead.decrypt_into(
                self.nonce(index, last), data, self.aad, out[: len(data) - _TAG]
            )
        except InvalidTag:
            raise IntegrityError(f"segment {index} (last={last}) does not authenticate") from None


def seal_into(
    key: bytes,
    plaintext: bytes | bytearray | memoryview,
    aad: bytes,
    out: bytearray | memoryview,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> int:
    """Seal an in-memory *plaintext* into *out* without intermediate copies.

    Args:
        key: 32-byte key; MUST be fresh for this stream (a record's data key).
        plaintext: the bytes to seal.
        aad: associated data every segment is bound to.
        out: a writable buffer of at least ``sealed_size(len(plaintext), segment_size)``
            bytes; it MUST NOT overlap *plaintext*.
        segment_size: plaintext bytes per segment.

    Returns:
        The number of bytes written to *out*.

    Raises:
        BadRequest: wrong key size, segment size out of range, or *out* too small.
    """
    src = _bytes(plaintext)
    one = len(src) <= segment_size and MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE
    # One segment's size without the general sealed_size; one is (at most) every record
    # up to a segment, most records: one AES call and a few operations around it.
    size = HEADER_SIZE + len(src) + _TAG if one else sealed_size(len(src), segment_size)
    dst = _bytes(out)
    if len(dst) < size:
        raise BadRequest(f"output buffer of {len(dst)} bytes is under the {size} needed")
    _check_key(key)
    prefix = os.urandom(PREFIX_SIZE)
    header = _HEADER.pack(MAGIC, segment_size, prefix)
    aead = AESGCM(key)
    dst[:HEADER_SIZE] = header
    if one:
        nonce = prefix + _ONLY_SEGMENT
        return HEADER_SIZE + aead.encrypt_into(nonce, src, header + aad, dst[HEADER_SIZE:size])
    stream = _Stream(aead, header, prefix, segment_size, aad)
    count = _segments(len(src), segment_size)
    pos = HEADER_SIZE
    for index in range(count):
        chunk = src[index * segment_size : (index + 1) * segment_size]
        pos += stream.seal(index, index == count - 1, chunk, dst[pos : pos + len(chunk) + _TAG])
    return pos


def _bytes(buffer: bytes | bytearray | memoryview) -> memoryview:
    """A flat byte view of *buffer*, cast only if it is not one already."""
    view = memoryview(buffer)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _header(sealed: memoryview) -> memoryview:
    if len(sealed) < HEADER_SIZE:
        raise IntegrityError(f"stream of {len(sealed)} bytes is shorter than its header")
    return sealed[:HEADER_SIZE]


def open_into(
    key: bytes, sealed: bytes | bytearray | memoryview, aad: bytes, out: bytearray | memoryview
) -> int:
    """Authenticate and decrypt an in-memory stream into *out*.

    Args:
        key: the 32-byte key the stream was sealed under.
        sealed: the whole stream.
        aad: the associated data it was sealed with.
        out: a writable buffer at least as long as the plaintext; on failure its
            content is undefined and MUST NOT be used.

    Returns:
        The plaintext length.

    Raises:
        IntegrityError: any byte of *sealed* or *aad* differs, truncation, extension,
            reordering, or *out* too small.
    """
    src = _bytes(sealed)
    header = _header(src).tobytes()
    seg, prefix = _parse_header(key, header)
    total = plaintext_size(len(src), seg)
    dst = _bytes(out)
    if len(dst) < total:
        raise IntegrityError(f"output buffer of {len(dst)} bytes is under the {total} needed")
    aead = AESGCM(key)
    if total <= seg:
        # One segment, the last (plaintext_size has checked that it holds a tag).
        nonce = prefix + _ONLY_SEGMENT
        try:
            return aead.decrypt_into(nonce, src[HEADER_SIZE:], header + aad, dst[:total])
        except InvalidTag:
            raise IntegrityError("segment 0 (last=True) does not authenticate") from None
    stream = _Stream(aead, header, prefix, seg, aad)
    count = _segments(total, seg)
    pos = HEADER_SIZE
    written = 0
    for index in range(count):
        end = min(pos + seg + _TAG, len(src))
        written += stream.open(index, index == count - 1, src[pos:end], dst[written:])
        pos = end
    return written


def read_full(source: Reader, buffer: memoryview) -> int:
    """Fill *buffer* from *source* until it is full or the input ends; returns the count."""
    filled = 0
    while filled < len(buffer):
        got = source.readinto(buffer[filled:])
        if not got:
            break
        filled += got
    return filled


def seal_stream(
    key: bytes,
    source: Reader,
    sink: Writer,
    aad: bytes,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> int:
    """Seal everything *source* yields into *sink*, holding three segments in memory.

    Args:
        key: 32-byte key; MUST be fresh for this stream.
        source: where the plaintext comes from, read to its end.
        sink: where the stream goes.
        aad: associated data every segment is bound to.
        segment_size: plaintext bytes per segment.

    Returns:
        The number of bytes written to *sink*.

    Raises:
        BadRequest: wrong key size, segment size out of range, or more input than
            :data:`MAX_SEGMENTS` segments hold.
    """
    stream = _Stream.new(key, aad, segment_size)
    # Two input buffers: a segment is sealed only once the next read says whether it is last.
    current = memoryview(bytearray(segment_size))
    ahead = memoryview(bytearray(segment_size))
    out = memoryview(bytearray(segment_size + _TAG))
    sink.write(memoryview(stream.header))
    written = HEADER_SIZE
    filled = read_full(source, current)
    index = 0
    while True:
        next_filled = read_full(source, ahead) if filled == segment_size else 0
        last = next_filled == 0
        n = stream.seal(index, last, current[:filled], out[: filled + _TAG])
        sink.write(out[:n])
        written += n
        if last:
            return written
        current, ahead, filled = ahead, current, next_filled
        index += 1


def open_stream(key: bytes, source: Reader, sink: Writer, aad: bytes) -> int:
    """Authenticate and decrypt a stream from *source* into *sink*, segment by segment.

    Each segment's plaintext is written once it authenticates; the output is whole and
    authentic only if this returns (see the module documentation).

    Returns:
        The plaintext length.

    Raises:
        IntegrityError: a changed byte, wrong key or *aad*, a missing, repeated,
            reordered or appended segment, or a stream cut short.
    """
    header = memoryview(bytearray(HEADER_SIZE))
    if read_full(source, header) != HEADER_SIZE:
        raise IntegrityError("stream is shorter than its header")
    stream = _Stream.parse(key, bytes(header), aad)
    full = stream.segment_size + _TAG
    current = memoryview(bytearray(full))
    ahead = memoryview(bytearray(full))
    out = memoryview(bytearray(stream.segment_size))
    filled = read_full(source, current)
    index = 0
    total = 0
    while True:
        next_filled = read_full(source, ahead) if filled == full else 0
        last = next_filled == 0
        n = stream.open(index, last, current[:filled], out)
        sink.write(out[:n])
        total += n
        if last:
            return total
        current, ahead, filled = ahead, current, next_filled
        index += 1


def open_range(
    key: bytes,
    source: SeekableReader,
    sealed_len: int,
    aad: bytes,
    *,
    start: int,
    length: int,
) -> bytes:
    """Decrypt plaintext bytes ``[start, start + length)``, reading only their segments.

    Args:
        key: the stream's key.
        source: the stream, seekable.
        sealed_len: the stream's total length (from the blob store's metadata); the
            segment holding the end of the stream is opened as the last one.
        aad: the associated data.
        start: first plaintext byte wanted.
        length: how many bytes; the range MUST lie within the plaintext.

    Returns:
        The plaintext bytes of the range.

    Raises:
        BadRequest: the range is negative or beyond the plaintext.
        IntegrityError: the header or a covered segment does not authenticate, or
            *sealed_len* is not a possible stream length.
    """
    header = memoryview(bytearray(HEADER_SIZE))
    source.seek(0)
    if read_full(source, header) != HEADER_SIZE:
        raise IntegrityError("stream is shorter than its header")
    stream = _Stream.parse(key, bytes(header), aad)
    seg = stream.segment_size
    total = plaintext_size(sealed_len, seg)
    if start < 0 or length < 0 or start + length > total:
        raise BadRequest(f"range {start}+{length} is outside the {total}-byte plaintext")
    count = _segments(total, seg)
    # An empty range still opens one segment, so a wrong key or header never passes.
    first = min(start // seg, count - 1)
    final = max(first, (start + length - 1) // seg) if length else first
    result = bytearray()
    buffer = memoryview(bytearray(seg + _TAG))
    out = memoryview(bytearray(seg))
    for index in range(first, final + 1):
        source.seek(HEADER_SIZE + index * (seg + _TAG))
        want = min(seg + _TAG, sealed_len - HEADER_SIZE - index * (seg + _TAG))
        got = read_full(source, buffer[:want])
        if got != want:
            raise IntegrityError(f"segment {index} is cut short")
        n = stream.open(index, index == count - 1, buffer[:got], out)
        lo = max(start - index * seg, 0)
        hi = min(start + length - index * seg, n)
        result += out[lo:hi]
    return bytes(result)
