"""Envelope encryption of one record: a fresh data key per record, bound to its header.

Blob layout (format version 1)::

    b"SOVR" | 0x01 | nonce (12) | ciphertext | tag (16)

The associated data is :meth:`RecordHeader.to_bytes`, so a blob moved to another record,
subject, jurisdiction, region or key version no longer opens. The data key never leaves
this module except to be wrapped by the jurisdiction's custodian.

Python cannot reliably wipe memory (bytes are immutable, the allocator and the garbage
collector copy and keep freed buffers), so no zeroize-style clearing of data keys is
attempted here; keeping keys short-lived and unreferenced is the best this layer can do.
"""

from __future__ import annotations

import logging

from sovra.errors import IntegrityError, PayloadTooLarge
from sovra.keys import _aead
from sovra.model import RecordHeader

__all__ = [
    "BLOB_OVERHEAD",
    "BLOB_PREFIX",
    "DATA_KEY_SIZE",
    "MAX_PLAINTEXT_BYTES",
    "open_blob",
    "seal",
]

_log = logging.getLogger(__name__)

BLOB_PREFIX = b"SOVR\x01"
"""Magic and format version; a future format gets a new version byte, never a new meaning."""
DATA_KEY_SIZE = _aead.KEY_SIZE
BLOB_OVERHEAD = len(BLOB_PREFIX) + _aead.OVERHEAD
MAX_PLAINTEXT_BYTES = 64 * 1024 * 1024
"""One-shot records are held in memory whole; larger payloads need a streaming format."""


def seal(header: RecordHeader, plaintext: bytes) -> tuple[bytes, bytes]:
    """Encrypt *plaintext* under a fresh data key bound to *header*.

    Args:
        header: the record header; its canonical bytes are the associated data.
        plaintext: the record's content, at most :data:`MAX_PLAINTEXT_BYTES`.

    Returns:
        ``(blob, data_key)``: the blob to store and the 32-byte data key, which the
        caller MUST hand to the custodian to wrap and MUST NOT store in the clear.

    Raises:
        PayloadTooLarge: *plaintext* is over :data:`MAX_PLAINTEXT_BYTES`.
    """
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise PayloadTooLarge(
            f"record {header.record_id} is {len(plaintext)} bytes, "
            f"over the {MAX_PLAINTEXT_BYTES}-byte limit for one record"
        )
    data_key = _aead.new_key()
    blob = BLOB_PREFIX + _aead.seal(data_key, plaintext, header.to_bytes())
    return blob, data_key


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
        _log.warning("record %s failed authentication: %s", header.record_id, exc.message)
        raise IntegrityError(f"record {header.record_id} failed authentication") from None


def _open_detailed(header: RecordHeader, blob: bytes, data_key: bytes) -> bytes:
    # The messages raised here name the cause; open_blob keeps them for the log only.
    if not blob.startswith(BLOB_PREFIX):
        raise IntegrityError("blob does not start with the format-1 magic")
    if len(blob) > MAX_PLAINTEXT_BYTES + BLOB_OVERHEAD:
        raise IntegrityError(f"blob of {len(blob)} bytes is larger than seal can produce")
    return _aead.open_sealed(data_key, blob[len(BLOB_PREFIX) :], header.to_bytes())
