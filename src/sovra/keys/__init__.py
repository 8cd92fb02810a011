"""Envelope encryption and key custodians.

Each record is sealed under a fresh data key (:func:`seal`), bound to its header; the data
key is wrapped by the home jurisdiction's custodian (:class:`Custodian`), which releases it
again only against a fresh, logged allow. Secret key files are handled by
:mod:`sovra.keys.files`. The AEAD primitive sits behind ``sovra.keys._aead``.
"""

from sovra.keys.custodian import (
    BaseCustodian,
    Clock,
    Custodian,
    JournalEntry,
    LocalCustodian,
    system_clock_ms,
)
from sovra.keys.envelope import DATA_KEY_SIZE, open_blob, seal
from sovra.keys.files import (
    generate_ed25519,
    load_ed25519,
    public_bytes,
    read_secret,
    write_secret,
)

__all__ = [
    "DATA_KEY_SIZE",
    "BaseCustodian",
    "Clock",
    "Custodian",
    "JournalEntry",
    "LocalCustodian",
    "generate_ed25519",
    "load_ed25519",
    "open_blob",
    "public_bytes",
    "read_secret",
    "seal",
    "system_clock_ms",
    "write_secret",
]
