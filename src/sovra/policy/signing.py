"""k-of-n signing of policy packs, in DSSE envelopes.

A pack takes effect only when at least ``threshold`` of the ``parties`` it names (each a
jurisdiction, whose authority holds an Ed25519 key) have signed its exact bytes. The format
is a DSSE envelope (https://github.com/secure-systems-lab/dsse, protocol v1)::

    {"payloadType": "application/vnd.sovra.policy-pack+json",
     "payload": "<base64 of the pack's canonical bytes>",
     "signatures": [{"keyid": "PL:<sha256 of the raw public key, hex>", "sig": "<base64>"}]}

Each signature is over ``PAE(payloadType, payload)`` = ``"DSSEv1" SP LEN(type) SP type SP
LEN(payload) SP payload``, so a signature can never be moved to other bytes or another type.
Keys come from the deployment (its authorities' public keys), never from the envelope.

Refused, with a precise message and no change to the active pack: an unknown key, a key of
a jurisdiction the pack does not name, a signature over other bytes, a repeated signer, too
few signers, a rollback (same pack name, version not above the active one) and, when the
pack replaces another, fewer than the *active* pack's threshold of its own parties (so a
pack cannot drop the parties that guard it, as in TUF's root rotation).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovra.errors import BadRequest, VerificationError
from sovra.model import check_jurisdiction, parse_json
from sovra.policy.pack import PackBundle

__all__ = [
    "PAYLOAD_TYPE",
    "ActivePack",
    "Envelope",
    "VerifiedPack",
    "key_id",
    "pae",
    "sign_pack",
    "verify_pack",
]

PAYLOAD_TYPE = "application/vnd.sovra.policy-pack+json"
_MAX_ENVELOPE_BYTES = 2 * 1024 * 1024
_MAX_SIGNATURES = 64


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what each signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_id(jurisdiction: str, key: Ed25519PublicKey) -> str:
    """``J:<sha256 of the raw public key, hex>``: names the signer and pins its key."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"{jurisdiction}:{hashlib.sha256(raw).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope around a pack's canonical bytes."""

    payload: bytes
    signatures: tuple[tuple[str, bytes], ...] = ()
    payload_type: str = PAYLOAD_TYPE

    @classmethod
    def wrap(cls, bundle: PackBundle) -> Envelope:
        """An unsigned envelope for *bundle*."""
        return cls(bundle.to_bytes())

    def bundle(self) -> PackBundle:
        """The pack inside (parsed, not yet verified).

        Raises:
            BadRequest: wrong payload type, or the payload is not a pack.
        """
        if self.payload_type != PAYLOAD_TYPE:
            raise BadRequest(f"envelope payloadType must be {PAYLOAD_TYPE!r}")
        return PackBundle.from_bytes(self.payload)

    def to_json(self) -> bytes:
        """The envelope as DSSE JSON."""
        return (
            json.dumps(
                {
                    "payloadType": self.payload_type,
                    "payload": base64.b64encode(self.payload).decode(),
                    "signatures": [
                        {"keyid": k, "sig": base64.b64encode(s).decode()}
                        for k, s in self.signatures
                    ],
                },
                indent=2,
            ).encode()
            + b"\n"
        )

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Parse DSSE JSON (bounded; unknown fields refused).

        Raises:
            BadRequest: oversized, malformed or with unknown fields.
        """
        obj = parse_json(data, limit=_MAX_ENVELOPE_BYTES, what="envelope")
        if not isinstance(obj, dict) or set(obj) != {"payloadType", "payload", "signatures"}:
            raise BadRequest("envelope must have exactly payloadType, payload and signatures")
        sigs = obj["signatures"]
        if not isinstance(sigs, list) or len(sigs) > _MAX_SIGNATURES:
            raise BadRequest(f"envelope signatures must be a list of at most {_MAX_SIGNATURES}")
        try:
            payload = base64.b64decode(obj["payload"], validate=True)
            signatures = []
            for s in sigs:
                if not isinstance(s, dict) or set(s) != {"keyid", "sig"}:
                    raise BadRequest("each envelope signature has exactly keyid and sig")
                signatures.append((str(s["keyid"]), base64.b64decode(s["sig"], validate=True)))
        except (TypeError, ValueError):  # binascii.Error, and ValueError for non-ASCII text
            raise BadRequest("envelope payload and signatures must be base64") from None
        return cls(payload, tuple(signatures), str(obj["payloadType"]))


def sign_pack(envelope: Envelope, jurisdiction: str, key: Ed25519PrivateKey) -> Envelope:
    """Add *jurisdiction*'s authority signature to *envelope* (replacing an earlier one).

    Raises:
        BadRequest: the payload is not a pack, or *jurisdiction* is not one of its parties.
    """
    bundle = envelope.bundle()
    check_jurisdiction(jurisdiction)
    if jurisdiction not in bundle.parties:
        raise BadRequest(
            f"{jurisdiction} is not a party of pack {bundle.name} "
            f"(parties: {', '.join(bundle.parties)})"
        )
    kid = key_id(jurisdiction, key.public_key())
    others = tuple(s for s in envelope.signatures if s[0].split(":")[0] != jurisdiction)
    signature = key.sign(pae(envelope.payload_type, envelope.payload))
    return Envelope(envelope.payload, (*others, (kid, signature)), envelope.payload_type)


@dataclass(frozen=True, slots=True)
class ActivePack:
    """What activation compares a new pack with: the pack in force."""

    name: str
    version: int
    digest: str
    parties: tuple[str, ...]
    threshold: int


@dataclass(frozen=True, slots=True)
class VerifiedPack:
    """A pack whose signatures met every threshold, and who signed it."""

    bundle: PackBundle
    signers: tuple[str, ...]


def verify_pack(
    envelope: Envelope,
    authority_keys: Mapping[str, Ed25519PublicKey],
    *,
    active: ActivePack | None = None,
) -> VerifiedPack:
    """Check *envelope*'s signatures against the deployment's authority keys.

    Args:
        envelope: the signed pack.
        authority_keys: each jurisdiction's authority public key (the trust root).
        active: the pack in force, for the rollback and hand-over checks.

    Raises:
        BadRequest: not a pack; unknown or non-party signer; repeated signer; too few
            signers; rollback.
        VerificationError: a signature does not verify over this payload.
    """
    bundle = envelope.bundle()
    by_id = {key_id(j, k): (j, k) for j, k in authority_keys.items()}
    message = pae(envelope.payload_type, envelope.payload)
    signers: list[str] = []
    for kid, signature in envelope.signatures:
        known = by_id.get(kid)
        if known is None:
            raise BadRequest(f"pack {bundle.name} v{bundle.version} is signed by unknown key {kid}")
        jurisdiction, key = known
        if jurisdiction not in bundle.parties:
            raise BadRequest(
                f"{jurisdiction} signed pack {bundle.name} but is not one of its parties "
                f"({', '.join(bundle.parties)})"
            )
        if jurisdiction in signers:
            raise BadRequest(f"{jurisdiction} signed pack {bundle.name} more than once")
        try:
            key.verify(signature, message)
        except InvalidSignature:
            raise VerificationError(
                f"{jurisdiction}'s signature on pack {bundle.name} v{bundle.version} is not "
                "over these bytes"
            ) from None
        signers.append(jurisdiction)
    signed = sorted(signers)
    if len(signed) < bundle.threshold:
        raise BadRequest(
            f"pack {bundle.name} v{bundle.version} is signed by {len(signed)} of its "
            f"{len(bundle.parties)} parties ({', '.join(signed) or 'none'}); "
            f"it needs {bundle.threshold}"
        )
    if active is not None:
        if bundle.digest() == active.digest:
            raise BadRequest(f"pack {bundle.name} v{bundle.version} is already active")
        if bundle.name == active.name and bundle.version <= active.version:
            raise BadRequest(
                f"pack {bundle.name} v{bundle.version} is not newer than the active "
                f"v{active.version}; rollback refused"
            )
        of_active = sorted(set(signed) & set(active.parties))
        if len(of_active) < active.threshold:
            raise BadRequest(
                f"replacing pack {active.name} v{active.version} needs {active.threshold} of "
                f"its parties ({', '.join(active.parties)}); signed by "
                f"{', '.join(of_active) or 'none'} of them"
            )
    return VerifiedPack(bundle, tuple(signed))
