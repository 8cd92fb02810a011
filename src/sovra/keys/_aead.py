"""AES-256-GCM primitives: the one AEAD every sealed byte in sovra goes through.

Only 256-bit keys, 96-bit nonces and 128-bit tags are accepted; GCM with any other
nonce length runs the nonce through GHASH, which is where implementations have broken.
Nonces are random (``os.urandom``): a key here seals one record or one data key, far
below the 2**32 messages after which random 96-bit nonces risk a collision.

Decryption failures raise :class:`~sovra.errors.IntegrityError` with a reason meant for
the caller's log only; the public layers above replace it with one opaque message.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovra.errors import BadRequest, IntegrityError

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "OVERHEAD",
    "TAG_SIZE",
    "decrypt",
    "encrypt",
    "new_key",
    "open_sealed",
    "open_with",
    "seal",
    "seal_with",
]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
"""Bytes :func:`seal` adds to a plaintext: the nonce in front, the tag behind."""


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_SIZE)


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt with an explicit nonce and return ``ciphertext || tag``.

    Callers MUST NOT use a nonce twice under one key; :func:`seal` draws one for them.
    This form exists so that known-answer vectors can be checked.

    Raises:
        BadRequest: the key is not 32 bytes or the nonce is not 12 bytes.
    """
    if len(key) != KEY_SIZE:
        raise BadRequest(f"an AES-256-GCM key is {KEY_SIZE} bytes, got {len(key)}")
    if len(nonce) != NONCE_SIZE:
        raise BadRequest(f"an AES-GCM nonce is {NONCE_SIZE} bytes here, got {len(nonce)}")
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(
    key: bytes, nonce: bytes | memoryview, ciphertext: bytes | memoryview, aad: bytes
) -> bytes:
    """Authenticate and decrypt ``ciphertext || tag``.

    Raises:
        IntegrityError: wrong key or nonce size, input shorter than a tag, or the tag
            does not authenticate the ciphertext and *aad*.
    """
    if len(key) != KEY_SIZE:
        raise IntegrityError(f"key is {len(key)} bytes, not {KEY_SIZE}")
    if len(nonce) != NONCE_SIZE:
        raise IntegrityError(f"nonce is {len(nonce)} bytes, not {NONCE_SIZE}")
    if len(ciphertext) < TAG_SIZE:
        raise IntegrityError(f"ciphertext of {len(ciphertext)} bytes is shorter than a tag")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise IntegrityError("AES-GCM tag does not verify") from None


def seal(key: bytes, plaintext: bytes, aad: bytes, *, prefix: bytes = b"") -> bytes:
    """Encrypt under a fresh random nonce and return ``prefix || nonce || ciphertext || tag``.

    The result is assembled with one copy of the ciphertext, whatever the prefix.

    Raises:
        BadRequest: the key is not 32 bytes.
    """
    nonce = os.urandom(NONCE_SIZE)
    return b"".join((prefix, nonce, encrypt(key, nonce, plaintext, aad)))


def seal_with(cipher: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """As :func:`seal`, with an ``AESGCM`` object made once for a key used many times."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + cipher.encrypt(nonce, plaintext, aad)


def open_with(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    """As :func:`open_sealed`, with an ``AESGCM`` object made once for a key.

    Raises:
        IntegrityError: truncated input, or the tag does not authenticate.
    """
    if len(sealed) < OVERHEAD:
        raise IntegrityError(f"sealed input of {len(sealed)} bytes is shorter than {OVERHEAD}")
    try:
        return cipher.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
    except InvalidTag:
        raise IntegrityError("AES-GCM tag does not verify") from None


def open_sealed(key: bytes, sealed: bytes | memoryview, aad: bytes) -> bytes:
    """Reverse :func:`seal` (without its prefix); a memoryview is read without a copy.

    Raises:
        IntegrityError: truncated input, wrong key, or any byte of *sealed* or *aad*
            differs from what was sealed.
    """
    if len(sealed) < OVERHEAD:
        raise IntegrityError(f"sealed input of {len(sealed)} bytes is shorter than {OVERHEAD}")
    return decrypt(key, sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
