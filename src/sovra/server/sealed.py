"""HTTP routes of client-side sealing: records sealed and opened on the client only.

The gateway prepares headers, forwards key envelopes to custodians and returns ciphertext;
the data key and the plaintext never pass through it (:mod:`sovra.keys.transport`).
Binary values are base64. ``/v1/sealed/custodians`` is public, like ``/v1/info``.
"""

import base64
import binascii
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import Field

from sovra.errors import BadRequest
from sovra.gateway import Gateway, IngestReceipt, SealedAccessResult
from sovra.keys.protocol import SealingCustodian
from sovra.model import Grant, RecordHeader
from sovra.server.bodies import AccessBody, Strict

__all__ = ["add_sealed_routes"]


class PrepareBody(Strict):
    """A record about to be sealed on the client."""

    subject_id: str = Field(description="the subject's identifier, as the caller knows her")
    jurisdiction: str = Field(description="the subject's home jurisdiction, e.g. PL")


class SealedIngestBody(Strict):
    """A record sealed on the client under a prepared header."""

    header: str = Field(description="the prepared header, base64, as returned")
    expires_ms: int = Field(ge=0, lt=1 << 63)
    ticket: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="the gateway's ticket, as returned (64 hex digits)"
    )
    blob: str = Field(description="the sealed blob, base64")
    key_envelope: str = Field(description="the data key encrypted to the custodian, base64")


class SealedAccessBody(AccessBody):
    """An access whose keys are released to the client's ephemeral key only."""

    recipient: str = Field(
        description="the client's ephemeral public key, base64 (its size names its HPKE suite)"
    )
    reveal: Literal[False] = Field(
        default=False, description="client-sealed records hold no tokens or sealed values"
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not base64") from None


def add_sealed_routes(app: FastAPI, gateway: Gateway, caller: Any) -> None:
    """Add the client-side sealing routes; *caller* is the app's authenticated-principal type."""
    gw = gateway

    @app.get("/v1/sealed/custodians", tags=["sealed"])
    def custodians() -> dict[str, Any]:
        """Each custodian's transport key (base64; its size names its HPKE suite)."""
        out: dict[str, Any] = {}
        for code, custodian in gw.custodians.items():
            if isinstance(custodian, SealingCustodian):
                version, key = custodian.transport_key()
                out[code] = {"kek_version": version, "key": _b64(key)}
        return {"custodians": out}

    @app.post("/v1/sealed/prepare", tags=["sealed"])
    def prepare(body: PrepareBody, principal: caller) -> dict[str, Any]:
        """A header for a record the client seals itself, and the custodian key to seal to."""
        p = gw.prepare_sealed(principal, subject_id=body.subject_id, jurisdiction=body.jurisdiction)
        return {
            "header": _b64(p.header.to_bytes()),
            "custodian_key": _b64(p.custodian_key),
            "expires_ms": p.expires_ms,
            "ticket": p.ticket,
        }

    @app.post("/v1/sealed/records", status_code=201, tags=["sealed"])
    def ingest(body: SealedIngestBody, principal: caller) -> dict[str, Any]:
        """Store a client-sealed record; its custodian wraps the key the client sent it."""
        return _receipt(
            gw.ingest_sealed(
                principal,
                header=RecordHeader.from_bytes(_unb64(body.header, "header")),
                expires_ms=body.expires_ms,
                ticket=body.ticket,
                blob=_unb64(body.blob, "blob"),
                key_envelope=_unb64(body.key_envelope, "key_envelope"),
            )
        )

    @app.post("/v1/sealed/access", tags=["sealed"])
    def access(body: SealedAccessBody, principal: caller) -> dict[str, Any]:
        """Read records as ciphertext plus keys only the client can open; logged as access."""
        grant = Grant.from_json(body.grant) if body.grant is not None else None
        return _access(
            gw.access_sealed(
                principal,
                recipient=_unb64(body.recipient, "recipient"),
                purpose=body.purpose,
                record_ids=body.record_ids,
                subjects=[(s.jurisdiction, s.subject_id) for s in body.subjects],
                jurisdiction=body.jurisdiction,
                grant=grant,
                justification=body.justification,
            )
        )


def _receipt(r: IngestReceipt) -> dict[str, Any]:
    return {
        "record_id": r.record_id,
        "region": r.region,
        "log_index": r.receipt.index,
        "receipt": r.receipt.to_dict(),
    }


def _access(r: SealedAccessResult) -> dict[str, Any]:
    d = r.decision
    return {
        "decision": {
            "decision_id": d.decision_id,
            "effect": "allow" if d.allow else "deny",
            "reason": d.reason,
            "policies": list(d.policies),
        },
        "log_index": r.decision_receipt.index,
        "decision_entry": _b64(r.decision_entry),
        "decision_receipt": r.decision_receipt.to_dict(),
        "release_receipt": r.release_receipt.to_dict(),
        "records": {
            rid: {
                "header": _b64(s.header.to_bytes()),
                "blob": _b64(s.blob),
                "key": _b64(s.sealed_key),
            }
            for rid, s in r.records.items()
        },
    }
