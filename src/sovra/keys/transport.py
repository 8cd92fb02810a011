"""Client-side sealing: data keys that travel between a client and a custodian, past the gateway.

In this mode the client seals a record itself (the blob format of :mod:`sovra.keys.envelope`,
with the header the gateway prepared as associated data) and encrypts the record's data key
to the home custodian's transport key. The gateway forwards that key envelope and stores the
blob; it never holds the data key or the plaintext. On an allowed access the custodian
encrypts the data key to an ephemeral key the client chose for that request.

Key envelope, format 2: an RFC 9180 HPKE message (base mode, single shot, through pyca's
``hpke``; layout in :mod:`sovra.keys._hpke`) of the 32-byte data key, with::

    info = "sovra-key-envelope/v2\n" purpose "\n" record header bytes

``purpose`` is ``to-custodian`` (ingest) or ``to-client`` (access), so an envelope made for
one direction, one record or one subject opens for no other. The suite is the recipient
key's: X25519 by default, or a hybrid post-quantum KEM (ML-KEM-768 + X25519, ML-KEM-1024 +
P-384) where the jurisdiction's ``key_transport`` setting asks for one. A custodian refuses
an envelope of another suite than its own, and releases keys only to recipient keys of its
suite or a stronger one.

Key envelope, format 1 (before HPKE through the library; still opened, never made)::

    ephemeral X25519 public key (32) | nonce (12) | AES-256-GCM(k, data key) | tag (16)
    k    = HKDF-SHA256(ikm = X25519(ephemeral, recipient), salt = ephemeral | recipient,
                       info = label)
    aad  = label = "sovra-key-envelope/v1\n" purpose "\n" record header bytes

It is always 92 bytes, a size no format-2 envelope has, so the size tells the two apart.

A custodian's transport key is derived from its KEK of the header's version
(HKDF-SHA256, info ``"sovra-transport-key/v1\n" J "\n" v``, and ``"\n" suite`` for a
suite other than X25519): it needs no file of its own, it rotates with the KEK, and it is
destroyed with that KEK version. The 32 bytes are the X25519 private key, or the seed of the
hybrid key (expanded as draft-ietf-hpke-pq does).

The gateway hands the client the key to seal to. A client that got the custodians' keys
out of band (``sovra keys transport-key``, run where the KEK files are) pins them in a
:class:`TransportPins` document and refuses any other key the gateway offers::

    {
      "type": "sovra-transport-keys",
      "format": 1,
      "keys": [{"jurisdiction": "PL", "kek_version": 1, "key": "<base64>"}, ...]
    }

A pinned key's size names its suite (32 bytes X25519, 1216 ML-KEM-768 + X25519, 1665
ML-KEM-1024 + P-384).
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
from sovra.keys import _aead, _hpke
from sovra.keys._hpke import DEFAULT_SUITE, SUITES, PrivateKey
from sovra.keys.envelope import open_blob, seal
from sovra.model import RecordHeader, check_jurisdiction, field_problem, parse_json

__all__ = [
    "CLIENT_SEALED_CONTENT_TYPE",
    "DEFAULT_SUITE",
    "LEGACY_ENVELOPE_SIZE",
    "MAX_ENVELOPE_SIZE",
    "MAX_PUBLIC_KEY_SIZE",
    "PINS_FORMAT",
    "SUITES",
    "Direction",
    "PrivateKey",
    "TransportPins",
    "check_public",
    "check_suite",
    "derive_transport_key",
    "envelope_size",
    "new_recipient",
    "open_key",
    "open_record",
    "public_bytes",
    "require_suite",
    "seal_key",
    "seal_record",
]

Direction = Literal["to-custodian", "to-client"]

CLIENT_SEALED_CONTENT_TYPE = "application/vnd.sovra.client-sealed"
"""The content type of a record header the gateway prepares for client-side sealing."""
_X25519_SIZE = 32
LEGACY_ENVELOPE_SIZE = _X25519_SIZE + _aead.OVERHEAD + _aead.KEY_SIZE
"""A format-1 envelope always holds one 32-byte data key, so its size is fixed (92)."""
MAX_PUBLIC_KEY_SIZE = max(s.public_size for s in SUITES.values())
_LABEL_V1 = b"sovra-key-envelope/v1\n"
_LABEL = b"sovra-key-envelope/v2\n"
_TRANSPORT_INFO = b"sovra-transport-key/v1\n"
PINS_FORMAT = 1
_PINS_TYPE = "sovra-transport-keys"
_MAX_PINS_BYTES = 1024 * 1024
_MAX_PINS = 4096


def envelope_size(suite: str) -> int:
    """The size of a format-2 envelope of *suite* (one 32-byte data key).

    Raises:
        BadRequest: no such suite.
    """
    s = _hpke.suite(suite)
    return _hpke.HEADER_SIZE + s.enc_size + _aead.KEY_SIZE + 16


MAX_ENVELOPE_SIZE = max(envelope_size(name) for name in SUITES)


def check_suite(name: str) -> str:
    """Accept *name* as a key-transport suite (a jurisdiction's ``key_transport``).

    Raises:
        BadRequest: no such suite; the message lists them.
    """
    return _hpke.suite(name).name


def _label(direction: Direction, header: RecordHeader) -> bytes:
    return _LABEL + direction.encode() + b"\n" + header.to_bytes()


def new_recipient(suite: str = DEFAULT_SUITE) -> PrivateKey:
    """A fresh key pair for one access request; its public half goes to the custodian."""
    return _hpke.generate(suite)


def public_bytes(key: PrivateKey) -> bytes:
    """The encoded public key of *key* (its size names its suite)."""
    return key.public


def check_public(recipient: bytes) -> str:
    """Refuse anything but a usable public key of one of the suites; return the suite.

    Raises:
        BadRequest: a size of no suite, an invalid key, or an X25519 point of small order
            (no shared secret with it).
    """
    return _hpke.check_public(recipient).name


def require_suite(recipient: bytes, minimum: str, jurisdiction: str) -> None:
    """Refuse a recipient key weaker than suite *minimum* (a jurisdiction's setting).

    Raises:
        BadRequest: *recipient* is unusable, or of a suite below *minimum*.
    """
    got = _hpke.check_public(recipient)
    want = _hpke.suite(minimum)
    if got.rank < want.rank:
        raise BadRequest(
            f"jurisdiction {jurisdiction} releases keys only to {want.name} recipient keys "
            f"or stronger (key_transport); this recipient key is {got.name}"
        )


def derive_transport_key(
    kek: bytes, jurisdiction: str, version: int, suite: str = DEFAULT_SUITE
) -> PrivateKey:
    """A custodian's transport key for KEK *version*; only the custodian can compute it.

    Raises:
        BadRequest: no such suite.
    """
    s = _hpke.suite(suite)
    info = _TRANSPORT_INFO + f"{jurisdiction}\n{version}".encode()
    if s.name != DEFAULT_SUITE:
        info += f"\n{s.name}".encode()
    hkdf = HKDF(algorithm=hashes.SHA256(), length=_hpke.SEED_SIZE, salt=None, info=info)
    return _hpke.derive(s.name, hkdf.derive(kek))


def seal_key(
    recipient: bytes, data_key: bytes, direction: Direction, header: RecordHeader
) -> bytes:
    """Encrypt *data_key* to the public key *recipient* (of any suite), bound to *header*.

    Raises:
        BadRequest: *recipient* is not a usable public key of a suite, or *data_key* is
            not 32 bytes.
    """
    if len(data_key) != _aead.KEY_SIZE:
        raise BadRequest(f"a data key is {_aead.KEY_SIZE} bytes, got {len(data_key)}")
    return _hpke.seal(recipient, data_key, _label(direction, header))


def open_key(
    private: PrivateKey, sealed: bytes, direction: Direction, header: RecordHeader
) -> bytes:
    """Reverse :func:`seal_key`; a format-1 envelope opens too, with an X25519 key.

    Raises:
        BadRequest: the envelope is of another suite than *private*'s, has no HPKE header,
            or is of another size than its suite's (a truncated encapsulation): public
            facts, said precisely.
        IntegrityError: one message for every other way the envelope can be wrong (another
            record, subject, direction or recipient, a changed byte).
    """
    if len(sealed) == LEGACY_ENVELOPE_SIZE:
        return _open_v1(private, sealed, direction, header)
    try:
        return _hpke.open_message(private, sealed, _label(direction, header), _aead.KEY_SIZE)
    except IntegrityError:
        raise IntegrityError(f"key envelope of record {header.record_id} does not open") from None


def _open_v1(
    private: PrivateKey, sealed: bytes, direction: Direction, header: RecordHeader
) -> bytes:
    if not isinstance(private.key, X25519PrivateKey):
        raise BadRequest(
            f"the key envelope of record {header.record_id} is a format-1 (X25519) envelope; "
            f"this key takes {private.suite.describe()}"
        )
    eph = sealed[:_X25519_SIZE]
    label = _LABEL_V1 + direction.encode() + b"\n" + header.to_bytes()
    try:
        shared = private.key.exchange(X25519PublicKey.from_public_bytes(eph))
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=_aead.KEY_SIZE,
            salt=eph + private.public,
            info=label,
        )
        return _aead.open_sealed(hkdf.derive(shared), sealed[_X25519_SIZE:], label)
    except (ValueError, IntegrityError):
        raise IntegrityError(f"key envelope of record {header.record_id} does not open") from None


def seal_record(header: RecordHeader, plaintext: bytes, custodian: bytes) -> tuple[bytes, bytes]:
    """Seal a record on the client: the blob, and its data key encrypted to the custodian.

    Args:
        header: the header the gateway prepared; its content type MUST be
            :data:`CLIENT_SEALED_CONTENT_TYPE`.
        plaintext: the record's content.
        custodian: the home custodian's transport public key (its size names its suite).

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


def open_record(header: RecordHeader, blob: bytes, sealed_key: bytes, private: PrivateKey) -> bytes:
    """Open a released record on the client with the ephemeral key of the access request.

    Raises:
        IntegrityError: the key envelope, the blob or the header was changed, or the key
            was sealed to another recipient or with another suite; one message, with the
            envelope's public fault where it has one.
    """
    try:
        data_key = open_key(private, sealed_key, "to-client", header)
    except BadRequest as exc:
        raise IntegrityError(f"key envelope of record {header.record_id}: {exc.message}") from None
    return open_blob(header, blob, data_key)


@dataclass(frozen=True)
class TransportPins:
    """Custodians' transport keys a client trusts, by ``(jurisdiction, KEK version)``.

    Obtained out of band, never from the gateway: a gateway that offers another key for a
    record (its own, to read the data key) is refused before anything sealed leaves the
    client. Each key MUST be a usable public key of one of the suites (its size names it).
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
