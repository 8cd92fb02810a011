"""Client-side sealing: data keys that travel between a client and a custodian, past the gateway.

In this mode the client seals a record itself (the blob format of :mod:`sovra.keys.envelope`,
with the header the gateway prepared as associated data) and encrypts the record's data key
to the home custodian's transport key. The gateway forwards that key envelope and stores the
blob; it never holds the data key or the plaintext. On an allowed access the custodian
encrypts the data key to an ephemeral key the client chose for that request.

Key envelope (after HPKE base mode, RFC 9180, built from pyca primitives)::

    ephemeral X25519 public key (32) | nonce (12) | AES-256-GCM(k, data key) | tag (16)
    k    = HKDF-SHA256(ikm = X25519(ephemeral, recipient), salt = ephemeral | recipient,
                       info = label)
    aad  = label = "sovra-key-envelope/v1\\n" purpose "\\n" record header bytes

``purpose`` is ``to-custodian`` (ingest) or ``to-client`` (access), so an envelope made for
one direction, one record or one subject opens for no other.

A custodian's transport key is derived from its KEK of the header's version
(HKDF-SHA256, info ``"sovra-transport-key/v1\\n" J "\\n" v``): it needs no file of its own,
it rotates with the KEK, and it is destroyed with that KEK version.

The gateway hands the client the key to seal to. A client that got the custodians' keys
out of band (``sovra keys transport-key``, run where the KEK files are) pins them in a
:class:`TransportPins` document and refuses any other key the gateway offers::

    {
      "type": "sovra-transport-keys",
      "format": 1,
      "keys": [{"jurisdiction": "PL", "kek_version": 1, "key": "<base64, 32 bytes>"}, ...]
    }
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sovra.errors import BadRequest, IntegrityError, VerificationError
from sovra.keys import _aead
from sovra.keys.envelope import open_blob, seal
from sovra.model import RecordHeader, check_jurisdiction, field_problem, parse_json

__all__ = [
    "CLIENT_SEALED_CONTENT_TYPE",
    "ENVELOPE_SIZE",
    "PINS_FORMAT",
    "PUBLIC_KEY_SIZE",
    "Direction",
    "TransportPins",
    "check_public",
    "derive_transport_key",
    "new_recipient",
    "open_key",
    "open_record",
    "public_bytes",
    "seal_key",
    "seal_record",
]

Direction = Literal["to-custodian", "to-client"]

CLIENT_SEALED_CONTENT_TYPE = "application/vnd.sovra.client-sealed"
"""The content type of a record header the gateway prepares for client-side sealing."""
PUBLIC_KEY_SIZE = 32
ENVELOPE_SIZE = PUBLIC_KEY_SIZE + _aead.OVERHEAD + _aead.KEY_SIZE
"""An envelope always holds one 32-byte data key, so its size is fixed."""
_LABEL = b"sovra-key-envelope/v1\n"
_TRANSPORT_INFO = b"sovra-transport-key/v1\n"
PINS_FORMAT = 1
_PINS_TYPE = "sovra-transport-keys"
_MAX_PINS_BYTES = 1024 * 1024
_MAX_PINS = 4096


def _label(direction: Direction, header: RecordHeader) -> bytes:
    return _LABEL + direction.encode() + b"\n" + header.to_bytes()


def _kdf(shared: bytes, ephemeral: bytes, recipient: bytes, label: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=_aead.KEY_SIZE, salt=ephemeral + recipient, info=label
    )
    return hkdf.derive(shared)


def new_recipient() -> X25519PrivateKey:
    """A fresh key pair for one access request; its public half goes to the custodian."""
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key of *key*."""
    return key.public_key().public_bytes_raw()


def check_public(recipient: bytes) -> None:
    """Refuse anything but a usable 32-byte X25519 public key.

    Raises:
        BadRequest: wrong size, or a low-order point (no shared secret with it).
    """
    if len(recipient) != PUBLIC_KEY_SIZE:
        raise BadRequest(f"an X25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(recipient)}")
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(recipient))
    except ValueError:
        raise BadRequest("the recipient is not a usable X25519 public key") from None


def derive_transport_key(kek: bytes, jurisdiction: str, version: int) -> X25519PrivateKey:
    """A custodian's transport key for KEK *version*; only the custodian can compute it."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_TRANSPORT_INFO + f"{jurisdiction}\n{version}".encode(),
    )
    return X25519PrivateKey.from_private_bytes(hkdf.derive(kek))


def seal_key(
    recipient: bytes, data_key: bytes, direction: Direction, header: RecordHeader
) -> bytes:
    """Encrypt *data_key* to the X25519 public key *recipient*, bound to *header*.

    Raises:
        BadRequest: *recipient* is not a 32-byte X25519 public key, or *data_key* is not
            32 bytes.
    """
    if len(data_key) != _aead.KEY_SIZE:
        raise BadRequest(f"a data key is {_aead.KEY_SIZE} bytes, got {len(data_key)}")
    if len(recipient) != PUBLIC_KEY_SIZE:
        raise BadRequest(f"an X25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(recipient)}")
    try:
        peer = X25519PublicKey.from_public_bytes(recipient)
        ephemeral = X25519PrivateKey.generate()
        shared = ephemeral.exchange(peer)
    except ValueError:
        raise BadRequest("the recipient is not a usable X25519 public key") from None
    eph = public_bytes(ephemeral)
    label = _label(direction, header)
    return eph + _aead.seal(_kdf(shared, eph, recipient, label), data_key, label)


def open_key(
    private: X25519PrivateKey, sealed: bytes, direction: Direction, header: RecordHeader
) -> bytes:
    """Reverse :func:`seal_key`.

    Raises:
        IntegrityError: one message for every way the envelope can be wrong (size, another
            record, subject, direction or recipient, a changed byte).
    """
    if len(sealed) != ENVELOPE_SIZE:
        raise IntegrityError(f"key envelope of record {header.record_id} does not open")
    eph = sealed[:PUBLIC_KEY_SIZE]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph))
        label = _label(direction, header)
        key = _kdf(shared, eph, public_bytes(private), label)
        return _aead.open_sealed(key, sealed[PUBLIC_KEY_SIZE:], label)
    except (ValueError, IntegrityError):
        raise IntegrityError(f"key envelope of record {header.record_id} does not open") from None


def seal_record(header: RecordHeader, plaintext: bytes, custodian: bytes) -> tuple[bytes, bytes]:
    """Seal a record on the client: the blob, and its data key encrypted to the custodian.

    Args:
        header: the header the gateway prepared; its content type MUST be
            :data:`CLIENT_SEALED_CONTENT_TYPE`.
        plaintext: the record's content.
        custodian: the home custodian's transport public key (32 bytes).

    Returns:
        ``(blob, key envelope)``; neither reveals the data key or the plaintext.

    Raises:
        BadRequest: a header not prepared for client-side sealing, or a bad public key.
        PayloadTooLarge: *plaintext* over the in-memory limit of :func:`~sovra.keys.seal`.
    """
    if header.content_type != CLIENT_SEALED_CONTENT_TYPE:
        raise BadRequest(f"record {header.record_id}'s header is not for client-side sealing")
    blob, data_key = seal(header, plaintext)
    return blob, seal_key(custodian, data_key, "to-custodian", header)


def open_record(
    header: RecordHeader, blob: bytes, sealed_key: bytes, private: X25519PrivateKey
) -> bytes:
    """Open a released record on the client with the ephemeral key of the access request.

    Raises:
        IntegrityError: the key envelope, the blob or the header was changed, or the key
            was sealed to another recipient; one message.
    """
    data_key = open_key(private, sealed_key, "to-client", header)
    return open_blob(header, blob, data_key)


@dataclass(frozen=True)
class TransportPins:
    """Custodians' transport keys a client trusts, by ``(jurisdiction, KEK version)``.

    Obtained out of band, never from the gateway: a gateway that offers another key for a
    record (its own, to read the data key) is refused before anything sealed leaves the
    client. Each key MUST be a usable 32-byte X25519 public key.
    """

    keys: Mapping[tuple[str, int], bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for (jurisdiction, version), key in self.keys.items():
            check_jurisdiction(jurisdiction)
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise BadRequest(f"pinned KEK version of {jurisdiction} must be >= 1: {version!r}")
            check_public(key)

    def check(self, jurisdiction: str, kek_version: int, offered: bytes) -> None:
        """Accept *offered* as custodian *jurisdiction*'s key of *kek_version*, or raise.

        Raises:
            VerificationError: no key is pinned for that jurisdiction and version (after a
                rotation: pin the new one), or the pinned key is another.
        """
        pinned = self.keys.get((jurisdiction, kek_version))
        if pinned is None:
            held = sorted(v for j, v in self.keys if j == jurisdiction)
            raise VerificationError(
                f"no transport key of custodian {jurisdiction} is pinned for KEK version "
                f"{kek_version} (pinned versions: {', '.join(map(str, held)) or 'none'}); "
                f"get it out of band (sovra keys transport-key -j {jurisdiction}) and add it"
            )
        if not hmac.compare_digest(pinned, offered):
            raise VerificationError(
                f"the gateway offered a transport key for custodian {jurisdiction} (KEK "
                f"version {kek_version}) that is not the pinned one"
            )

    def to_json(self) -> bytes:
        """The pins document, sorted by jurisdiction and version."""
        keys = [
            {
                "jurisdiction": j,
                "kek_version": v,
                "key": base64.b64encode(self.keys[(j, v)]).decode(),
            }
            for j, v in sorted(self.keys)
        ]
        body = {"type": _PINS_TYPE, "format": PINS_FORMAT, "keys": keys}
        return (json.dumps(body, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> TransportPins:
        """Parse a pins document; unknown fields and duplicate pins are refused.

        Raises:
            BadRequest: oversized, not JSON, another type or format, a malformed entry,
                or one jurisdiction and version pinned twice.
        """
        if len(data) > _MAX_PINS_BYTES:
            raise BadRequest(f"a pins document is at most {_MAX_PINS_BYTES} bytes")
        obj = parse_json(data, limit=_MAX_PINS_BYTES, what="the pins document")
        doc = _fields(obj, {"type", "format", "keys"}, "the pins document")
        if (
            doc["type"] != _PINS_TYPE
            or type(doc["format"]) is not int
            or doc["format"] != PINS_FORMAT
        ):
            raise BadRequest(
                f"not a pins document: type {doc['type']!r} format {doc['format']!r}, "
                f"expected {_PINS_TYPE!r} format {PINS_FORMAT}"
            )
        items = doc["keys"]
        if not isinstance(items, list) or len(items) > _MAX_PINS:
            raise BadRequest(f"keys must be a list of at most {_MAX_PINS} pins")
        keys: dict[tuple[str, int], bytes] = {}
        for n, item in enumerate(items):
            pin = _fields(item, {"jurisdiction", "kek_version", "key"}, f"pin {n}")
            key = _b64_key(pin["key"], n)
            version = pin["kek_version"]
            if type(version) is not int or version < 1:
                raise BadRequest(f"pin {n}: kek_version must be an integer >= 1")
            at = (check_jurisdiction(pin["jurisdiction"]), version)
            if at in keys:
                raise BadRequest(f"pin {n}: {at[0]} KEK version {at[1]} is pinned twice")
            keys[at] = key
        return cls(keys)


def _fields(obj: object, names: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"{what} must be a JSON object")
    problem = field_problem(obj, names, frozenset(), what)
    if problem is not None:
        raise BadRequest(problem)
    return obj


def _b64_key(value: object, n: int) -> bytes:
    if not isinstance(value, str):
        raise BadRequest(f"pin {n}: key must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"pin {n}: key is not base64") from None
