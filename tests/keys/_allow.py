"""A logged allow for custodian tests: a decision entry and the log's receipt for it,
signed by a test log key, as the gateway hands them to a custodian."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.model import Decision, LogReceipt, RecordHeader, ReleaseAuthorization


def logged_allow(
    log_key: Ed25519PrivateKey,
    headers: list[RecordHeader],
    *,
    principal: str,
    purpose: str = "customer-support",
    action: str = "read",
    allow: bool = True,
    time_ms: int | None = None,
    recipient: bytes | None = None,
    signer: Ed25519PrivateKey | None = None,
    index: int = 0,
) -> ReleaseAuthorization:
    """The decision about *headers*' records and subjects, and a receipt signed by *signer*
    (default: the log key), at *time_ms* (default: now)."""
    now = int(time.time() * 1000) if time_ms is None else time_ms
    decision = Decision(
        decision_id="d-1",
        allow=allow,
        reason="test",
        principal=principal,
        purpose=purpose,
        records=tuple(h.record_id for h in headers),
        subjects=tuple(sorted({h.subject for h in headers})),
        action=action,
        recipient=recipient.hex() if recipient is not None else "",
    )
    entry = decision.to_entry(now).to_bytes()
    unsigned = LogReceipt("sovra.test/log", index, hashlib.sha256(b"\x00" + entry).digest(), now)
    signature = (signer or log_key).sign(unsigned.signed_bytes())
    return ReleaseAuthorization.of(decision, entry, replace(unsigned, signature=signature))
