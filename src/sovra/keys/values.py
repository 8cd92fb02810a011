"""Protected values: what minimisation puts in a record in place of a value it tokenizes
or seals, and what only the subject's custodian can turn back.

Both forms are AES-256-SIV (RFC 5297) under a key derived from the subject's key, so they
are reversible by her custodian alone and die with her key when she is crypto-shredded::

    value key = HKDF-SHA256(subject key, salt = none,
                            info = "sovra-values/v1\\n" + jurisdiction + "\\n" + subject), 64 bytes

``tokenize`` is deterministic: the same canonical value of the same kind and subject gives
the same token in every record, so records still join on it, and the body is
``SIV(value; ad = ["tokenize", kind])``. ``seal`` is randomised and bound to one record:
the body is ``nonce(16) || SIV(value; ad = ["seal", kind, record id, nonce])``, so equal
values do not link and a sealed value copied into another record does not open. Bodies
travel as unpadded base64url.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sovra.errors import BadRequest, IntegrityError

__all__ = [
    "MAX_BATCH_VALUES",
    "MAX_BODY_CHARS",
    "MAX_VALUE_BYTES",
    "Mode",
    "open_value",
    "protect_value",
    "value_key",
]

MAX_VALUE_BYTES = 1024
"""Longest value one protect call takes; findings are identifiers, not documents."""
MAX_BODY_CHARS = 2048
"""Longest protected body accepted for reveal (a 1 KiB value, nonce and tag in base64)."""
MAX_BATCH_VALUES = 10_000
"""Most values one protect or reveal call carries."""
_NONCE = 16
_TAG = 16
_INFO = b"sovra-values/v1\n"


class Mode(enum.StrEnum):
    """How a value is protected."""

    TOKENIZE = "tokenize"
    SEAL = "seal"


def value_key(subject_key: bytes, jurisdiction: str, subject: str) -> bytes:
    """The AES-256-SIV key protecting *subject*'s values, derived from her key."""
    info = _INFO + f"{jurisdiction}\n{subject}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=info).derive(subject_key)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(body: str) -> bytes:
    if not isinstance(body, str) or len(body) > MAX_BODY_CHARS:
        raise IntegrityError("protected value body is not a string of at most 2048 characters")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise IntegrityError("protected value body is not base64url") from None


def protect_value(key: bytes, mode: Mode, kind: str, record_id: str, value: str) -> str:
    """The protected body of *value*: a token (deterministic) or a sealed value (per record).

    Raises:
        BadRequest: *value* is empty or over :data:`MAX_VALUE_BYTES` bytes in UTF-8.
    """
    data = value.encode("utf-8", "surrogatepass")
    if not 0 < len(data) <= MAX_VALUE_BYTES:
        raise BadRequest(f"a protected value is 1..{MAX_VALUE_BYTES} bytes, got {len(data)}")
    siv = AESSIV(key)
    if mode is Mode.TOKENIZE:
        return _encode(siv.encrypt(data, [b"tokenize", kind.encode()]))
    nonce = os.urandom(_NONCE)
    return _encode(nonce + siv.encrypt(data, [b"seal", kind.encode(), record_id.encode(), nonce]))


def open_value(key: bytes, mode: Mode, kind: str, record_id: str, body: str) -> str:
    """Reverse :func:`protect_value`.

    Raises:
        IntegrityError: the body is malformed, or was not made under this key for this
            mode and kind (and, when sealed, this record).
    """
    data = _decode(body)
    siv = AESSIV(key)
    try:
        if mode is Mode.TOKENIZE:
            if len(data) <= _TAG:
                raise IntegrityError("token is too short")
            plain = siv.decrypt(data, [b"tokenize", kind.encode()])
        else:
            if len(data) <= _NONCE + _TAG:
                raise IntegrityError("sealed value is too short")
            nonce = data[:_NONCE]
            plain = siv.decrypt(data[_NONCE:], [b"seal", kind.encode(), record_id.encode(), nonce])
    except InvalidTag:
        raise IntegrityError(f"{mode} value does not authenticate") from None
    return plain.decode("utf-8", "surrogatepass")
