"""The storage contracts the gateway depends on, one small protocol per concern.

A backend implements each protocol natively (SQLite, PostgreSQL, a folder, an object
store); nothing here assumes a particular engine. Every method that takes a name checks
it and raises :class:`~sovra.errors.BadRequest` before touching storage, and a refused
call MUST leave stored data exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from sovra.errors import SovraError
from sovra.model import Principal, RecordMeta

__all__ = [
    "BlobStore",
    "GrantStore",
    "GuardJournal",
    "JournalSession",
    "MetadataStore",
    "NonceStore",
    "PrincipalStore",
    "RecordStore",
]


@runtime_checkable
class RecordStore(Protocol):
    """Records' metadata: written pending, made visible by their log index.

    Logged before visible: a record row is written *pending* (``log_index`` -1) before its
    ingest entry is appended, and gets its index once the entry is in the log. Every
    reader of records (:meth:`get_record`, :meth:`records_for_subject`,
    :meth:`record_ids_for_jurisdiction`, :meth:`count_records`) MUST NOT see a row whose
    ``log_index`` is negative (pending, or quarantined by ``sovra check``); only the
    reconciling methods (:meth:`unlogged_records`, :meth:`records_page`) do.
    """

    def put_record(self, meta: RecordMeta) -> None:
        """Store a new record's metadata, pending unless ``meta.log_index`` is set.

        MUST NOT replace an existing record: a record id is written once. MUST be
        durable when it returns: the gateway hands out a receipt for the record once its
        entry is logged, and the log cannot bring back a lost row (it holds no key).

        Raises:
            BadRequest: the record id is already stored (nothing is changed), or a field
                is malformed or out of range.
        """
        ...

    def put_records(self, metas: Sequence[RecordMeta], *, durable: bool = True) -> None:
        """:meth:`put_record` for many records: one transaction, all or none, durable.

        With *durable* false the commit MAY wait for a later synced commit to reach
        stable storage: only for a caller that makes one before relying on the rows (the
        gateway, when the log's synced appends share this store's write-ahead log).

        Raises:
            BadRequest: a record id is already stored or repeated, or a field is
                malformed (the message names the record); nothing is stored.
        """
        ...

    def get_records(self, record_ids: Sequence[str]) -> dict[str, RecordMeta]:
        """The visible records among *record_ids*, by id, read at once; a missing or
        hidden (pending, quarantined) one is simply absent.

        Raises:
            BadRequest: a record id is not a valid id.
            IntegrityError: a stored row no longer parses.
        """
        ...

    def get_record(self, record_id: str) -> RecordMeta:
        """Return the metadata stored under *record_id*, if its ingest entry is logged.

        Raises:
            BadRequest: *record_id* is not a valid id.
            NotFound: no such record.
            IntegrityError: the stored row no longer parses.
        """
        ...

    def set_record_log_index(self, record_id: str, index: int) -> None:
        """Record where the record's ingest entry landed in the log, making it visible.

        The index is written once: setting the index a record already has is a no-op (so
        a retry is safe), setting a different one MUST be refused. A pending or a
        quarantined row takes the index (the caller holds proof the entry is logged).

        Raises:
            BadRequest: *index* is negative, or the record already has another index.
            NotFound: no such record.
        """
        ...

    def set_record_log_indices(self, indices: Sequence[tuple[str, int]]) -> None:
        """:meth:`set_record_log_index` for many ``(record id, index)`` pairs, in one
        transaction, all or none. It need not be durable: recovery sets indices from
        the log.

        Raises:
            BadRequest: an index is negative, or a record already has another index.
            NotFound: no such record.
        """
        ...

    def records_for_subject(self, commitment: str) -> list[RecordMeta]:
        """Every record about one subject, oldest first (ties broken by record id).

        Raises:
            BadRequest: *commitment* is not 64 lower-case hex digits.
        """
        ...

    def record_ids_for_jurisdiction(self, jurisdiction: str, limit: int) -> list[str]:
        """Up to *limit* ids of records whose subject lives in *jurisdiction*, oldest first.

        Raises:
            BadRequest: *jurisdiction* is not a jurisdiction code or *limit* is below 1.
        """
        ...

    def count_records(self) -> int:
        """How many records are visible."""
        ...

    def unlogged_records(self, limit: int) -> list[RecordMeta]:
        """Up to *limit* rows with a negative ``log_index`` (pending -1, quarantined -2).

        Oldest first; for reconciling the store with the log, never for serving.

        Raises:
            BadRequest: *limit* is below 1.
            IntegrityError: a stored row no longer parses.
        """
        ...

    def quarantine_record(self, record_id: str) -> bool:
        """Turn a pending row (-1) into a quarantined one (-2); whether it was pending.

        Raises:
            BadRequest: *record_id* is not a valid id.
        """
        ...

    def delete_unlogged_record(self, record_id: str) -> bool:
        """Delete a row whose ``log_index`` is negative; whether one was deleted.

        MUST NOT delete a visible row.

        Raises:
            BadRequest: *record_id* is not a valid id.
        """
        ...

    def delete_unlogged_records(self, record_ids: Sequence[str]) -> int:
        """:meth:`delete_unlogged_record` for many rows in one transaction; how many
        were deleted. MUST NOT delete a visible row.

        Raises:
            BadRequest: a record id is not a valid id.
        """
        ...

    def record_log_index(self, record_id: str) -> int | None:
        """The row's ``log_index`` whatever its state (negative: hidden); None: no row.

        Raises:
            BadRequest: *record_id* is not a valid id.
        """
        ...

    def records_page(self, after: str, limit: int) -> list[RecordMeta]:
        """Up to *limit* rows of any state with ids above *after* (``""``: from the start).

        Ordered by record id, so a reconciler pages through every row once.

        Raises:
            BadRequest: *limit* is below 1.
            IntegrityError: a stored row no longer parses.
        """
        ...


@runtime_checkable
class GrantStore(Protocol):
    """Signed grants, by id and digest, and their revocations."""

    def put_grant(self, grant_id: str, digest: str, grant_json: bytes) -> None:
        """Store a signed grant as its canonical JSON, named by id and by digest.

        MUST NOT replace an existing grant. The store does not parse or verify the grant;
        the policy layer does that before calling.

        Raises:
            BadRequest: the id or the digest is already stored (nothing is changed), or
                an argument is malformed.
            PayloadTooLarge: *grant_json* is over the grant size limit.
        """
        ...

    def get_grant(self, grant_id: str) -> bytes:
        """Return the grant JSON stored under *grant_id*, byte for byte.

        Raises:
            BadRequest: *grant_id* is not a valid id.
            NotFound: no such grant.
        """
        ...

    def revoke_grant(self, grant_id: str, time_ms: int) -> None:
        """Mark a grant revoked as of *time_ms*. Revocation is permanent.

        MUST refuse to revoke twice, so the first revocation time stands.

        Raises:
            BadRequest: malformed argument, or the grant is already revoked.
            NotFound: no such grant.
        """
        ...

    def grant_revoked(self, grant_id: str) -> bool:
        """Whether the grant has been revoked.

        MUST raise for an unknown grant rather than answer ``False``: an unknown grant
        is not a valid one.

        Raises:
            BadRequest: *grant_id* is not a valid id.
            NotFound: no such grant.
        """
        ...

    def withdraw_cosignature(self, grant_id: str, jurisdiction: str, time_ms: int) -> None:
        """Record that *jurisdiction*'s authority took back its co-signature of a grant as
        of *time_ms*. Withdrawal is permanent.

        MUST refuse to withdraw one jurisdiction's co-signature twice, so the first time
        stands, and MUST refuse an unknown grant.

        Raises:
            BadRequest: malformed argument, or the co-signature is already withdrawn.
            NotFound: no such grant.
        """
        ...

    def grant_withdrawals(self, grant_id: str) -> frozenset[str]:
        """The jurisdictions that withdrew their co-signature of a grant (empty if none).

        Raises:
            BadRequest: *grant_id* is not a valid id.
        """
        ...


@runtime_checkable
class PrincipalStore(Protocol):
    """The registered principals: who may call, with which key and role."""

    def put_principal(self, principal: Principal) -> None:
        """Create or replace the principal with this id (key rotation, role change).

        Raises:
            BadRequest: a field is malformed.
        """
        ...

    def get_principal(self, principal_id: str) -> Principal:
        """Return the principal registered under *principal_id*.

        Raises:
            BadRequest: *principal_id* is not a valid id.
            NotFound: no such principal.
            IntegrityError: the stored row no longer parses.
        """
        ...

    def remove_principal(self, principal_id: str) -> None:
        """Remove the principal registered under *principal_id*: from the commit on, no
        token of its is accepted (the nonce spend reads it in its own transaction).

        Raises:
            BadRequest: *principal_id* is not a valid id.
            NotFound: no such principal.
        """
        ...

    def list_principals(self) -> list[Principal]:
        """Every principal, ordered by id.

        Raises:
            IntegrityError: a stored row no longer parses.
        """
        ...


@runtime_checkable
class NonceStore(Protocol):
    """Spent request-token nonces, so a token is used once."""

    def use_nonce(self, principal_id: str, nonce: str, expires_ms: int, now_ms: int) -> None:
        """Spend a request token's nonce: the second use before it expires is a replay.

        A nonce is remembered per principal until *expires_ms*; once expired it MAY be
        used again, and the store MUST forget expired nonces (any principal's) so the
        table does not grow without bound. Two concurrent calls with the same nonce MUST
        NOT both succeed.

        Raises:
            Unauthenticated: ``token replayed``: the nonce is remembered and unexpired.
            BadRequest: malformed argument, or *expires_ms* is not after *now_ms*.
        """
        ...

    def spend_nonces(
        self, nonces: Sequence[tuple[str, str, int, int]]
    ) -> list[Principal | SovraError | None]:
        """:meth:`use_nonce` for each ``(principal_id, nonce, expires_ms, now_ms)``, in
        one transaction, returning for each in order its error (``token replayed``, a
        malformed argument) or the principal registered under its *principal_id* as it
        is when the nonce is spent (read in the same transaction; None if there is none),
        so a caller that checked a token against a principal it remembered sees whether
        that principal changed meanwhile. A nonce named twice in *nonces* is a replay the
        second time.

        Raises:
            IntegrityError: a stored principal no longer parses.
        """
        ...


@runtime_checkable
class MetadataStore(RecordStore, GrantStore, PrincipalStore, NonceStore, Protocol):
    """Records' metadata, grants, principals and token nonces, in one database.

    The union of the four small protocols, for the callers that need them all (the
    deployment opens one and hands each part what it needs). Implementations MUST be
    safe to call from several threads at once, MUST make every write atomic (all of it
    or none of it), and MUST hand back exactly what was stored:
    ``get_record(m.header.record_id) == m`` after ``put_record(m)`` of a logged record.
    A database that cannot be reached MUST raise :class:`~sovra.errors.Unavailable`
    (the write it interrupted MAY have been kept: every write here is once-only or
    idempotent, so a retry finds it), never report success for what is not durable.
    """

    def close(self) -> None:
        """Release the connections. Calling it twice is harmless."""
        ...


@runtime_checkable
class JournalSession(Protocol):
    """The guard journal, held exclusively for one decision (see :class:`GuardJournal`)."""

    def read(self, after: int) -> list[tuple[int, str, float, str]]:
        """Events ``(sequence number, kind, time in seconds, JSON)`` after *after*, in order.

        Raises:
            IntegrityError: an event was changed, or sealed under another key.
        """
        ...

    def append(self, events: Sequence[tuple[str, float, str]]) -> int:
        """Append ``(kind, time_s, JSON)`` events in order; the last one's number."""
        ...

    def prune(self, before_s: float, keep: Mapping[str, int]) -> None:
        """Delete usage events older than *before_s*, and of each kind in *keep* all but
        its last ``keep[kind]`` events, whatever their age."""
        ...


@runtime_checkable
class GuardJournal(Protocol):
    """Where the bulk guards of every worker and replica share usage, alerts and reviews.

    The storage side of :class:`sovra.policy.GuardJournal`. A session MUST exclude every
    other session of every process sharing the journal from its start until it ends, so
    a guard catching up at its start assesses against all usage before it; events it
    appends MUST be durable, or all absent, when it ends without an error. Sequence
    numbers MUST ascend in the order sessions commit. Events SHOULD be sealed at rest.
    """

    def session(self) -> AbstractContextManager[JournalSession]:
        """Hold the journal for one decision.

        Raises:
            Unavailable: the database cannot be reached (nothing of the session is kept).
        """
        ...

    def read(self, after: int) -> list[tuple[int, str, float, str]]:
        """Committed events after *after*, in order (no session needed)."""
        ...

    def close(self) -> None:
        """Release the connections. Calling it twice is harmless."""
        ...


@runtime_checkable
class BlobStore(Protocol):
    """Ciphertext blobs in one region, by key.

    The store does not authenticate content (the AEAD tag does that, in ``keys/``), but
    it MUST refuse to return more than its size limit, so a blob swollen on disk cannot
    exhaust memory. What every implementation (a folder, an object store) MUST do:

    - keep every byte in storage of its :attr:`region` and nowhere else (residency);
    - make :meth:`put` and :meth:`put_many` durable when they return, and never replace a
      stored blob; a call that raises leaves none of its blobs readable;
    - raise :class:`~sovra.errors.NotFound` naming the key for a missing blob, from
      :meth:`get` and :meth:`get_many` alike, and treat deleting a missing blob as done;
    - check keys (``check_id``) and types before touching storage, refusing with
      :class:`~sovra.errors.BadRequest`, and leave storage as it was after any refusal;
    - report storage failures as :class:`~sovra.errors.ConfigError` and stored bytes it
      will not return (over the limit, a link) as :class:`~sovra.errors.IntegrityError`,
      without a path of the server's disk in the message;
    - be safe to call from several threads at once.

    :class:`~sovra.store.blobs.BlobStoreBase` does the checks and the translation once;
    a backend writes its private methods.
    """

    @property
    def region(self) -> str:
        """Where the blobs physically live; placement checks compare it to policy."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store *data* under *key*, atomically: a reader sees all of it or nothing.

        MUST NOT replace an existing blob.

        Raises:
            BadRequest: *key* is not a valid id, *data* is not bytes, or the key exists.
            PayloadTooLarge: *data* is over the limit (nothing is written).
            ConfigError: the storage itself failed (permissions, full disk).
        """
        ...

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store every ``(key, data)`` of *items*, durably on return.

        Every item is checked before anything is written, so a malformed batch writes
        nothing. A call that raises MUST leave none of its blobs readable; a crash
        mid-call MAY leave some of them, which no row names yet (the gateway writes a
        record's row before its blob), so ``sovra check --repair`` removes them as
        orphans. A batch SHOULD cost a few sequential writes, not one per blob.

        Raises:
            BadRequest: *items* is not a sequence of ``(key, bytes)`` pairs, a key is not
                a valid id or appears twice, or a key is stored already (naming it).
            PayloadTooLarge: a blob is over the limit (naming its key; nothing is written).
            ConfigError: the storage itself failed.
        """
        ...

    def get(self, key: str) -> bytes:
        """Return the bytes stored under *key*.

        Raises:
            BadRequest: *key* is not a valid id.
            NotFound: no such blob.
            IntegrityError: the stored blob is over the size limit.
            ConfigError: the storage itself failed.
        """
        ...

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        """Return the blobs under *keys*, in the order of *keys*.

        Raises:
            BadRequest: *keys* is not a sequence of valid ids.
            NotFound: a key has no blob (the message names the first missing one).
            IntegrityError: a stored blob is over the size limit.
            ConfigError: the storage itself failed.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the blob under *key*, durably; deleting a missing blob is not an error.

        Raises:
            BadRequest: *key* is not a valid id.
            ConfigError: the storage itself failed.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under *key*.

        Raises:
            BadRequest: *key* is not a valid id.
            ConfigError: the storage itself failed.
        """
        ...

    def stored_keys(self) -> Iterator[str]:
        """Every key stored in this region, in no particular order.

        Raises:
            ConfigError: the storage itself failed.
        """
        ...

    def close(self) -> None:
        """Release connections and files. Calling it twice is harmless."""
        ...
