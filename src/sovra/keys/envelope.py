"""Envelope encryption of one record: a fresh data key per record, bound to its header.

Blob layout, format 1 (records up to :data:`STREAM_THRESHOLD` bytes)::

    b"SOVR" | 0x01 | nonce (12) | ciphertext | tag (16)

Format 2 (larger records, and every streamed one) is the segmented layout of
``sovra.keys._stream``: independently authenticated segments whose nonces carry their
position and a last-segment flag, so a record of any size is sealed and opened in constant
memory and a range read decrypts only the segments it covers.

The associated data is :meth:`RecordHeader.to_bytes`, so a blob moved to another record,
subject, jurisdiction, region or key version no longer opens. The data key never leaves
this module except to be wrapped by the jurisdiction's custodian.

Python cannot reliably wipe memory (bytes are immutable, the allocator and the garbage
collector copy and keep freed buffers), so no zeroize-style clearing of data keys is
attempted here; keeping keys short-lived and unreferenced is the best this layer can do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sovra.errors import BadRequest, IntegrityError, PayloadTooLarge
from sovra.keys import _aead, _stream
from sovra.keys._stream import Reader, SeekableReader, Writer
from sovra.model import RecordHeader

__all__ = [
    "BLOB_OVERHEAD",
    "BLOB_PREFIX",
    "DATA_KEY_SIZE",
    "MAX_PLAINTEXT_BYTES",
    "STREAM_PREFIX",
    "STREAM_THRESHOLD",
    "Reader",
    "SeekableReader",
    "Writer",
    "new_data_key",
    "open_blob",
    "open_into",
    "open_range",
    "open_stream",
    "seal",
    "seal_into",
    "seal_stream",
    "sealed_size",
]

_T = TypeVar("_T")

_log = logging.getLogger(__name__)

BLOB_PREFIX = b"SOVR\x01"
"""Magic and format version; a future format gets a new version byte, never a new meaning."""
DATA_KEY_SIZE = _aead.KEY_SIZE
BLOB_OVERHEAD = len(BLOB_PREFIX) + _aead.OVERHEAD
MAX_PLAINTEXT_BYTES = 64 * 1024 * 1024
"""In-memory :func:`seal` and :func:`open_blob` limit; larger records use the stream calls."""
STREAM_PREFIX = _stream.MAGIC
STREAM_THRESHOLD = _stream.DEFAULT_SEGMENT_SIZE
"""Records over this many bytes are sealed in segments (format 2)."""


def new_data_key() -> bytes:
    """A fresh random data key, for one record alone (:func:`seal`'s *data_key*)."""
    return _aead.new_key()


def seal(
    header: RecordHeader, plaintext: bytes, data_key: bytes | None = None
) -> tuple[bytes, bytes]:
    """Encrypt *plaintext* under a fresh data key bound to *header*.

    Args:
        header: the record header; its canonical bytes are the associated data.
        plaintext: the record's content, at most :data:`MAX_PLAINTEXT_BYTES`.
        data_key: the data key, when the caller had it wrapped before the content was
            final (one custodian call protects the record's values and wraps its key):
            MUST come from :func:`new_data_key` for this record and no other. None: a
            new one.

    Returns:
        ``(blob, data_key)``: the blob to store and the 32-byte data key, which the
        caller MUST hand to the custodian to wrap and MUST NOT store in the clear.

    Raises:
        PayloadTooLarge: *plaintext* is over :data:`MAX_PLAINTEXT_BYTES`.
        BadRequest: *data_key* is not :data:`DATA_KEY_SIZE` bytes.
    """
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise PayloadTooLarge(
            f"record {header.record_id} is {len(plaintext)} bytes, "
            f"over the {MAX_PLAINTEXT_BYTES}-byte limit for one record"
        )
    if data_key is None:
        data_key = _aead.new_key()
    elif len(data_key) != DATA_KEY_SIZE:
        raise BadRequest(f"a data key is {DATA_KEY_SIZE} bytes, got {len(data_key)}")
    if len(plaintext) > STREAM_THRESHOLD:
        out = bytearray(_stream.sealed_size(len(plaintext)))
        _stream.seal_into(data_key, plaintext, header.to_bytes(), out)
        return bytes(out), data_key
    return _aead.seal(data_key, plaintext, header.to_bytes(), prefix=BLOB_PREFIX), data_key


def sealed_size(plaintext_len: int, segment_size: int = _stream.DEFAULT_SEGMENT_SIZE) -> int:
    """The exact size of the format-2 blob :func:`seal_into` makes of *plaintext_len* bytes.

    Raises:
        BadRequest: negative length or segment size out of range.
    """
    return _stream.sealed_size(plaintext_len, segment_size)


def seal_into(
    header: RecordHeader,
    plaintext: bytes | bytearray | memoryview,
    out: bytearray | memoryview,
    *,
    segment_size: int = _stream.DEFAULT_SEGMENT_SIZE,
) -> tuple[int, bytes]:
    """Seal *plaintext* (format 2) into the caller's buffer under a fresh data key.

    Args:
        header: the record header (associated data of every segment).
        plaintext: the record's content.
        out: at least :func:`sealed_size` bytes, not overlapping *plaintext*.
        segment_size: plaintext bytes per segment.

    Returns:
        ``(length written, data_key)``; the data key is for the custodian to wrap only.

    Raises:
        BadRequest: *out* too small or segment size out of range.
    """
    data_key = _aead.new_key()
    written = _stream.seal_into(data_key, plaintext, header.to_bytes(), out, segment_size)
    return written, data_key


def seal_stream(
    header: RecordHeader,
    source: Reader,
    sink: Writer,
    *,
    segment_size: int = _stream.DEFAULT_SEGMENT_SIZE,
) -> tuple[int, bytes]:
    """Seal a record of any size from *source* into *sink* in constant memory (format 2).

    Args:
        header: the record header.
        source: the plaintext, read to its end.
        sink: receives the blob.
        segment_size: plaintext bytes per segment.

    Returns:
        ``(blob length, data_key)``.

    Raises:
        BadRequest: segment size out of range, or input beyond the format's segment count.
    """
    data_key = _aead.new_key()
    written = _stream.seal_stream(data_key, source, sink, header.to_bytes(), segment_size)
    return written, data_key


def _opaque(header: RecordHeader, action: Callable[[], _T]) -> _T:
    try:
        return action()
    except IntegrityError as exc:
        raise _failed(header, exc) from None


def _failed(header: RecordHeader, exc: IntegrityError) -> IntegrityError:
    """Log the cause of *exc* and return the one opaque error to raise instead."""
    _log.warning("record %s failed authentication: %s", header.record_id, exc.message)
    return IntegrityError(f"record {header.record_id} failed authentication")


def open_into(
    header: RecordHeader,
    blob: bytes | bytearray | memoryview,
    data_key: bytes,
    out: bytearray | memoryview,
) -> int:
    """Authenticate and decrypt a format-2 blob into the caller's buffer.

    Returns:
        The plaintext length; *out* holds it only if this returns.

    Raises:
        IntegrityError: one message for every way the blob, header or key can be wrong,
            *out* too small included.
    """
    try:
        return _stream.open_into(data_key, blob, header.to_bytes(), out)
    except IntegrityError as exc:
        raise _failed(header, exc) from None


def open_stream(header: RecordHeader, source: Reader, sink: Writer, data_key: bytes) -> int:
    """Authenticate and decrypt a blob of either format from *source* into *sink*.

    Format 2 is opened segment by segment in constant memory; each segment's plaintext
    is written once it authenticates, so the output is complete only if this returns.

    Returns:
        The plaintext length.

    Raises:
        IntegrityError: one message for truncation, extension, reordering, a changed
            byte, a wrong key or header.
    """
    return _opaque(header, lambda: _open_stream_detailed(header, source, sink, data_key))


def _open_stream_detailed(
    header: RecordHeader, source: Reader, sink: Writer, data_key: bytes
) -> int:
    # A format-1 blob is small by construction: read it whole (bounded) and open it.
    prefix = memoryview(bytearray(len(BLOB_PREFIX)))
    got = _stream.read_full(source, prefix)
    if bytes(prefix[:got]) == BLOB_PREFIX:
        rest = memoryview(bytearray(STREAM_THRESHOLD + _aead.OVERHEAD + 1))
        n = _stream.read_full(source, rest)
        if n > STREAM_THRESHOLD + _aead.OVERHEAD:
            raise IntegrityError("format-1 blob is larger than seal makes them")
        plaintext = _aead.open_sealed(data_key, bytes(rest[:n]), header.to_bytes())
        sink.write(memoryview(plaintext))
        return len(plaintext)
    return _stream.open_stream(
        data_key, _Prepend(bytes(prefix[:got]), source), sink, header.to_bytes()
    )


class _Prepend:
    """A reader that yields *head* and then the rest of *source*."""

    def __init__(self, head: bytes, source: Reader) -> None:
        self._head = memoryview(head)
        self._source = source

    def readinto(self, buffer: memoryview, /) -> int | None:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._source.readinto(buffer)


def open_range(
    header: RecordHeader,
    source: SeekableReader,
    blob_size: int,
    data_key: bytes,
    *,
    start: int,
    length: int,
) -> bytes:
    """Decrypt bytes ``[start, start + length)`` of a record, opening only their segments.

    Args:
        header: the record header.
        source: the blob, seekable.
        blob_size: the blob's stored size.
        data_key: the record's unwrapped data key.
        start: first plaintext byte.
        length: number of bytes.

    Returns:
        The bytes of the range.

    Raises:
        BadRequest: the range lies outside the plaintext.
        IntegrityError: one message for every way the blob, header or key can be wrong.
    """
    if start < 0 or length < 0:
        raise BadRequest(f"range {start}+{length} is negative")
    return _opaque(
        header,
        lambda: _open_range_detailed(
            header, source, blob_size, data_key, start=start, length=length
        ),
    )


def _open_range_detailed(
    header: RecordHeader,
    source: SeekableReader,
    blob_size: int,
    data_key: bytes,
    *,
    start: int,
    length: int,
) -> bytes:
    source.seek(0)
    prefix = memoryview(bytearray(len(BLOB_PREFIX)))
    got = _stream.read_full(source, prefix)
    if bytes(prefix[:got]) == BLOB_PREFIX:
        if blob_size > STREAM_THRESHOLD + BLOB_OVERHEAD:
            raise IntegrityError("format-1 blob is larger than seal makes them")
        source.seek(0)
        whole = memoryview(bytearray(blob_size))
        if _stream.read_full(source, whole) != blob_size:
            raise IntegrityError("blob is shorter than its stored size")
        plaintext = _open_detailed(header, bytes(whole), data_key)
        if start + length > len(plaintext):
            raise BadRequest(
                f"range {start}+{length} is outside the {len(plaintext)}-byte plaintext"
            )
        return plaintext[start : start + length]
    return _stream.open_range(
        data_key, source, blob_size, header.to_bytes(), start=start, length=length
    )


def open_blob(header: RecordHeader, blob: bytes, data_key: bytes) -> bytes:
    """Authenticate and decrypt a blob made by :func:`seal`.

    Args:
        header: the record header the blob was sealed under.
        blob: the stored blob.
        data_key: the record's unwrapped 32-byte data key.

    Returns:
        The plaintext.

    Raises:
        IntegrityError: for every way the blob, header or key can be wrong (wrong magic
            or version, truncation, oversize, a changed byte, a wrong key), with one
            message; the specific cause goes to this module's logger only.
    """
    try:
        return _open_detailed(header, blob, data_key)
    except IntegrityError as exc:
        raise _failed(header, exc) from None


def _open_detailed(header: RecordHeader, blob: bytes, data_key: bytes) -> bytes:
    # The messages raised here name the cause; open_blob keeps them for the log only.
    if blob.startswith(STREAM_PREFIX):
        if len(blob) > _stream.sealed_size(MAX_PLAINTEXT_BYTES, _stream.MIN_SEGMENT_SIZE):
            raise IntegrityError(f"stream of {len(blob)} bytes is over the in-memory limit")
        view = memoryview(blob)
        out = bytearray(len(blob))
        n = _stream.open_into(data_key, view, header.to_bytes(), out)
        return bytes(memoryview(out)[:n])
    if not blob.startswith(BLOB_PREFIX):
        raise IntegrityError("blob does not start with the format-1 magic")
    if len(blob) > MAX_PLAINTEXT_BYTES + BLOB_OVERHEAD:
        raise IntegrityError(f"blob of {len(blob)} bytes is larger than seal can produce")
    # A view, so the ciphertext is not copied before it is decrypted.
    return _aead.open_sealed(data_key, memoryview(blob)[len(BLOB_PREFIX) :], header.to_bytes())
