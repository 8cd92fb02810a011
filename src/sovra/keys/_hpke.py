"""RFC 9180 HPKE (base mode, single shot) through pyca's ``hpke`` module: the suites sovra
uses, their keys, and one message layout.

A message is RFC 9180's ``suite_id`` followed by the library's output::

    "HPKE" | kem_id (u16) | kdf_id (u16) | aead_id (u16) | enc | ciphertext | tag

The ids are the IANA HPKE registry's. The header is not a secret and not authenticated on
its own: a message whose header names another suite is refused before anything is
decrypted (precisely: the suites are public), and a changed header fails the decryption
anyway, since the suite is part of the key schedule.

Suites (KEM, KDF, AEAD):

=================== ========================== =========== ================
name                KEM                        KDF         AEAD
=================== ========================== =========== ================
``x25519``          DHKEM(X25519, HKDF-SHA256) HKDF-SHA256 ChaCha20Poly1305
``mlkem768-x25519`` MLKEM768-X25519 (X-Wing)   HKDF-SHA256 ChaCha20Poly1305
``mlkem1024-p384``  MLKEM1024-P384             HKDF-SHA384 AES-256-GCM
=================== ========================== =========== ================

Each is exactly a suite that RFC 9180 (appendix A.2) or draft-ietf-hpke-pq publishes
test vectors for, so every one is checked against an outside vector
(tests/keys/test_keys_hpke_vectors.py).

The hybrid KEMs are draft-ietf-hpke-pq's (``0x647a``, ``0x0051``): the library
implements them; nothing here combines secrets. A private key is kept as the spec's
32-byte seed and expanded as the draft does (SHAKE256 of the seed: ML-KEM's 64-byte seed
``d || z``, then the classical key), so a seed of the draft's test vectors gives its
public key. A public key is the draft's encoding: the ML-KEM encapsulation key, then the
X25519 key or the uncompressed P-384 point. The three public key sizes differ (32, 1216,
1665 bytes), so a public key names its suite by its size.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovra.errors import BadRequest, IntegrityError

__all__ = [
    "DEFAULT_SUITE",
    "HEADER_SIZE",
    "SEED_SIZE",
    "SUITES",
    "PrivateKey",
    "Suite",
    "check_layout",
    "check_public",
    "derive",
    "generate",
    "open_message",
    "seal",
    "suite",
    "suite_of_public",
]

MAGIC = b"HPKE"
HEADER_SIZE = len(MAGIC) + 6
SEED_SIZE = 32
_MLKEM768_PK = 1184
_MLKEM1024_PK = 1568
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


@dataclass(frozen=True)
class Suite:
    """One HPKE suite: the library's parameters, the registry's ids, and sizes."""

    name: str
    title: str
    kem_id: int
    kdf_id: int
    aead_id: int
    public_size: int
    rank: int  # 0 classical; a higher rank is accepted wherever a lower one is asked for
    library: hpke.Suite = field(repr=False, compare=False)

    @property
    def header(self) -> bytes:
        """RFC 9180's ``suite_id``: ``"HPKE" | kem_id | kdf_id | aead_id``."""
        return MAGIC + struct.pack(">HHH", self.kem_id, self.kdf_id, self.aead_id)

    @property
    def enc_size(self) -> int:
        """The size of the encapsulated key in a message of this suite."""
        return int(self.library_kem.enc_length())

    @property
    def library_kem(self) -> Any:
        return _KEMS[self.name]

    def describe(self) -> str:
        """The suite's name and registry ids, as error messages give them."""
        return f"{self.title} (0x{self.kem_id:04x}, 0x{self.kdf_id:04x}, 0x{self.aead_id:04x})"


_KEMS = {
    "x25519": hpke.KEM.X25519,
    "mlkem768-x25519": hpke.KEM.MLKEM768_X25519,
    "mlkem1024-p384": hpke.KEM.MLKEM1024_P384,
}
SUITES: dict[str, Suite] = {
    "x25519": Suite(
        "x25519", "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305",
        0x0020, 0x0001, 0x0003, 32, 0,
        hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
    ),
    "mlkem768-x25519": Suite(
        "mlkem768-x25519", "MLKEM768-X25519, HKDF-SHA256, ChaCha20Poly1305",
        0x647A, 0x0001, 0x0003, _MLKEM768_PK + 32, 1,
        hpke.Suite(
            hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305
        ),
    ),
    "mlkem1024-p384": Suite(
        "mlkem1024-p384", "MLKEM1024-P384, HKDF-SHA384, AES-256-GCM",
        0x0051, 0x0002, 0x0002, _MLKEM1024_PK + 97, 2,
        hpke.Suite(hpke.KEM.MLKEM1024_P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM),
    ),
}  # fmt: skip
DEFAULT_SUITE = "x25519"
_BY_HEADER = {s.header: s for s in SUITES.values()}
_BY_PUBLIC_SIZE = {s.public_size: s for s in SUITES.values()}


def suite(name: str) -> Suite:
    """The suite called *name*.

    Raises:
        BadRequest: no such suite.
    """
    found = SUITES.get(name)
    if found is None:
        raise BadRequest(f"unknown HPKE suite {name!r}; one of {', '.join(SUITES)}")
    return found


@dataclass(frozen=True, repr=False)
class PrivateKey:
    """A private key of one suite, with its encoded public key."""

    suite: Suite
    key: Any = field(compare=False)
    public: bytes


def derive(name: str, seed: bytes) -> PrivateKey:
    """The key pair of suite *name* whose private key is the 32-byte *seed*.

    For ``x25519`` the seed is the private key itself (RFC 7748 clamps it); for the
    hybrid suites it is expanded as draft-ietf-hpke-pq does.

    Raises:
        BadRequest: unknown suite, or a seed that is not 32 bytes.
    """
    s = suite(name)
    if len(seed) != SEED_SIZE:
        raise BadRequest(f"an HPKE key seed is {SEED_SIZE} bytes, got {len(seed)}")
    key: Any
    if s.name == "x25519":
        key = x25519.X25519PrivateKey.from_private_bytes(seed)
        public = key.public_key().public_bytes_raw()
    elif s.name == "mlkem768-x25519":
        expanded = hashlib.shake_256(seed).digest(96)
        pq = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        classical = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
        key = hpke.MLKEM768X25519PrivateKey(pq, classical)
        public = pq.public_key().public_bytes_raw() + classical.public_key().public_bytes_raw()
    else:
        expanded = hashlib.shake_256(seed).digest(64 + 48)
        pq1024 = mlkem.MLKEM1024PrivateKey.from_seed_bytes(expanded[:64])
        scalar = int.from_bytes(expanded[64:], "big")
        if not 0 < scalar < _P384_ORDER:  # probability about 2**-190
            raise BadRequest("this seed gives no P-384 key; use another")
        p384 = ec.derive_private_key(scalar, ec.SECP384R1())
        key = hpke.MLKEM1024P384PrivateKey(pq1024, p384)
        point = p384.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        public = pq1024.public_key().public_bytes_raw() + point
    return PrivateKey(s, key, public)


def generate(name: str = DEFAULT_SUITE) -> PrivateKey:
    """A fresh key pair of suite *name*."""
    return derive(name, os.urandom(SEED_SIZE))


def suite_of_public(public: bytes) -> Suite:
    """The suite of an encoded public key, named by its size.

    Raises:
        BadRequest: a size no suite has.
    """
    found = _BY_PUBLIC_SIZE.get(len(public))
    if found is None:
        sizes = ", ".join(f"{s.public_size} ({s.name})" for s in SUITES.values())
        raise BadRequest(
            f"a public key of {len(public)} bytes is of no HPKE suite (sizes: {sizes})"
        )
    return found


def _public_key(public: bytes) -> tuple[Suite, Any]:
    """Parse an encoded public key.

    Raises:
        BadRequest: no suite has its size, or its parts are not valid keys.
    """
    s = suite_of_public(public)
    try:
        if s.name == "x25519":
            return s, x25519.X25519PublicKey.from_public_bytes(public)
        if s.name == "mlkem768-x25519":
            return s, hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(public[:_MLKEM768_PK]),
                x25519.X25519PublicKey.from_public_bytes(public[_MLKEM768_PK:]),
            )
        return s, hpke.MLKEM1024P384PublicKey(
            mlkem.MLKEM1024PublicKey.from_public_bytes(public[:_MLKEM1024_PK]),
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), public[_MLKEM1024_PK:]),
        )
    except ValueError:
        raise BadRequest(f"the recipient is not a usable {s.name} public key") from None


def check_public(public: bytes) -> Suite:
    """Refuse a public key no message can be sealed to; return its suite.

    Raises:
        BadRequest: as :func:`seal` would for this key.
    """
    s, key = _public_key(public)
    if s.name == "x25519":
        try:  # a point of small order shares no secret with anyone: RFC 9180's Encap fails
            x25519.X25519PrivateKey.generate().exchange(key)
        except ValueError:
            raise BadRequest("the recipient is not a usable x25519 public key") from None
    return s


def seal(public: bytes, plaintext: bytes, info: bytes) -> bytes:
    """Encrypt *plaintext* to the encoded public key *public*, bound to *info*.

    The suite is the public key's (:func:`suite_of_public`).

    Raises:
        BadRequest: *public* is of no suite, or not a usable key of its suite.
    """
    s, key = _public_key(public)
    try:
        return s.header + s.library.encrypt(plaintext, key, info=info)
    except ValueError:
        raise BadRequest(f"the recipient is not a usable {s.name} public key") from None


def check_layout(private: PrivateKey, message: bytes, size: int) -> None:
    """Refuse, precisely, a message that cannot be for *private*: another suite, no HPKE
    header, or a size other than the suite's for *size* bytes of plaintext.

    Raises:
        BadRequest: each of these, with what was expected.
    """
    want = private.suite
    if len(message) < HEADER_SIZE or not message.startswith(MAGIC):
        raise BadRequest(
            f"not an HPKE message (it starts with no {MAGIC.decode()} suite header); "
            f"expected {want.describe()}"
        )
    header = message[:HEADER_SIZE]
    if not hmac.compare_digest(header, want.header):
        got = _BY_HEADER.get(header)
        kem, kdf, aead = struct.unpack(">HHH", header[len(MAGIC) :])
        named = (
            got.describe() if got else f"an unknown suite (0x{kem:04x}, 0x{kdf:04x}, 0x{aead:04x})"
        )
        raise BadRequest(f"the message is sealed with {named}; this key takes {want.describe()}")
    expected = HEADER_SIZE + want.enc_size + size + 16
    if len(message) != expected:
        raise BadRequest(
            f"the {want.name} message is {len(message)} bytes, not {expected} ({HEADER_SIZE} "
            f"header, {want.enc_size} encapsulated key, {size + 16} sealed): "
            + ("truncated" if len(message) < expected else "more than one sealed key follows")
        )


def open_message(private: PrivateKey, message: bytes, info: bytes, size: int) -> bytes:
    """Reverse :func:`seal` for a message of exactly *size* bytes of plaintext.

    Raises:
        BadRequest: as :func:`check_layout` (public facts about the message).
        IntegrityError: the message does not decrypt under this key and *info* (another
            recipient, another context, a changed byte); one message for all of these.
    """
    check_layout(private, message, size)
    try:
        return private.suite.library.decrypt(message[HEADER_SIZE:], private.key, info=info)
    except (InvalidTag, ValueError):
        raise IntegrityError("the HPKE message does not open") from None
