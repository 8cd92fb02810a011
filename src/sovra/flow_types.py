"""What the two flows take and give: the items of a batch, receipts and results, and the
client-side sealing exchange. :mod:`sovra.gateway` runs the flows over them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sovra.model import Decision, Grant, LogReceipt, RecordHeader

__all__ = [
    "AccessRequest",
    "AccessResult",
    "IngestItem",
    "IngestReceipt",
    "SealedAccessResult",
    "SealedPreparation",
    "SealedRecord",
]


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One record of an :meth:`Gateway.ingest_many` batch: the arguments of an ingest."""

    subject_id: str
    jurisdiction: str
    content: str
    purpose: str | None = None
    other_homes: Sequence[str] = ()  # a second home of the subject, if she has one


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One request of an :meth:`Gateway.access_many` batch: the arguments of an access."""

    purpose: str
    record_ids: Sequence[str] = ()
    subjects: Sequence[tuple[str, str]] = ()
    jurisdiction: str | None = None
    grant: Grant | None = None
    justification: str | None = None
    reveal: bool = False


@dataclass(frozen=True, slots=True)
class IngestReceipt:
    """What the caller gets back from an ingest."""

    record_id: str
    region: str
    receipt: LogReceipt
    findings: Mapping[str, int]
    actions: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class AccessResult:
    """An allowed access: the records, the logged decision and the logged key release."""

    decision: Decision
    decision_receipt: LogReceipt
    release_receipt: LogReceipt
    records: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SealedPreparation:
    """A header for a record the client seals itself, and what to seal its key to.

    ``ticket`` is the gateway's MAC over the caller, the header and ``expires_ms``; the
    client hands all three back with the sealed record.
    """

    header: RecordHeader
    custodian_key: bytes
    expires_ms: int
    ticket: str


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """A record released for opening on the client: its blob and its key for the client."""

    header: RecordHeader
    blob: bytes
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class SealedAccessResult:
    """An allowed access in client-side mode: ciphertexts and keys only the client opens."""

    decision: Decision
    decision_receipt: LogReceipt
    release_receipt: LogReceipt
    records: Mapping[str, SealedRecord]
    decision_entry: bytes = b""  # the logged decision, naming the client's recipient key
