"""What a custodian is, to its callers: the protocols every custodian meets (in-process,
remote, sealing, value-protecting) and the records it reports (its status, its journal).

:class:`~sovra.keys.custodian.BaseCustodian` implements them once with every check;
:class:`~sovra.keys.local.LocalCustodian` and :class:`~sovra.keys.remote.RemoteCustodian`
plug in underneath.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from sovra.errors import (
    SovraError,
)
from sovra.model import (
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
)

__all__ = [
    "Custodian",
    "CustodianStatus",
    "JournalEntry",
    "ProtectWrapCustodian",
    "SealingCustodian",
    "ValueCustodian",
]


@dataclass(frozen=True, slots=True)
class CustodianStatus:
    """What ``sovra keys status`` shows for one custodian.

    ``versions`` maps every KEK version held to the number of subject keys it seals;
    ``orphaned`` counts subject keys sealed under a version no longer held (MUST be empty;
    anything there is unreadable).
    """

    jurisdiction: str
    current_kek_version: int
    versions: Mapping[int, int]
    subjects: int
    shredded: int
    orphaned: Mapping[int, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "jurisdiction": self.jurisdiction,
            "current_kek_version": self.current_kek_version,
            "versions": {str(v): n for v, n in self.versions.items()},
            "subjects": self.subjects,
            "shredded": self.shredded,
            "orphaned": {str(v): n for v, n in self.orphaned.items()},
        }


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One request a custodian received, and what became of it.

    ``reason`` explains a refusal or denial; for an integrity failure it is only
    ``"integrity"``, since the cause goes to the log and nowhere else.
    """

    time_ms: int
    operation: Literal["wrap", "unwrap", "shred", "protect", "reveal"]
    requester: str | None
    record_id: str
    outcome: Literal[
        "wrapped", "released", "refused", "denied", "failed", "shredded", "protected", "revealed"
    ]
    reason: str = ""


@runtime_checkable
class Custodian(Protocol):
    """What the gateway needs from a jurisdiction's custodian.

    Implementations MUST refuse headers of another jurisdiction, MUST bind each wrapped
    key to its jurisdiction, KEK version and record header, MUST wrap it under the key of
    the record's subject, MUST NOT release a data key without verifying a fresh logged
    allow for that record, subject and requester, MUST release a batch all or none, MUST
    raise one opaque :class:`IntegrityError` for every cryptographic failure and
    :class:`NotFound` for a crypto-shredded subject, and after :meth:`shred` MUST NOT keep
    any copy of that subject's key, nor make her a new one.
    """

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose residents' keys this custodian holds."""
        ...

    @property
    def current_kek_version(self) -> int:
        """The KEK version new wraps use; headers of new records MUST carry it."""
        ...

    def wrap(self, data_key: bytes, header: RecordHeader) -> WrappedKey:
        """Wrap *data_key* for the record described by *header*."""
        ...

    def wrap_many(self, items: Sequence[tuple[bytes, RecordHeader]]) -> list[WrappedKey]:
        """Wrap several records' data keys, all or none; the subject keys it must make are
        made in one transaction."""
        ...

    def unwrap(
        self,
        wrapped: WrappedKey,
        header: RecordHeader,
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> bytes:
        """Release the data key of *header*'s record to *requester* under *authorization*."""
        ...

    def unwrap_many(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> list[bytes]:
        """Release several records' data keys under one authorization; all or none."""
        ...

    def unwrap_batches(
        self,
        requests: Sequence[
            tuple[Sequence[tuple[WrappedKey, RecordHeader]], ReleaseAuthorization | None, str]
        ],
    ) -> list[list[bytes] | SovraError]:
        """Decide several ``(items, authorization, requester)`` requests in one call, each as
        :meth:`unwrap_many` (all or none); a refused one gets its error in its slot."""
        ...

    def shred(self, subject: str) -> bool:
        """Destroy *subject*'s key for good; True if a key existed."""
        ...


@runtime_checkable
class SealingCustodian(Protocol):
    """A custodian that also takes client-sealed data keys (:mod:`sovra.keys.transport`).

    Implementations MUST make the checks of :class:`Custodian` for these calls too, MUST
    NOT return a data key except encrypted to the client's key, and MUST refuse an
    envelope that does not open for exactly the given header.
    """

    def transport_key(self) -> tuple[int, bytes]:
        """``(current KEK version, X25519 public key)`` clients encrypt data keys to."""
        ...

    def wrap_sealed(self, envelope: bytes, header: RecordHeader) -> WrappedKey:
        """Open a client's key envelope and wrap the data key as :meth:`Custodian.wrap`."""
        ...

    def unwrap_many_to(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
        recipient: bytes,
    ) -> list[bytes]:
        """As :meth:`Custodian.unwrap_many`, each key encrypted to *recipient*."""
        ...


@runtime_checkable
class ValueCustodian(Protocol):
    """A custodian that also protects values minimisation takes out of records
    (:mod:`sovra.keys.values`).

    Implementations MUST protect under the key of the record's subject, so her shred makes
    her tokens and sealed values unreadable, and MUST NOT reveal anything without the
    checks of :class:`Custodian` and a logged allow whose action is ``reveal``.
    """

    def protect(self, header: RecordHeader, items: Sequence[tuple[str, str, str]]) -> list[str]:
        """Tokenize or seal ``(mode, kind, value)`` items of *header*'s record."""
        ...

    def protect_many(
        self, requests: Sequence[tuple[RecordHeader, Sequence[tuple[str, str, str]]]]
    ) -> list[list[str]]:
        """As :meth:`protect` for several records, all or none; one list per request."""
        ...

    def reveal(
        self,
        items: Sequence[tuple[RecordHeader, str, str, str]],
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> list[str | None]:
        """Reveal ``(header, mode, kind, body)`` items under a logged allow to reveal."""
        ...


@runtime_checkable
class ProtectWrapCustodian(Protocol):
    """A custodian that protects a record's values and wraps its data key in one call,
    for several records at once (one round trip, one pass over the subject keys).

    Implementations MUST make the checks of :meth:`Custodian.wrap_many` and
    :meth:`ValueCustodian.protect_many` on every request before any key is touched, and
    MUST answer all or none.
    """

    def protect_and_wrap_many(
        self, requests: Sequence[tuple[bytes, RecordHeader, Sequence[tuple[str, str, str]]]]
    ) -> list[tuple[list[str], WrappedKey]]:
        """For each ``(data key, header, items)``: its items protected (none: an empty
        list) and its data key wrapped, in order."""
        ...
