"""Envelope encryption, streaming, and key custodians.

Keys form a hierarchy: jurisdiction KEKs (versioned) -> subject keys -> record data keys.
Each record is sealed under a fresh data key (:func:`seal`; records of any size in
segments with :func:`seal_stream`), bound to its header; the data key is wrapped under the
subject's key by the home jurisdiction's custodian (:class:`Custodian`), which releases it
only against a fresh, logged allow, and destroys the subject key on erasure
(crypto-shredding). Secret key files are handled by :mod:`sovra.keys.files`. The AEAD
primitives sit behind ``sovra.keys._aead`` and ``sovra.keys._stream``.
"""

from sovra.keys.custodian import BaseCustodian, Clock, system_clock_ms
from sovra.keys.envelope import (
    DATA_KEY_SIZE,
    open_blob,
    open_into,
    open_range,
    open_stream,
    seal,
    seal_into,
    seal_stream,
    sealed_size,
)
from sovra.keys.files import (
    generate_ed25519,
    load_ed25519,
    public_bytes,
    read_secret,
    write_secret,
)
from sovra.keys.local import LocalCustodian
from sovra.keys.protocol import Custodian, CustodianStatus, JournalEntry

__all__ = [
    "DATA_KEY_SIZE",
    "BaseCustodian",
    "Clock",
    "Custodian",
    "CustodianStatus",
    "JournalEntry",
    "LocalCustodian",
    "generate_ed25519",
    "load_ed25519",
    "open_blob",
    "open_into",
    "open_range",
    "open_stream",
    "public_bytes",
    "read_secret",
    "seal",
    "seal_into",
    "seal_stream",
    "sealed_size",
    "system_clock_ms",
    "write_secret",
]
