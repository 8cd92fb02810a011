"""Key custodians: each jurisdiction's holder of key-encryption keys (KEKs).

Keys form a hierarchy (ADR 0008)::

    KEK (per jurisdiction, versioned) -> subject key (per subject) -> data key (per record)

A custodian wraps a record's data key under the key of the record's subject, and keeps each
subject key sealed under its current KEK. Destroying a subject key (:meth:`~BaseCustodian.
shred`) makes every record of hers unreadable at once without touching a blob; rotating the
KEK (:meth:`LocalCustodian.rotate`, :meth:`LocalCustodian.rewrap`) reseals subject keys only,
never a record, and an old KEK version is destroyed once no subject key depends on it.

A custodian releases a data key only against a logged allow: a decision entry from the
transparency log, with the log's signed receipt, that names the record, its subject and the
requester, and is fresh. There is no other path from a wrapped key to a data key.

:class:`BaseCustodian` does every check in its public methods and leaves exactly the
cryptography to private methods, :meth:`~BaseCustodian._wrap_with`,
:meth:`~BaseCustodian._unwrap_with` and :meth:`~BaseCustodian._shred`, so an in-process custodian
(:class:`LocalCustodian`) and a remote one plug in the same way and cannot skip a check.

The protocols are in :mod:`sovra.keys.protocol`, the local key file's format in
:mod:`sovra.keys.keyfile`, the in-process custodian in :mod:`sovra.keys.local`.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra.errors import (
    BadRequest,
    ConfigError,
    Denied,
    IntegrityError,
    NotFound,
    SovraError,
    VerificationError,
)
from sovra.keys import _aead, transport, values
from sovra.keys.protocol import (
    JournalEntry,
)
from sovra.keys.subjects import (
    SubjectShredded,
)
from sovra.keys.witnessed import ReleasePolicy, WitnessedRelease
from sovra.model import (
    KIND_NAME,
    MAX_ENTRY_BYTES,
    LogEntry,
    LogReceipt,
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    check_id,
    check_jurisdiction,
    named_ids,
)

__all__ = [
    "DEFAULT_JOURNAL_SIZE",
    "DEFAULT_MAX_AUTHORIZATION_AGE_MS",
    "MAX_BATCH",
    "MAX_BATCH_KEYS",
    "MAX_BATCH_VALUES",
    "MAX_WRAPPED_BYTES",
    "BaseCustodian",
    "Clock",
    "system_clock_ms",
]

_log = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Returns the current UNIX time in milliseconds."""

DEFAULT_MAX_AUTHORIZATION_AGE_MS = 300_000
DEFAULT_JOURNAL_SIZE = 10_000
MAX_WRAPPED_BYTES = 4096
"""A wrapped 32-byte key is far smaller; anything larger is refused before any work."""
MAX_BATCH = 1000
"""Most keys one :meth:`BaseCustodian.unwrap_many` call releases, most keys one
:meth:`BaseCustodian.wrap_many` call wraps, and most requests one
:meth:`BaseCustodian.protect_many` or :meth:`BaseCustodian.unwrap_batches` call carries."""
MAX_BATCH_KEYS = 10 * MAX_BATCH
"""Most keys one :meth:`BaseCustodian.unwrap_batches` call releases over all its requests."""
MAX_BATCH_VALUES = 2 * values.MAX_BATCH_VALUES
"""Most values one :meth:`BaseCustodian.protect_many` call protects over all its requests."""
_WRAP_TAG = b"sovra-wrap/v2\n"
_PROMISE_CACHE_SIZE = 4096
"""Batch promises remembered as verified; a few hundred bytes each, under 2 MiB in all."""
_JOURNAL_REQUESTER_CHARS = 128
_MODES = frozenset(m.value for m in values.Mode)
_KIND = re.compile(KIND_NAME)


def system_clock_ms() -> int:
    """The wall clock, in UNIX milliseconds."""
    return time.time_ns() // 1_000_000


def _wrap_aad(jurisdiction: str, kek_version: int, header: RecordHeader) -> bytes:
    # Jurisdiction and version are newline-terminated so no two (jurisdiction, version,
    # header) triples share an encoding.
    return _WRAP_TAG + f"{jurisdiction}\n{kek_version}\n".encode() + header.to_bytes()


class _VerifiedPromises:
    """The log's batch promises whose signature this custodian has already checked.

    The log signs one promise per batch of entries (``sovra-promise/v2``: origin, batch
    start and size, time, RFC 9162 root), and each receipt carries its own entry's path to
    that root. Decisions appended together share the promise, so without this cache every
    one of them would pay the same Ed25519 verification (~0.1 ms) again.

    A cache entry is the exact triple an Ed25519 check covers: the log key, the signed
    bytes and the signature. Verification is deterministic, so a hit stands for a check that
    already passed on identical input. Everything that differs between receipts of one
    batch is recomputed on every call before the lookup: the entry's leaf hash against the
    receipt's, and the receipt's path up to the root, which is part of the signed bytes.
    A receipt whose path, entry, origin, index, batch, time or signature differs from a
    verified one builds another key and gets the full check; nothing is cached on failure.
    Bounded (least recently used out) and safe to share between threads.
    """

    __slots__ = ("_key", "_lock", "_log_key", "_max", "_seen")

    def __init__(self, log_key: Ed25519PublicKey, size: int = _PROMISE_CACHE_SIZE) -> None:
        if size <= 0:
            raise ConfigError("the promise cache size must be positive")
        self._log_key = log_key
        self._key = log_key.public_bytes_raw()
        self._max = size
        self._seen: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def verify(self, receipt: LogReceipt, entry: bytes) -> None:
        """Check that *receipt* is the log's and covers *entry*, as :meth:`LogReceipt.verify`.

        Raises:
            VerificationError: the entry does not hash to the receipt's leaf, the path does
                not fit the batch, or the signature is not the log key's.
        """
        if hashlib.sha256(b"\x00" + entry).digest() != receipt.leaf_hash:
            raise VerificationError("receipt does not cover this entry (leaf hash differs)")
        # A promise about one entry is never presented for another: caching it only
        # churns the cache, so those (and v1 receipts) always get the full check.
        shared = receipt.batch_size > 1
        if shared:
            # Rebuilds the batch root from this receipt's own leaf and path.
            cache_key = (self._key, receipt.signed_bytes(), receipt.signature)
            with self._lock:
                if cache_key in self._seen:
                    self._seen.move_to_end(cache_key)
                    return
        receipt.verify(self._log_key, entry)
        if shared:
            with self._lock:
                self._seen[cache_key] = None
                if len(self._seen) > self._max:
                    self._seen.popitem(last=False)


class BaseCustodian(abc.ABC):
    """Every check of :class:`Custodian`, around two private methods implementers write.

    Subclasses provide :attr:`current_kek_version`, :meth:`_wrap_with`,
    :meth:`_unwrap_with` and :meth:`_shred`; they MUST NOT override :meth:`wrap`,
    :meth:`unwrap`, :meth:`unwrap_many` or :meth:`shred`.
    """

    # The HPKE suite of the transport key, and the weakest recipient key released to
    # (the jurisdiction's ``key_transport``); a custodian that has a setting sets it.
    transport_suite: str = transport.DEFAULT_SUITE

    def __init__(
        self,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
        witnesses: ReleasePolicy | None = None,
    ) -> None:
        """Set up the checks.

        Args:
            jurisdiction: two-letter code of the jurisdiction served.
            log_key: the transparency log's public key; receipts must be signed by it.
            clock: the current time in UNIX milliseconds.
            max_authorization_age_ms: how far a logged allow's time may be from now.
            journal_size: how many requests :meth:`journal` remembers.
            witnesses: release only allows included in a checkpoint a quorum of these
                witnesses cosigned (:mod:`sovra.keys.witnessed`); None: the receipt alone.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: *max_authorization_age_ms* or *journal_size* is not positive.
        """
        self._jurisdiction = check_jurisdiction(jurisdiction)
        if max_authorization_age_ms <= 0:
            raise ConfigError("max_authorization_age_ms must be a positive number of ms")
        if journal_size <= 0:
            raise ConfigError("journal_size must be positive")
        self._log_key = log_key
        self._promises = _VerifiedPromises(log_key)
        self._witnessed = None if witnesses is None else WitnessedRelease(witnesses, log_key)
        self._clock = clock
        self._max_age_ms = max_authorization_age_ms
        self._journal: deque[JournalEntry] = deque(maxlen=journal_size)
        self._journal_lock = threading.Lock()

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose residents' keys this custodian holds."""
        return self._jurisdiction

    @property
    @abc.abstractmethod
    def current_kek_version(self) -> int:
        """The KEK version new wraps use."""

    @abc.abstractmethod
    def _wrap_with(self, subject: str, data_key: bytes, aad: bytes) -> bytes:
        """Seal *data_key* under *subject*'s key with associated data *aad*.

        Called only after every check has passed. MUST authenticate *aad*; MUST create
        the subject key (sealed under the current KEK) when she has none; MUST raise
        :class:`BadRequest` for a subject whose key was shredded.
        """

    @abc.abstractmethod
    def _unwrap_with(self, subject: str, blob: bytes, aad: bytes) -> bytes:
        """Open *blob* under *subject*'s key with associated data *aad*.

        Called only after the authorization has been verified. MUST raise
        :class:`NotFound` when the subject's key was shredded, and
        :class:`IntegrityError` (any message; it is logged, never shown) when she has no
        key, its KEK version is unknown, or anything does not authenticate.
        """

    @abc.abstractmethod
    def _shred(self, subject: str) -> bool:
        """Destroy *subject*'s key and remember that it was; True if a key existed.

        MUST leave no copy of the subject key, sealed or not, in the custodian's storage.
        """

    def _wrap_many_with(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bytes]:
        """Seal ``(subject, data key, aad)`` items, each as :meth:`_wrap_with` does.

        Called only after every check has passed. MUST return one blob per item or raise;
        a subject whose key was shredded MUST raise :class:`SubjectShredded` naming her.
        A custodian with a store overrides this to make the missing subject keys in one
        transaction.
        """
        return [self._wrap_with(subject, key, aad) for subject, key, aad in items]

    def _begin(self) -> None:  # noqa: B027 - an optional hook, empty by design
        """Called once before the keys of one request are touched; a hook for caches."""

    def _warm(self, subjects: Sequence[str]) -> None:  # noqa: B027 - optional, empty by design
        """Called before the keys of *subjects* are opened for requests whose allows have
        been verified; a hook for loading them together. MUST NOT raise for a subject
        without a key: the request that needs it gets its own error."""

    def journal(self) -> tuple[JournalEntry, ...]:
        """The most recent wrap and unwrap requests, oldest first."""
        with self._journal_lock:
            return tuple(self._journal)

    def _record(self, entry: JournalEntry) -> None:
        self._record_many((entry,))

    def _record_many(self, entries: Sequence[JournalEntry]) -> None:
        bounded = [
            # The journal is bounded in entries; bound each entry too.
            replace(e, requester=e.requester[:_JOURNAL_REQUESTER_CHARS])
            if e.requester is not None and len(e.requester) > _JOURNAL_REQUESTER_CHARS
            else e
            for e in entries
        ]
        with self._journal_lock:
            self._journal.extend(bounded)

    def _check_header(self, header: RecordHeader) -> None:
        if header.jurisdiction != self._jurisdiction:
            raise BadRequest(
                f"record {header.record_id} belongs to jurisdiction {header.jurisdiction}; "
                f"custodian {self._jurisdiction} holds keys only for {self._jurisdiction}"
            )

    def wrap(self, data_key: bytes, header: RecordHeader) -> WrappedKey:
        """Wrap *data_key* under the current KEK, bound to this jurisdiction and *header*.

        Args:
            data_key: the record's 32-byte data key.
            header: the record header; its ``kek_version`` MUST be
                :attr:`current_kek_version`.

        Returns:
            The wrapped key, safe to store next to the blob.

        Raises:
            BadRequest: *header* is of another jurisdiction or names another KEK version,
                *data_key* is not 32 bytes, or the subject was crypto-shredded.
            IntegrityError: the implementation produced an empty or oversized wrap.
        """
        return self.wrap_many([(data_key, header)])[0]

    def wrap_many(self, items: Sequence[tuple[bytes, RecordHeader]]) -> list[WrappedKey]:
        """Wrap the data keys of several records, all or none.

        Every item is checked before any key is touched; the subject keys the batch needs
        and that do not exist yet are made together (by :class:`LocalCustodian` in one
        transaction of its store). Each record is journalled: wrapped, or refused with the
        reason (the item at fault) or the note that another item was.

        Args:
            items: ``(data key, header)`` pairs, at most :data:`MAX_BATCH`.

        Returns:
            The wrapped keys, in the order of *items*.

        Raises:
            BadRequest: an empty or oversized batch, or as :meth:`wrap` for the first item
                at fault (named by its position when the batch holds more than one).
            IntegrityError: as :meth:`wrap`.
        """
        now = self._clock()
        if not 0 < len(items) <= MAX_BATCH:
            raise BadRequest(f"a batch holds 1..{MAX_BATCH} keys, got {len(items)}")
        at: int | None = None
        try:
            version = self.current_kek_version
            for at, (data_key, header) in enumerate(items):  # noqa: B007 - used on failure
                self._check_wrap(data_key, header, version)
            at = None
            self._begin()
            blobs = self._wrap_many_with(
                [(h.subject, key, _wrap_aad(self._jurisdiction, version, h)) for key, h in items]
            )
            _check_wrapped(blobs)
        except BadRequest as exc:
            raise self._refuse_batch(exc, now, "wrap", [h for _, h in items], at) from None
        except Exception:
            self._journal_batch(
                now, "wrap", [h for _, h in items], at=None, reason="wrap failed", outcome="failed"
            )
            raise
        self._record_many(
            [JournalEntry(now, "wrap", None, h.record_id, "wrapped") for _, h in items]
        )
        return [WrappedKey(self._jurisdiction, version, blob) for blob in blobs]

    def _refuse_batch(
        self,
        exc: BadRequest,
        now: int,
        operation: Literal["wrap", "protect"],
        headers: Sequence[RecordHeader],
        at: int | None,
    ) -> BadRequest:
        """Journal a batch refused whole because of *exc* (item *at* at fault, if known) and
        return the error to raise: naming the item, and the record of a shredded subject."""
        if isinstance(exc, SubjectShredded):
            at = next(n for n, h in enumerate(headers) if h.subject == exc.subject)
            error = _batch_error(exc, headers[at].record_id, at, len(headers))
        else:
            error = exc if at is None else _batch_error(exc, None, at, len(headers))
        self._journal_batch(now, operation, headers, at=at, reason=exc.message)
        return error

    def _journal_batch(
        self,
        now: int,
        operation: Literal["wrap", "protect"],
        headers: Sequence[RecordHeader],
        *,
        at: int | None,
        reason: str,
        outcome: Literal["refused", "failed"] = "refused",
    ) -> None:
        """Journal a batch that was refused whole: the item at fault (*at*) with *reason*,
        every other one with a note naming it; with no *at*, every item with *reason*."""
        others = reason if at is None else f"item {at} of the batch was refused"
        self._record_many(
            [
                JournalEntry(
                    now, operation, None, h.record_id, outcome, reason if n == at else others
                )
                for n, h in enumerate(headers)
            ]
        )

    def _check_wrap(self, data_key: bytes, header: RecordHeader, version: int) -> None:
        self._check_header(header)
        if len(data_key) != _aead.KEY_SIZE:
            raise BadRequest(
                f"record {header.record_id}: a data key is {_aead.KEY_SIZE} bytes, "
                f"got {len(data_key)}"
            )
        if header.kek_version != version:
            raise BadRequest(
                f"record {header.record_id} names KEK version {header.kek_version}, but "
                f"custodian {self._jurisdiction} wraps new keys under version {version}"
            )

    def unwrap(
        self,
        wrapped: WrappedKey,
        header: RecordHeader,
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> bytes:
        """Release a record's data key against a logged, fresh allow.

        Args:
            wrapped: the record's wrapped key.
            header: the record's header.
            authorization: the logged decision entry and the log's receipt for it.
            requester: the principal id asking; the allow MUST have been issued to it.

        Returns:
            The 32-byte data key.

        Raises:
            BadRequest: *header* is of another jurisdiction or *requester* is not an id.
            Denied: no authorization, a receipt that does not verify against the log key
                or does not cover the entry, an entry that is not an allow decision, that
                does not name this record, subject or requester, or that is not fresh.
            IntegrityError: the wrapped key does not open for this jurisdiction, version
                and header; one message whatever the cause.
        """
        return self.unwrap_many([(wrapped, header)], authorization, requester)[0]

    def unwrap_many(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> list[bytes]:
        """Release the data keys of several records under one logged allow, all or none.

        The receipt's signature is verified once for the whole batch (and once for every
        receipt of one log batch: see :class:`_VerifiedPromises`); every record is still
        checked against the allow one by one. If any record is refused, denied or
        fails to open, no key is returned.

        Args:
            items: ``(wrapped key, header)`` pairs, at most :data:`MAX_BATCH`.
            authorization: the logged decision entry and the log's receipt for it.
            requester: the principal id asking.

        Returns:
            The data keys, in the order of *items*.

        Raises:
            BadRequest: an empty or oversized batch, a header of another jurisdiction,
                or *requester* is not an id.
            Denied: as :meth:`unwrap`, for the first record the allow does not cover.
            IntegrityError: as :meth:`unwrap`, for the first wrapped key that fails.
        """
        return self._release(items, authorization, requester)

    def unwrap_batches(
        self,
        requests: Sequence[
            tuple[Sequence[tuple[WrappedKey, RecordHeader]], ReleaseAuthorization | None, str]
        ],
    ) -> list[list[bytes] | SovraError]:
        """Decide several release requests in one call, each on its own.

        Each ``(items, authorization, requester)`` request is checked against its own
        logged allow and released all or none, exactly as :meth:`unwrap_many` would, and
        journalled the same way. A request that is refused, denied or fails gets its error
        in its slot; the others still release. Every allow is verified before any key of
        the call is opened, and the subject keys of the allowed requests are loaded
        together.

        Args:
            requests: at most :data:`MAX_BATCH` requests and :data:`MAX_BATCH_KEYS` keys
                over all of them.

        Returns:
            One slot per request, in order: its data keys, or the error
            (:class:`BadRequest`, :class:`Denied`, :class:`NotFound`,
            :class:`IntegrityError`) :meth:`unwrap_many` would have raised.

        Raises:
            BadRequest: no requests, more than :data:`MAX_BATCH`, or more than
                :data:`MAX_BATCH_KEYS` keys in all; nothing is released.
        """
        if not 0 < len(requests) <= MAX_BATCH:
            raise BadRequest(f"a call holds 1..{MAX_BATCH} requests, got {len(requests)}")
        total = sum(len(items) for items, _, _ in requests)
        if total > MAX_BATCH_KEYS:
            raise BadRequest(f"a call releases at most {MAX_BATCH_KEYS} keys, got {total}")
        now = self._clock()
        results: list[list[bytes] | SovraError] = []
        admitted: list[int] = []
        for n, (items, authorization, requester) in enumerate(requests):
            try:
                self._admit(items, authorization, requester, now)
            except SovraError as exc:
                results.append(exc)
                continue
            results.append([])
            admitted.append(n)
        if admitted:
            self._begin()
            self._warm(list(dict.fromkeys(h.subject for n in admitted for _, h in requests[n][0])))
            for n in admitted:
                items, _, requester = requests[n]
                try:
                    results[n] = self._open_admitted(items, requester, now)
                except SovraError as exc:
                    results[n] = exc
        return results

    def _release(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
        *,
        recipient: str | None = None,
    ) -> list[bytes]:
        """:meth:`unwrap_many`; with *recipient*, the allow must name that key (hex)."""
        now = self._clock()
        self._admit(items, authorization, requester, now, recipient=recipient)
        self._begin()
        return self._open_admitted(items, requester, now)

    def _admit(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
        now: int,
        *,
        recipient: str | None = None,
    ) -> None:
        """Every check of a release before any key is opened; journals a refusal or denial.

        Raises:
            BadRequest: an empty or oversized batch, a header of another jurisdiction, a
                malformed *requester*.
            Denied: the allow does not verify or does not cover every record.
        """
        if not 0 < len(items) <= MAX_BATCH:
            raise BadRequest(f"a batch holds 1..{MAX_BATCH} keys, got {len(items)}")
        current = items[0][1].record_id
        try:
            check_id(requester, "requester")
            for _, header in items:
                current = header.record_id
                self._check_header(header)
        except BadRequest as exc:
            self._record(JournalEntry(now, "unwrap", requester, current, "refused", exc.message))
            raise
        current = items[0][1].record_id
        try:
            records, subjects = self._verify_allow(
                current, authorization, requester, now, recipient=recipient
            )
            for _, header in items:
                current = header.record_id
                self._check_covers(header, records, subjects)
        except Denied as exc:
            self._record(JournalEntry(now, "unwrap", requester, current, "denied", exc.message))
            raise

    def _open_admitted(
        self, items: Sequence[tuple[WrappedKey, RecordHeader]], requester: str, now: int
    ) -> list[bytes]:
        """Open the keys of a release :meth:`_admit` let through, all or none."""
        keys = []
        for wrapped, header in items:
            record_id = header.record_id
            try:
                keys.append(self._open_detailed(wrapped, header))
            except NotFound as exc:
                self._record(
                    JournalEntry(now, "unwrap", requester, record_id, "denied", exc.message)
                )
                raise NotFound(f"record {record_id}: {exc.message}") from None
            except IntegrityError as exc:
                self._record(
                    JournalEntry(now, "unwrap", requester, record_id, "failed", "integrity")
                )
                _log.warning(
                    "custodian %s: wrapped key of record %s failed authentication: %s",
                    self._jurisdiction,
                    record_id,
                    exc.message,
                )
                raise IntegrityError(
                    f"wrapped key of record {record_id} failed authentication"
                ) from None
        self._record_many(
            [JournalEntry(now, "unwrap", requester, h.record_id, "released") for _, h in items]
        )
        return keys

    # -- client-side sealing (sovra.keys.transport) -----------------------------------------

    def _transport_private(self, version: int) -> transport.PrivateKey:
        """The transport key of KEK *version*; a custodian that takes client-sealed keys
        overrides this.

        Raises:
            BadRequest: this custodian does not take client-sealed keys, or does not hold
                the version.
        """
        raise BadRequest(f"custodian {self._jurisdiction} does not take client-sealed keys")

    def transport_key(self) -> tuple[int, bytes]:
        """``(current KEK version, encoded public key)`` clients encrypt data keys to; the
        key's suite is :attr:`transport_suite` (its size names it).

        Raises:
            BadRequest: this custodian does not take client-sealed keys.
        """
        version = self.current_kek_version
        return version, transport.public_bytes(self._transport_private(version))

    def wrap_sealed(self, envelope: bytes, header: RecordHeader) -> WrappedKey:
        """Wrap a data key the client encrypted to this custodian, without anyone else
        seeing it.

        Args:
            envelope: a :func:`sovra.keys.transport.seal_key` envelope, ``to-custodian``,
                for exactly *header*.
            header: the record header the gateway prepared (client-sealed content type,
                current KEK version).

        Returns:
            The wrapped key, as :meth:`wrap` makes it.

        Raises:
            BadRequest: a header of another jurisdiction, KEK version or content type, or
                an envelope that does not open for this header (made for another record or
                subject, changed, or to another key); one message for the last.
        """
        now = self._clock()
        try:
            data_key = self._open_envelope(envelope, header)
        except BadRequest as exc:
            self._record(JournalEntry(now, "wrap", None, header.record_id, "refused", exc.message))
            raise
        return self.wrap(data_key, header)

    def _open_envelope(self, envelope: bytes, header: RecordHeader) -> bytes:
        rid = header.record_id
        self._check_header(header)
        if header.content_type != transport.CLIENT_SEALED_CONTENT_TYPE:
            raise BadRequest(f"record {rid} is not a client-sealed record")
        if header.kek_version != self.current_kek_version:
            raise BadRequest(
                f"record {rid} names KEK version {header.kek_version}, not the current "
                f"{self.current_kek_version}; prepare it again"
            )
        private = self._transport_private(header.kek_version)
        try:
            return transport.open_key(private, envelope, "to-custodian", header)
        except IntegrityError:
            raise BadRequest(f"the key envelope does not open for record {rid}") from None

    def unwrap_many_to(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
        recipient: bytes,
    ) -> list[bytes]:
        """As :meth:`unwrap_many`, but each key leaves encrypted to *recipient* only.

        Every check of :meth:`unwrap_many` runs first and is journalled the same way; the
        caller (the gateway) receives ``to-client`` envelopes it cannot open.

        Raises:
            BadRequest: *recipient* is not a usable public key, or is of a suite weaker
                than :attr:`transport_suite`, and as :meth:`unwrap_many`.
            Denied: as :meth:`unwrap_many`, or the logged allow does not name *recipient*
                (a gateway that swapped the client's key for its own).
            IntegrityError: as :meth:`unwrap_many`.
        """
        transport.require_suite(recipient, self.transport_suite, self._jurisdiction)
        keys = self._release(items, authorization, requester, recipient=recipient.hex())
        return [
            transport.seal_key(recipient, key, "to-client", header)
            for key, (_, header) in zip(keys, items, strict=True)
        ]

    # -- protected values (sovra.keys.values) -----------------------------------------------

    def _value_keys(self, subjects: Sequence[str], *, create: bool) -> dict[str, bytes]:
        """The keys protecting *subjects*' values; a custodian that protects values overrides
        this. MUST raise as :meth:`_wrap_many_with` (create) and :meth:`_unwrap_with` do,
        and make the missing subject keys all or none.

        Raises:
            BadRequest: this custodian does not protect values.
        """
        raise BadRequest(f"custodian {self._jurisdiction} does not protect values")

    def protect(self, header: RecordHeader, items: Sequence[tuple[str, str, str]]) -> list[str]:
        """Tokenize or seal values found in one record, under its subject's key.

        Args:
            header: the header of the record the values come from.
            items: ``(mode, kind, value)`` triples; mode is ``tokenize`` or ``seal``.

        Returns:
            One protected body per item (see :mod:`sovra.keys.values`), in order.

        Raises:
            BadRequest: a header of another jurisdiction, an empty or oversized batch, an
                unknown mode, an empty or oversized value, or a crypto-shredded subject.
        """
        return self.protect_many([(header, items)])[0]

    def protect_many(
        self, requests: Sequence[tuple[RecordHeader, Sequence[tuple[str, str, str]]]]
    ) -> list[list[str]]:
        """Tokenize or seal the values of several records, all or none.

        Each request is checked as :meth:`protect` checks one before any key is touched;
        the subject keys the call needs and that do not exist yet are made together (by
        :class:`LocalCustodian` in one transaction). Each record is journalled.

        Args:
            requests: ``(header, items)`` of each record, at most :data:`MAX_BATCH`
                requests and :data:`MAX_BATCH_VALUES` values in all.

        Returns:
            One list of protected bodies per request, in order.

        Raises:
            BadRequest: no requests, too many, too many values in all, or as
                :meth:`protect` for the first request at fault (named by its position
                when the call holds more than one).
        """
        now = self._clock()
        if not 0 < len(requests) <= MAX_BATCH:
            raise BadRequest(f"a call holds 1..{MAX_BATCH} requests, got {len(requests)}")
        total = sum(len(items) for _, items in requests)
        if total > MAX_BATCH_VALUES:
            raise BadRequest(f"a call protects at most {MAX_BATCH_VALUES} values, got {total}")
        headers = [header for header, _ in requests]
        at: int | None = None
        try:
            checked = []
            for at, (header, items) in enumerate(requests):  # noqa: B007 - used on failure
                self._check_header(header)
                checked.append(_value_items(items, "value"))
            at = None
            self._begin()
            out = self._protect_checked(headers, checked)
        except BadRequest as exc:
            raise self._refuse_batch(exc, now, "protect", headers, at) from None
        self._record_many(
            [JournalEntry(now, "protect", None, h.record_id, "protected") for h in headers]
        )
        return out

    def protect_and_wrap_many(
        self, requests: Sequence[tuple[bytes, RecordHeader, Sequence[tuple[str, str, str]]]]
    ) -> list[tuple[list[str], WrappedKey]]:
        """Protect the values of several records and wrap their data keys, all or none: what
        :meth:`protect_many` and then :meth:`wrap_many` do, in one call.

        Each request is checked as :meth:`wrap` checks its key and, when it has items, as
        :meth:`protect` checks them, before any key is touched; the subject keys the call
        needs and that do not exist yet are made together (by :class:`LocalCustodian` in
        one transaction). Each record is journalled as wrapped, and as protected when it
        had items.

        Args:
            requests: ``(data key, header, items)`` of each record, at most
                :data:`MAX_BATCH` requests and :data:`MAX_BATCH_VALUES` items in all;
                *items* may be empty (the key is only wrapped).

        Returns:
            ``(protected bodies, wrapped key)`` per request, in order.

        Raises:
            BadRequest: no requests, too many, too many values in all, or as
                :meth:`wrap_many` and :meth:`protect_many` for the first request at fault
                (named by its position when the call holds more than one).
            IntegrityError: as :meth:`wrap`.
        """
        now = self._clock()
        if not 0 < len(requests) <= MAX_BATCH:
            raise BadRequest(f"a call holds 1..{MAX_BATCH} requests, got {len(requests)}")
        total = sum(len(items) for _, _, items in requests)
        if total > MAX_BATCH_VALUES:
            raise BadRequest(f"a call protects at most {MAX_BATCH_VALUES} values, got {total}")
        headers = [header for _, header, _ in requests]
        at: int | None = None
        try:
            version = self.current_kek_version
            checked = []
            for at, (data_key, header, items) in enumerate(requests):  # noqa: B007
                self._check_wrap(data_key, header, version)
                checked.append(_value_items(items, "value") if items else [])
            at = None
            self._begin()
            # The wrap makes every missing subject key in one transaction; the values'
            # keys are then derived from keys already at hand.
            blobs = self._wrap_many_with(
                [(h.subject, k, _wrap_aad(self._jurisdiction, version, h)) for k, h, _ in requests]
            )
            _check_wrapped(blobs)
            out = self._protect_checked(headers, checked)
        except BadRequest as exc:
            raise self._refuse_batch(exc, now, "wrap", headers, at) from None
        except Exception:
            self._journal_batch(
                now, "wrap", headers, at=None, reason="wrap failed", outcome="failed"
            )
            raise
        self._record_many(
            [
                JournalEntry(now, "protect", None, h.record_id, "protected")
                for h, batch in zip(headers, checked, strict=True)
                if batch
            ]
            + [JournalEntry(now, "wrap", None, h.record_id, "wrapped") for h in headers]
        )
        return [
            (bodies, WrappedKey(self._jurisdiction, version, blob))
            for bodies, blob in zip(out, blobs, strict=True)
        ]

    def _protect_checked(
        self,
        headers: Sequence[RecordHeader],
        checked: Sequence[Sequence[tuple[values.Mode, str, str]]],
    ) -> list[list[str]]:
        """The checked items of each record protected under its subject's key (the missing
        subject keys made together); a record without items gets an empty list."""
        subjects = [h.subject for h, batch in zip(headers, checked, strict=True) if batch]
        keys = self._value_keys(list(dict.fromkeys(subjects)), create=True) if subjects else {}
        return [
            [
                values.protect_value(keys[h.subject], mode, kind, h.record_id, value)
                for mode, kind, value in batch
            ]
            for h, batch in zip(headers, checked, strict=True)
        ]

    def reveal(
        self,
        items: Sequence[tuple[RecordHeader, str, str, str]],
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> list[str | None]:
        """Turn protected bodies back into values, against a logged allow to reveal.

        The authorization is checked as for :meth:`unwrap_many`, and its decision MUST be
        for the ``reveal`` action and cover each item's record and subject. A body that
        does not open under the record's subject (text that only looks like a protected
        value, or one copied from another record) gives ``None``: it is left as it is.

        Args:
            items: ``(header, mode, kind, body)`` of each protected value.
            authorization: the logged decision entry and the log's receipt for it.
            requester: the principal id asking.

        Raises:
            BadRequest: an empty or oversized batch, an unknown mode, a header of another
                jurisdiction, or *requester* is not an id.
            Denied: as :meth:`unwrap_many`, or the decision is not for ``reveal``.
            NotFound: a subject was crypto-shredded.
        """
        now = self._clock()
        first = items[0][0].record_id if items else ""
        try:
            check_id(requester, "requester")
            checked = _value_items([(m, k, b) for _, m, k, b in items], "body")
            for header, *_ in items:
                self._check_header(header)
        except BadRequest as exc:
            self._record(JournalEntry(now, "reveal", requester, first, "refused", exc.message))
            raise
        current = first
        try:
            records, subjects = self._verify_allow(
                current, authorization, requester, now, action="reveal"
            )
            for header, *_ in items:
                current = header.record_id
                self._check_covers(header, records, subjects)
        except Denied as exc:
            self._record(JournalEntry(now, "reveal", requester, current, "denied", exc.message))
            raise
        self._begin()
        keys: dict[str, bytes] = {}
        out: list[str | None] = []
        for (header, *_), (mode, kind, body) in zip(items, checked, strict=True):
            subject = header.subject
            try:
                if subject not in keys:
                    keys[subject] = self._value_keys([subject], create=False)[subject]
                out.append(values.open_value(keys[subject], mode, kind, header.record_id, body))
            except NotFound as exc:
                self._record(
                    JournalEntry(now, "reveal", requester, header.record_id, "denied", exc.message)
                )
                raise NotFound(f"record {header.record_id}: {exc.message}") from None
            except IntegrityError:
                out.append(None)
        for record_id in dict.fromkeys(h.record_id for h, *_ in items):
            self._record(JournalEntry(now, "reveal", requester, record_id, "revealed"))
        return out

    def shred(self, subject: str) -> bool:
        """Crypto-shred a subject: destroy her key, so none of her records opens again.

        The caller (the gateway) logs the shred. Shredding twice is harmless.

        Args:
            subject: the subject's commitment.

        Returns:
            True if a key was destroyed, False if she had none (a tombstone is left
            either way, so no key is ever made for her again).

        Raises:
            BadRequest: *subject* is not a commitment.
            ConfigError: the key store could not be written; retry.
        """
        now = self._clock()
        if not re.fullmatch(r"[0-9a-f]{64}", subject):
            raise BadRequest("a subject is named by her 64-hex-digit commitment")
        try:
            destroyed = self._shred(subject)
        except Exception:
            self._record(JournalEntry(now, "shred", None, subject, "failed", "store failed"))
            raise
        self._record(JournalEntry(now, "shred", None, subject, "shredded"))
        return destroyed

    def _deny(self, record_id: str, reason: str) -> Denied:
        return Denied(
            f"custodian {self._jurisdiction} refuses to release the key of record "
            f"{record_id}: {reason}"
        )

    def _verify_allow(
        self,
        rid: str,
        authorization: ReleaseAuthorization | None,
        requester: str,
        now: int,
        *,
        action: str | None = None,
        recipient: str | None = None,
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Verify the receipt and the decision once; returns the records and subjects it allows.

        With *action*, the logged decision must also be for that action; with *recipient*
        (a hex X25519 key), it must name that key as the one released keys go to.
        """
        if authorization is None:
            raise Denied(
                f"custodian {self._jurisdiction} releases keys only against a logged allow; "
                "none was presented"
            )
        raw = authorization.entry
        if len(raw) > MAX_ENTRY_BYTES:
            raise self._deny(rid, f"the presented entry is over {MAX_ENTRY_BYTES} bytes")
        try:
            self._promises.verify(authorization.receipt, raw)
        except VerificationError as exc:
            raise self._deny(rid, f"the log receipt does not verify: {exc.message}") from None
        self._check_witnessed(rid, authorization, now)
        try:
            entry = LogEntry.from_bytes(raw)
        except BadRequest as exc:
            # The log signed it, so this is a log bug; refuse rather than guess.
            raise self._deny(rid, f"the logged entry does not parse: {exc}") from None
        if entry.kind != "decision":
            raise self._deny(rid, f"the logged entry is a {entry.kind} entry, not a decision")
        effect = entry.fields.get("effect")
        if effect != "allow":
            raise self._deny(rid, f"the logged decision's effect is {effect!r}, not 'allow'")
        logged_action = entry.fields.get("action")
        if action is not None and logged_action != action:
            raise self._deny(rid, f"the logged allow is for {logged_action!r}, not {action!r}")
        named = entry.fields.get("recipient")
        if recipient is not None and named != recipient:
            raise self._deny(
                rid,
                "the logged allow names no recipient key"
                if named is None
                else "the logged allow names another recipient key",
            )
        if entry.principal != requester:
            raise self._deny(
                rid, f"the logged allow was issued to {entry.principal!r}, not {requester!r}"
            )
        age = now - entry.time_ms
        if age > self._max_age_ms:
            raise self._deny(
                rid, f"the logged allow is {age} ms old, over the {self._max_age_ms} ms limit"
            )
        if -age > self._max_age_ms:
            raise self._deny(
                rid,
                f"the logged allow is dated {-age} ms in the future, "
                f"over the {self._max_age_ms} ms limit",
            )
        try:
            # A large decision names its records and subjects by root; the lists come
            # beside the entry, and only lists that hash to the logged roots count.
            records = named_ids(entry.fields, "records", authorization.records)
            subjects = named_ids(entry.fields, "subjects", authorization.subjects)
        except VerificationError as exc:
            raise self._deny(rid, exc.message) from None
        return frozenset(records), frozenset(subjects)

    def _check_witnessed(self, rid: str, authorization: ReleaseAuthorization, now: int) -> None:
        """With a witness policy: the allow is in a fresh checkpoint a quorum cosigned."""
        if self._witnessed is None:
            return
        try:
            self._witnessed.check(authorization.proof, authorization.receipt, now)
        except VerificationError as exc:
            raise self._deny(rid, f"not witnessed: {exc.message}") from None

    def _check_covers(
        self, header: RecordHeader, records: frozenset[str], subjects: frozenset[str]
    ) -> None:
        rid = header.record_id
        if rid not in records:
            raise self._deny(rid, "the logged allow does not cover this record")
        if header.subject not in subjects:
            raise self._deny(rid, "the logged allow does not cover this record's subject")

    def _open_detailed(self, wrapped: WrappedKey, header: RecordHeader) -> bytes:
        # The messages raised here name the cause; unwrap keeps them for the log only.
        if wrapped.jurisdiction != self._jurisdiction:
            raise IntegrityError(f"wrapped key is labelled {wrapped.jurisdiction!r}")
        version = wrapped.kek_version
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise IntegrityError(f"wrapped key has KEK version {version!r}")
        if not 0 < len(wrapped.blob) <= MAX_WRAPPED_BYTES:
            raise IntegrityError(f"wrapped key is {len(wrapped.blob)} bytes")
        aad = _wrap_aad(self._jurisdiction, version, header)
        try:
            data_key = self._unwrap_with(header.subject, wrapped.blob, aad)
        except InvalidTag:
            raise IntegrityError("tag does not verify") from None
        if len(data_key) != _aead.KEY_SIZE:
            raise IntegrityError(f"unwrapped key is {len(data_key)} bytes")
        return data_key


def _check_wrapped(blobs: Sequence[bytes]) -> None:
    for blob in blobs:
        if not 0 < len(blob) <= MAX_WRAPPED_BYTES:
            raise IntegrityError(f"custodian produced a wrapped key of {len(blob)} bytes")


def _batch_error(exc: BadRequest, record_id: str | None, at: int, count: int) -> BadRequest:
    """*exc* as the refusal of a whole batch: naming the record (when its message does
    not) and, in a batch of more than one, the position of the item at fault."""
    message = exc.message if record_id is None else f"record {record_id}: {exc.message}"
    if count > 1:
        message = f"item {at}: {message}"
    return exc if message == exc.message else BadRequest(message)


def _value_items(
    items: Sequence[tuple[str, str, str]], what: str
) -> list[tuple[values.Mode, str, str]]:
    """Check a protect or reveal batch, before any key is touched: size, modes, kinds and
    value lengths (bodies are checked when opened)."""
    if not 0 < len(items) <= values.MAX_BATCH_VALUES:
        raise BadRequest(f"a batch holds 1..{values.MAX_BATCH_VALUES} values, got {len(items)}")
    checked = []
    for n, (mode, kind, text) in enumerate(items):
        if mode not in _MODES:
            raise BadRequest(f"item {n}: mode must be 'tokenize' or 'seal', not {mode!r}")
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            raise BadRequest(f"item {n}: {kind!r} is not a kind name")
        if not isinstance(text, str):
            raise BadRequest(f"item {n}: the {what} must be a string")
        size = len(text.encode("utf-8", "surrogatepass"))
        if what == "value" and not 0 < size <= values.MAX_VALUE_BYTES:
            raise BadRequest(
                f"item {n}: a protected value is 1..{values.MAX_VALUE_BYTES} bytes, got {size}"
            )
        checked.append((values.Mode(mode), kind, text))
    return checked
