"""Custodian key files sealed at rest: under a passphrase (scrypt) or an operator's key file.

A sealed KEK file (format 2) wraps the whole format-1 document::

    {
      "type": "sovra-custodian-keys-sealed",
      "format": 2,
      "jurisdiction": "PL",
      "kdf": {"name": "scrypt", "salt": "<32 hex>", "n": 32768, "r": 8, "p": 1}
             | {"name": "key-file"},
      "sealed": "<base64: nonce | AES-256-GCM(wrapping key, format-1 bytes) | tag>"
    }

The associated data is ``"sovra-custodian-keys-sealed/v1\\n" + jurisdiction + "\\n" +``
the canonical JSON of ``kdf``, so a file moved to another jurisdiction or given other KDF
parameters does not open. scrypt parameters follow RFC 7914's interactive-use guidance
(N = 2**15, r = 8, p = 1: about 32 MiB and a tenth of a second); the parser bounds them so
a crafted file cannot make opening it a denial of service.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sovra.errors import ConfigError, IntegrityError
from sovra.keys import _aead
from sovra.keys.files import StrPath, read_secret
from sovra.model import canonical_json

__all__ = [
    "SEALED_TYPE",
    "Sealer",
    "Unlock",
    "is_sealed",
    "new_sealer",
    "seal_key_file",
    "unseal_key_file",
]

SEALED_TYPE = "sovra-custodian-keys-sealed"
_TAG = b"sovra-custodian-keys-sealed/v1\n"
_MAX_LOG2_N = 20
_SALT = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True, repr=False)
class Unlock:
    """How a sealed key file is opened: a passphrase or a 32-byte key file, never both."""

    passphrase: bytes | None = None
    key: bytes | None = None
    log2_n: int = 15

    def __post_init__(self) -> None:
        if (self.passphrase is None) == (self.key is None):
            raise ConfigError("unlock a key file with a passphrase or a key file, not both")
        if self.passphrase is not None and len(self.passphrase) < 8:
            raise ConfigError("a passphrase for custodian keys needs at least 8 bytes")
        if self.key is not None and len(self.key) != _aead.KEY_SIZE:
            raise ConfigError(f"a sealing key file holds exactly {_aead.KEY_SIZE} bytes")
        if not 14 <= self.log2_n <= _MAX_LOG2_N:
            raise ConfigError(f"scrypt cost log2(N) must be 14..{_MAX_LOG2_N}")

    @classmethod
    def from_passphrase(cls, passphrase: str, *, log2_n: int = 15) -> Unlock:
        """Unlock with a passphrase (UTF-8).

        Raises:
            ConfigError: shorter than 8 bytes, or the cost is out of range.
        """
        return cls(passphrase=passphrase.encode(), log2_n=log2_n)

    @classmethod
    def from_key_file(cls, path: StrPath) -> Unlock:
        """Unlock with an operator-provided 32-byte key file (mode 0600).

        Raises:
            ConfigError: as :func:`~sovra.keys.files.read_secret`, or not 32 bytes.
        """
        return cls(key=read_secret(path, expected_len=_aead.KEY_SIZE))

    def __repr__(self) -> str:
        return "Unlock(passphrase)" if self.passphrase is not None else "Unlock(key-file)"


@dataclass(frozen=True, slots=True, repr=False)
class Sealer:
    """A derived wrapping key and the KDF description stored with it."""

    key: bytes
    kdf: dict[str, Any]


def _derive(unlock: Unlock, kdf: dict[str, Any]) -> bytes:
    if kdf["name"] == "key-file":
        if unlock.key is None:
            raise ConfigError("this key file is sealed under a key file; give --key-file")
        return unlock.key
    if unlock.passphrase is None:
        raise ConfigError("this key file is sealed under a passphrase; give the passphrase")
    return Scrypt(
        salt=bytes.fromhex(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]
    ).derive(unlock.passphrase)


def new_sealer(unlock: Unlock) -> Sealer:
    """A fresh sealer for *unlock* (a new salt for a passphrase)."""
    if unlock.key is not None:
        kdf: dict[str, Any] = {"name": "key-file"}
    else:
        kdf = {"name": "scrypt", "salt": os.urandom(16).hex(), "n": 2**unlock.log2_n, "r": 8}
        kdf["p"] = 1
    return Sealer(_derive(unlock, kdf), kdf)


def _aad(jurisdiction: str, kdf: dict[str, Any]) -> bytes:
    return _TAG + jurisdiction.encode() + b"\n" + canonical_json(kdf)


def seal_key_file(plain: bytes, jurisdiction: str, sealer: Sealer) -> bytes:
    """Wrap a format-1 key document into a sealed (format 2) one."""
    sealed = _aead.seal(sealer.key, plain, _aad(jurisdiction, sealer.kdf))
    body = {
        "type": SEALED_TYPE,
        "format": 2,
        "jurisdiction": jurisdiction,
        "kdf": sealer.kdf,
        "sealed": base64.b64encode(sealed).decode(),
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def is_sealed(data: bytes) -> bool:
    """Whether *data* looks like a sealed key file (the parser decides for certain)."""
    return f'"{SEALED_TYPE}"'.encode() in data[:200]


def _check_kdf(kdf: object) -> dict[str, Any]:
    if kdf == {"name": "key-file"}:
        return {"name": "key-file"}
    if not isinstance(kdf, dict) or set(kdf) != {"name", "salt", "n", "r", "p"}:
        raise ConfigError("sealed key file: kdf must be key-file or scrypt(salt, n, r, p)")
    n, r, p = kdf["n"], kdf["r"], kdf["p"]
    ok = (
        kdf["name"] == "scrypt"
        and isinstance(kdf["salt"], str)
        and _SALT.fullmatch(kdf["salt"]) is not None
        and all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p))
        and n in {2**k for k in range(14, _MAX_LOG2_N + 1)}
        and r == 8
        and p == 1
    )
    if not ok:
        raise ConfigError("sealed key file: scrypt parameters are out of the accepted range")
    return dict(kdf)


def unseal_key_file(data: bytes, jurisdiction: str, unlock: Unlock | None) -> tuple[bytes, Sealer]:
    """Open a sealed key file; returns the format-1 document and the sealer to rewrite it.

    Raises:
        ConfigError: malformed, of another jurisdiction, no or the wrong kind of unlock,
            or the passphrase or key file does not open it (one message for both).
    """
    if unlock is None:
        raise ConfigError(
            "the custodian key file is sealed; give its passphrase or key file to open it"
        )
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ConfigError("sealed key file is not valid JSON") from None
    if not isinstance(obj, dict) or set(obj) != {"type", "format", "jurisdiction", "kdf", "sealed"}:
        raise ConfigError(
            "sealed key file must have exactly type, format, jurisdiction, kdf, sealed"
        )
    if obj["type"] != SEALED_TYPE or obj["format"] != 2:
        raise ConfigError("sealed key file has the wrong type or format")
    if obj["jurisdiction"] != jurisdiction:
        raise ConfigError(f"sealed key file holds keys of {obj['jurisdiction']!r}")
    kdf = _check_kdf(obj["kdf"])
    try:
        sealed = base64.b64decode(obj["sealed"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ConfigError("sealed key file: 'sealed' is not base64") from None
    key = _derive(unlock, kdf)
    try:
        plain = _aead.open_sealed(key, sealed, _aad(jurisdiction, kdf))
    except IntegrityError:
        raise ConfigError(
            "the passphrase or key file does not open this custodian key file"
        ) from None
    return plain, Sealer(key, kdf)
