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

Local key file, format 1 (JSON, UTF-8, at most 1 MiB, mode 0600)::

    {
      "type": "sovra-custodian-keys",
      "format": 1,
      "jurisdiction": "PL",
      "keks": [
        {"version": 1, "key": "<64 lower-case hex>", "check": "<32 lower-case hex>"},
        ...
      ]
    }

``keks`` lists versions in strictly increasing order; the highest is current. ``check``
is the first 16 bytes of HMAC-SHA256(key, "sovra-kek-check/v1\\n" + jurisdiction + "\\n" +
version), which catches a corrupted key, an edited jurisdiction or version, and a file
copied to the wrong custodian. It is not a defence against someone who can write the
file: they hold the keys already; file permissions are that defence.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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
from sovra.keys.files import StrPath, no_duplicate_fields, read_secret, write_secret
from sovra.keys.sealing import Sealer, Unlock, is_sealed, new_sealer, seal_key_file, unseal_key_file
from sovra.keys.subjects import (
    SubjectKeys,
    SubjectKeyStore,
    SubjectShredded,
    open_subject_keys,
    require_subject_store,
    subjects_database_path,
    subjects_path,
)
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
    field_problem,
    named_ids,
)

__all__ = [
    "DEFAULT_JOURNAL_SIZE",
    "DEFAULT_MAX_AUTHORIZATION_AGE_MS",
    "KEY_FILE_FORMAT",
    "MAX_BATCH",
    "MAX_BATCH_KEYS",
    "MAX_BATCH_VALUES",
    "MAX_WRAPPED_BYTES",
    "BaseCustodian",
    "Clock",
    "Custodian",
    "CustodianStatus",
    "JournalEntry",
    "LocalCustodian",
    "SealingCustodian",
    "ValueCustodian",
    "system_clock_ms",
]

_log = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Returns the current UNIX time in milliseconds."""

DEFAULT_MAX_AUTHORIZATION_AGE_MS = 300_000
DEFAULT_JOURNAL_SIZE = 10_000
MAX_WRAPPED_BYTES = 4096
"""A wrapped 32-byte key is far smaller; anything larger is refused before any work."""
KEY_FILE_FORMAT = 1
MAX_BATCH = 1000
"""Most keys one :meth:`BaseCustodian.unwrap_many` call releases, most keys one
:meth:`BaseCustodian.wrap_many` call wraps, and most requests one
:meth:`BaseCustodian.protect_many` or :meth:`BaseCustodian.unwrap_batches` call carries."""
MAX_BATCH_KEYS = 10 * MAX_BATCH
"""Most keys one :meth:`BaseCustodian.unwrap_batches` call releases over all its requests."""
MAX_BATCH_VALUES = 2 * values.MAX_BATCH_VALUES
"""Most values one :meth:`BaseCustodian.protect_many` call protects over all its requests."""
_KEY_FILE_TYPE = "sovra-custodian-keys"
_MAX_KEY_FILE_BYTES = 1024 * 1024
_MAX_KEKS = 4096
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_HEX_CHECK = re.compile(r"[0-9a-f]{32}")
_WRAP_TAG = b"sovra-wrap/v2\n"
_SUBJECT_TAG = b"sovra-subject-key/v1\n"
_SUBJECT_CACHE_SIZE = 4096
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


class BaseCustodian(abc.ABC):
    """Every check of :class:`Custodian`, around two private methods implementers write.

    Subclasses provide :attr:`current_kek_version`, :meth:`_wrap_with`,
    :meth:`_unwrap_with` and :meth:`_shred`; they MUST NOT override :meth:`wrap`,
    :meth:`unwrap`, :meth:`unwrap_many` or :meth:`shred`.
    """

    def __init__(
        self,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
    ) -> None:
        """Set up the checks.

        Args:
            jurisdiction: two-letter code of the jurisdiction served.
            log_key: the transparency log's public key; receipts must be signed by it.
            clock: the current time in UNIX milliseconds.
            max_authorization_age_ms: how far a logged allow's time may be from now.
            journal_size: how many requests :meth:`journal` remembers.

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

    def _transport_private(self, version: int) -> X25519PrivateKey:
        """The transport key of KEK *version*; a custodian that takes client-sealed keys
        overrides this.

        Raises:
            BadRequest: this custodian does not take client-sealed keys, or does not hold
                the version.
        """
        raise BadRequest(f"custodian {self._jurisdiction} does not take client-sealed keys")

    def transport_key(self) -> tuple[int, bytes]:
        """``(current KEK version, raw X25519 public key)`` clients encrypt data keys to.

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
            BadRequest: *recipient* is not a usable X25519 public key, and as
                :meth:`unwrap_many`.
            Denied: as :meth:`unwrap_many`, or the logged allow does not name *recipient*
                (a gateway that swapped the client's key for its own).
            IntegrityError: as :meth:`unwrap_many`.
        """
        transport.check_public(recipient)
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
            keys = self._value_keys(list(dict.fromkeys(h.subject for h in headers)), create=True)
            out = [
                [
                    values.protect_value(keys[h.subject], mode, kind, h.record_id, value)
                    for mode, kind, value in batch
                ]
                for h, batch in zip(headers, checked, strict=True)
            ]
        except BadRequest as exc:
            raise self._refuse_batch(exc, now, "protect", headers, at) from None
        self._record_many(
            [JournalEntry(now, "protect", None, h.record_id, "protected") for h in headers]
        )
        return out

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


def _kek_check(key: bytes, jurisdiction: str, version: int) -> str:
    label = f"sovra-kek-check/v1\n{jurisdiction}\n{version}".encode()
    return hmac.new(key, label, hashlib.sha256).digest()[:16].hex()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _KeyFileParser:
    """Strict reader of key file format 1; every refusal names the file and the fault."""

    def __init__(self, path: StrPath, jurisdiction: str) -> None:
        self._path = path
        self._jurisdiction = jurisdiction

    def _refuse(self, reason: str) -> ConfigError:
        return ConfigError(f"custodian key file {self._path} is refused: {reason}")

    def _exact_fields(self, obj: Mapping[str, Any], fields: set[str], what: str) -> None:
        problem = field_problem(obj, fields, frozenset(), what)
        if problem is not None:
            raise self._refuse(problem)

    def parse(self, data: bytes) -> dict[int, bytes]:
        try:
            obj = json.loads(
                data.decode("utf-8"),
                object_pairs_hook=no_duplicate_fields,
                parse_constant=_refuse_constant,
            )
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise self._refuse(f"not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise self._refuse("not a JSON object")
        self._exact_fields(obj, {"type", "format", "jurisdiction", "keks"}, "the file")
        if obj["type"] != _KEY_FILE_TYPE:
            raise self._refuse(f"type is {obj['type']!r}, not {_KEY_FILE_TYPE!r}")
        if not _is_int(obj["format"]) or obj["format"] != KEY_FILE_FORMAT:
            raise self._refuse(f"format {obj['format']!r} is not {KEY_FILE_FORMAT}")
        if obj["jurisdiction"] != self._jurisdiction:
            raise self._refuse(
                f"it holds keys of jurisdiction {obj['jurisdiction']!r}, not {self._jurisdiction!r}"
            )
        keks = obj["keks"]
        if not isinstance(keks, list) or not 0 < len(keks) <= _MAX_KEKS:
            raise self._refuse(f"keks must be a list of 1..{_MAX_KEKS} entries")
        parsed: dict[int, bytes] = {}
        previous = 0
        for position, item in enumerate(keks):
            version, key = self._kek(position, item, previous)
            parsed[version] = key
            previous = version
        return parsed

    def _kek(self, position: int, item: object, previous: int) -> tuple[int, bytes]:
        if not isinstance(item, dict):
            raise self._refuse(f"keks[{position}] is not an object")
        self._exact_fields(item, {"version", "key", "check"}, f"keks[{position}]")
        version, key_hex, check = item["version"], item["key"], item["check"]
        if not _is_int(version) or version <= previous:
            raise self._refuse(f"keks[{position}] version must be an integer above {previous}")
        if not isinstance(key_hex, str) or not _HEX_KEY.fullmatch(key_hex):
            raise self._refuse(f"KEK version {version} is not 64 lower-case hex digits")
        if not isinstance(check, str) or not _HEX_CHECK.fullmatch(check):
            raise self._refuse(f"KEK version {version} check is not 32 lower-case hex digits")
        key = bytes.fromhex(key_hex)
        if not hmac.compare_digest(_kek_check(key, self._jurisdiction, version), check):
            raise self._refuse(
                f"KEK version {version} does not match its check value; the file is corrupt "
                "or was edited, restore it from a backup"
            )
        return version, key


def _serialize_key_file(jurisdiction: str, keks: Mapping[int, bytes]) -> bytes:
    body = {
        "type": _KEY_FILE_TYPE,
        "format": KEY_FILE_FORMAT,
        "jurisdiction": jurisdiction,
        "keks": [
            {"version": v, "key": keks[v].hex(), "check": _kek_check(keks[v], jurisdiction, v)}
            for v in sorted(keks)
        ],
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def _load_keks(
    path: StrPath, jurisdiction: str, unlock: Unlock | None
) -> tuple[dict[int, bytes], Sealer | None]:
    data = read_secret(path, max_len=_MAX_KEY_FILE_BYTES)
    sealer = None
    if is_sealed(data):
        data, sealer = unseal_key_file(data, jurisdiction, unlock)
    elif unlock is not None:
        raise ConfigError(
            f"custodian key file {path} is not sealed, yet a passphrase or key file was "
            "given; seal it first (sovra custodian seal) or give none"
        )
    return _KeyFileParser(path, jurisdiction).parse(data), sealer


class LocalCustodian(BaseCustodian):
    """An in-process custodian whose KEKs live in one 0600 key file.

    Build one with :meth:`create` (new key file) or :meth:`open` (existing file).
    """

    def __init__(
        self,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        keks: Mapping[int, bytes],
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
        unlock: Unlock | None = None,
        sealer: Sealer | None = None,
        subjects: SubjectKeys | None = None,
    ) -> None:
        """Wrap already-loaded KEKs; prefer :meth:`create` and :meth:`open`. The subject
        keys are in *subjects*, by default the SQLite store beside the key file.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: no KEKs, a KEK that is not 32 bytes, a version below 1, or a
                non-positive age limit or journal size.
        """
        super().__init__(
            jurisdiction,
            log_key,
            clock=clock,
            max_authorization_age_ms=max_authorization_age_ms,
            journal_size=journal_size,
        )
        if not keks:
            raise ConfigError(f"custodian {jurisdiction} has no KEK")
        for version, key in keks.items():
            if version < 1 or len(key) != _aead.KEY_SIZE:
                raise ConfigError(f"custodian {jurisdiction} KEK version {version} is invalid")
        self._path = Path(path)
        self._keks = dict(keks)
        self._kek_ciphers: tuple[dict[int, bytes], dict[int, AESGCM]] = (self._keks, {})
        # One lock orders subject-key creation, rewraps, shreds and KEK changes, so a
        # KEK version is never destroyed while a subject key sealed under it is in use.
        self._lock = threading.RLock()
        self._subjects = subjects or SubjectKeyStore(subjects_path(self._path))
        self._unlock = unlock
        self._sealer = sealer
        self._file_stamp = self._stamp()
        # Recently used subject keys, unsealed. The cache is dropped whenever another
        # process commits to the store (a shred by ``sovra keys shred``), and a shred here
        # evicts its entry, so a shredded key is never served from memory.
        # Each entry keeps the key and its AES-GCM object, made once per cached subject.
        self._cache: OrderedDict[str, tuple[bytes, AESGCM]] = OrderedDict()
        self._cache_version = self._subjects.data_version()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        """Reload the KEK file if another process (``sovra keys rotate``) changed it.

        A stat per call: cheap, and it keeps a running gateway from sealing new subject
        keys under a version the operator has just rotated away from.
        """
        stamp = self._stamp()
        if stamp is None or stamp == self._file_stamp:
            return
        with self._lock:
            keks, sealer = _load_keks(self._path, self._jurisdiction, self._unlock)
            self._keks, self._sealer = keks, sealer
            self._file_stamp = stamp

    def _write_keks(self, keks: dict[int, bytes]) -> None:
        data = _serialize_key_file(self._jurisdiction, keks)
        if self._sealer is not None:
            data = seal_key_file(data, self._jurisdiction, self._sealer)
        write_secret(self._path, data, overwrite=True)
        self._keks = keks
        self._file_stamp = self._stamp()

    @property
    def sealed_at_rest(self) -> bool:
        """Whether the KEK file is sealed under a passphrase or key file."""
        return self._sealer is not None

    def seal_at_rest(self, unlock: Unlock) -> None:
        """Rewrite the KEK file sealed under *unlock* (a passphrase or a key file).

        From then on the file opens only with :meth:`open` given the same unlock.

        Raises:
            ConfigError: the file cannot be rewritten; it stays as it was.
        """
        with self._lock:
            previous = (self._sealer, self._unlock)
            self._sealer, self._unlock = new_sealer(unlock), unlock
            try:
                self._write_keks(dict(self._keks))
            except ConfigError:
                self._sealer, self._unlock = previous
                raise

    @classmethod
    def create(
        cls,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
        unlock: Unlock | None = None,
    ) -> LocalCustodian:
        """Generate KEK version 1 and write a new key file (mode 0600) at *path*.

        With *unlock*, the file is sealed at rest under that passphrase or key file.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: *path* already exists or cannot be written.
        """
        check_jurisdiction(jurisdiction)
        stale = subjects_path(path)
        if stale.exists():
            raise ConfigError(
                f"{stale} already exists; a new custodian starts with no subject keys "
                "(move the old store away first)"
            )
        keks = {1: _aead.new_key()}
        sealer = None if unlock is None else new_sealer(unlock)
        data = _serialize_key_file(jurisdiction, keks)
        if sealer is not None:
            data = seal_key_file(data, jurisdiction, sealer)
        write_secret(path, data)
        return cls(
            path,
            jurisdiction,
            log_key,
            keks,
            clock=clock,
            max_authorization_age_ms=max_authorization_age_ms,
            journal_size=journal_size,
            unlock=unlock,
            sealer=sealer,
        )

    @classmethod
    def open(
        cls,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
        unlock: Unlock | None = None,
        database: str | None = None,
    ) -> LocalCustodian:
        """Load the custodian of *jurisdiction* from its key file.

        Its subject keys are in the PostgreSQL *database* when given, else in the one
        ``<J>.database`` beside the key file names, else in the SQLite store beside it
        (:func:`~sovra.keys.subjects.open_subject_keys`).

        Args:
            path: the KEK file; its subject-key store is beside it.
            jurisdiction: the jurisdiction served.
            log_key: the log's public key.
            clock: UNIX ms.
            max_authorization_age_ms: freshness limit of a logged allow.
            journal_size: requests remembered.
            unlock: the passphrase or key file of a file sealed at rest.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: the file is missing, open to group or others, oversized,
                malformed, of another jurisdiction, a KEK fails its check value, or it is
                sealed and *unlock* is missing or wrong; or the subject-key store beside
                it is missing (an existing custodian never starts from an empty one).
        """
        check_jurisdiction(jurisdiction)
        keks, sealer = _load_keks(path, jurisdiction, unlock)
        if database is None and not subjects_database_path(path).exists():
            require_subject_store(subjects_path(path))
        subjects = open_subject_keys(path, jurisdiction, database)
        try:
            return cls(
                path,
                jurisdiction,
                log_key,
                keks,
                clock=clock,
                max_authorization_age_ms=max_authorization_age_ms,
                journal_size=journal_size,
                unlock=unlock,
                sealer=sealer,
                subjects=subjects,
            )
        except BaseException:
            subjects.close()
            raise

    @property
    def current_kek_version(self) -> int:
        """The highest KEK version; new subject keys are sealed under it."""
        self._refresh()
        return max(self._keks)

    def close(self) -> None:
        """Close the subject-key store."""
        self._subjects.close()

    def rotate(self) -> int:
        """Add a new KEK version, make it current, and rewrite the key file atomically.

        Subject keys stay sealed under their versions until :meth:`rewrap` moves them;
        every record keeps opening throughout.

        Returns:
            The new current KEK version.

        Raises:
            ConfigError: the key file cannot be rewritten; nothing changes in memory.
        """
        with self._lock:
            keks = {**self._keks, self.current_kek_version + 1: _aead.new_key()}
            self._write_keks(keks)
            return max(keks)

    def rewrap(
        self, *, batch: int = 256, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Reseal every subject key held under an older KEK version under the current one.

        Runs in short batches, each its own transaction, so wraps, unwraps and shreds go
        on meanwhile; no record and no wrapped data key is touched.

        Args:
            batch: subject keys per transaction.
            progress: called with ``(done, total)`` after each batch.

        Returns:
            How many subject keys were resealed.

        Raises:
            IntegrityError: a stored subject key does not open under its KEK version.
            ConfigError: the store could not be written; rerun to continue.
        """
        if batch <= 0:
            raise BadRequest("batch must be positive")
        target = self.current_kek_version
        total = sum(n for v, n in self._subjects.counts().items() if v < target)
        done = 0
        while True:
            with self._lock:
                rows = self._subjects.sealed_below(target, batch)
                if not rows:
                    break
                changes = []
                for subject, version, sealed in rows:
                    key = self._open_subject_key(subject, version, sealed)
                    changes.append(
                        (subject, version, target, self._seal_subject_key(subject, target, key))
                    )
                done += self._subjects.replace(changes)
            if progress is not None:
                progress(done, max(total, done))
        return done

    def destroy_unused(self) -> list[int]:
        """Destroy every KEK version older than the current one that seals no subject key.

        Returns:
            The versions destroyed (removed from the key file for good).

        Raises:
            ConfigError: the key file cannot be rewritten; nothing is destroyed.
        """
        with self._lock:
            counts = self._subjects.counts()
            current = self.current_kek_version
            unused = [v for v in self._keks if v != current and counts.get(v, 0) == 0]
            if not unused:
                return []
            self._write_keks({v: k for v, k in self._keks.items() if v not in unused})
            return sorted(unused)

    def status(self) -> CustodianStatus:
        """KEK versions held, how many subject keys each seals, and shredded subjects."""
        with self._lock:
            counts = self._subjects.counts()
            versions = {v: counts.get(v, 0) for v in sorted(self._keks)}
            orphaned = {v: n for v, n in counts.items() if v not in self._keks}
            return CustodianStatus(
                jurisdiction=self._jurisdiction,
                current_kek_version=self.current_kek_version,
                versions=versions,
                subjects=sum(counts.values()),
                shredded=self._subjects.shredded_count(),
                orphaned=orphaned,
            )

    # -- the hierarchy ------------------------------------------------------------------

    def _subject_aad(self, subject: str, version: int) -> bytes:
        return _SUBJECT_TAG + f"{self._jurisdiction}\n{version}\n{subject}".encode()

    def _kek_cipher(self, version: int) -> AESGCM | None:
        """The AES-GCM object of KEK *version* (made once per version and key file), or
        None when the version is not held."""
        keks, ciphers = self._keks, self._kek_ciphers
        if ciphers[0] is not keks:  # the key file was reloaded or rewritten
            ciphers = self._kek_ciphers = (keks, {})
        cipher = ciphers[1].get(version)
        if cipher is None and version in keks:
            cipher = ciphers[1][version] = AESGCM(keks[version])
        return cipher

    def _seal_subject_key(self, subject: str, version: int, key: bytes) -> bytes:
        cipher = self._kek_cipher(version)
        if cipher is None:
            raise ConfigError(f"custodian {self._jurisdiction} holds no KEK version {version}")
        return _aead.seal_with(cipher, key, self._subject_aad(subject, version))

    def _open_subject_key(self, subject: str, version: int, sealed: bytes) -> bytes:
        cipher = self._kek_cipher(version)
        if cipher is None:
            self._refresh()
            cipher = self._kek_cipher(version)
        if cipher is None:
            raise IntegrityError(f"subject key is sealed under KEK version {version}, not held")
        key = _aead.open_with(cipher, sealed, self._subject_aad(subject, version))
        if len(key) != _aead.KEY_SIZE:
            raise IntegrityError(f"subject key is {len(key)} bytes")
        return key

    def _begin(self) -> None:
        # Once per request: drop the cache if another process committed to the store.
        with self._lock:
            version = self._subjects.data_version()
            if version != self._cache_version:
                self._cache.clear()
                self._cache_version = version

    def _subject_key(self, subject: str, *, create: bool) -> bytes:
        return self._subject_entry(subject, create=create)[0]

    def _subject_entry(self, subject: str, *, create: bool) -> tuple[bytes, AESGCM]:
        with self._lock:
            cached = self._cache.get(subject)
            if cached is not None:
                self._cache.move_to_end(subject)
                return cached
            return self._subject_entries([subject], create=create)[subject]

    def _subject_entries(
        self, subjects: Sequence[str], *, create: bool
    ) -> dict[str, tuple[bytes, AESGCM]]:
        """The keys of *subjects* (distinct), from the cache or the store; with *create*,
        the missing ones are made and stored in one transaction, all or none.

        Raises:
            SubjectShredded: with *create*, a subject's key was destroyed; nothing stored.
            NotFound: without *create*, a subject's key was destroyed.
            IntegrityError: without *create*, a subject has no key, or a stored key does
                not open.
            ConfigError: the store could not be written; nothing stored.
        """
        with self._lock:
            found: dict[str, tuple[bytes, AESGCM]] = {}
            missing = []
            for subject in subjects:
                cached = self._cache.get(subject)
                if cached is None:
                    missing.append(subject)
                else:
                    self._cache.move_to_end(subject)
                    found[subject] = cached
            if not missing:
                return found
            loaded = self._load_subject_keys(missing, create=create)
            for subject, key in loaded.items():
                entry = (key, AESGCM(key))
                found[subject] = entry
                self._cache[subject] = entry
            while len(self._cache) > _SUBJECT_CACHE_SIZE:
                self._cache.popitem(last=False)
            return found

    def _load_subject_keys(self, subjects: list[str], *, create: bool) -> dict[str, bytes]:
        """:meth:`_subject_entries` for subjects not in the cache: one lookup, one
        transaction for the keys it makes."""
        rows, shredded = self._subjects.lookup(subjects)
        loaded: dict[str, bytes] = {}
        new: list[tuple[str, int, bytes]] = []
        version = self.current_kek_version if create else 0
        for subject in subjects:
            row = rows.get(subject)
            if row is not None:
                loaded[subject] = self._open_subject_key(subject, row[1], row[2])
            elif subject in shredded:
                if create:
                    raise SubjectShredded(subject, shredded[subject])
                raise NotFound(
                    f"the subject's key was destroyed (crypto-shredded) at {shredded[subject]} ms"
                )
            elif not create:
                raise IntegrityError("the subject has no key")
            else:
                key = _aead.new_key()
                loaded[subject] = key
                new.append((subject, version, self._seal_subject_key(subject, version, key)))
        if new:
            # Another process (a second gateway worker) may have made some of these keys
            # since the lookup: theirs are kept, and used here instead of the new ones.
            for subject, version, sealed in self._subjects.insert_many(new, self._clock()).values():
                loaded[subject] = self._open_subject_key(subject, version, sealed)
        return loaded

    def _warm(self, subjects: Sequence[str]) -> None:
        with self._lock:
            missing = [s for s in subjects if s not in self._cache]
            if not missing:
                return
            rows, _ = self._subjects.lookup(missing)
            for subject, version, sealed in rows.values():
                try:
                    key = self._open_subject_key(subject, version, sealed)
                except IntegrityError:
                    continue  # the request that needs it reports it, on its own
                self._cache[subject] = (key, AESGCM(key))
            while len(self._cache) > _SUBJECT_CACHE_SIZE:
                self._cache.popitem(last=False)

    def _transport_private(self, version: int) -> X25519PrivateKey:
        kek = self._keks.get(version)
        if kek is None:
            self._refresh()
            kek = self._keks.get(version)
        if kek is None:
            raise BadRequest(f"custodian {self._jurisdiction} holds no KEK version {version}")
        return transport.derive_transport_key(kek, self._jurisdiction, version)

    def _value_keys(self, subjects: Sequence[str], *, create: bool) -> dict[str, bytes]:
        entries = self._subject_entries(subjects, create=create)
        return {
            subject: values.value_key(key, self._jurisdiction, subject)
            for subject, (key, _) in entries.items()
        }

    def _wrap_with(self, subject: str, data_key: bytes, aad: bytes) -> bytes:
        return self._wrap_many_with([(subject, data_key, aad)])[0]

    def _wrap_many_with(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bytes]:
        entries = self._subject_entries(list(dict.fromkeys(s for s, _, _ in items)), create=True)
        return [_aead.seal_with(entries[subject][1], key, aad) for subject, key, aad in items]

    def _unwrap_with(self, subject: str, blob: bytes, aad: bytes) -> bytes:
        return _aead.open_with(self._subject_entry(subject, create=False)[1], blob, aad)

    def _shred(self, subject: str) -> bool:
        with self._lock:
            self._cache.pop(subject, None)
            return self._subjects.shred(subject, self._clock())
