"""Helpers for client-side sealing tests: a prepared record header, and the key envelope
of format 1 (before HPKE through the library), written from its description in
docs/keys.md, not from sovra's code: what clients made before, so tests can show such
envelopes still open."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sovra.keys import transport
from sovra.model import RecordHeader, subject_commitment

ALICE = subject_commitment(b"c" * 32, "PL", "alice")


def sealed_header(record_id: str = "rec-1", subject: str = ALICE) -> RecordHeader:
    """A header as the gateway prepares one for client-side sealing."""
    return RecordHeader(
        record_id=record_id,
        subject=subject,
        jurisdiction="PL",
        region="eu-central",
        kek_version=1,
        content_type=transport.CLIENT_SEALED_CONTENT_TYPE,
    )


def seal_v1(recipient: bytes, data_key: bytes, direction: str, header: RecordHeader) -> bytes:
    """``ephemeral (32) | nonce (12) | AES-256-GCM(k, data key) | tag (16)``."""
    ephemeral = X25519PrivateKey.generate()
    eph = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    label = b"sovra-key-envelope/v1\n" + direction.encode() + b"\n" + header.to_bytes()
    k = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph + recipient, info=label).derive(shared)
    nonce = os.urandom(12)
    return eph + nonce + AESGCM(k).encrypt(nonce, data_key, label)
