"""What the SQL metadata stores share: the schema, the input checks and the row mapping.

Each engine subclass supplies its connection, its locking and its transactions (the
parts where SQLite and PostgreSQL genuinely differ); the statements themselves are plain
SQL both engines run unchanged, written with ``?`` placeholders. Duplicates are detected
with ``INSERT ... ON CONFLICT DO NOTHING`` and the affected-row count rather than by
catching driver exceptions, so both engines report them the same way and a refused
write leaves nothing behind.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, cast

import orjson

from sovra.errors import (
    BadRequest,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
    SovraError,
    Unauthenticated,
)
from sovra.model import (
    SPLIT_KEY_FORMAT,
    Principal,
    RecordHeader,
    RecordMeta,
    Role,
    WrappedKey,
    canonical_json,
    check_id,
    check_jurisdiction,
)
from sovra.store.migrations import METADATA_STEPS, Dialect, migrate

__all__ = [
    "MAX_GRANT_BYTES",
    "MAX_NONCE_CHARS",
    "MAX_WRAPPED_KEY_BYTES",
    "NONCE_SWEEP_MS",
    "PENDING",
    "QUARANTINED",
    "SCHEMA_VERSION",
    "Run",
    "SQLMetadataStore",
]

SCHEMA_VERSION = len(METADATA_STEPS)
MAX_GRANT_BYTES = 256 * 1024
MAX_WRAPPED_KEY_BYTES = 4096
MAX_NONCE_CHARS = 1024
_MAX_LABELS = 256
_MAX_LABEL_CHARS = 128
_MAX_CONTENT_TYPE_CHARS = 255
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_COMMITMENT = re.compile(r"[0-9a-f]{64}")
_COMPONENT = "metadata"


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Run(Protocol):
    """Runs statements inside the current transaction."""

    def __call__(self, sql: str, params: Sequence[object]) -> _Cursor:
        """Execute one statement and return its cursor."""
        ...

    def many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        """Execute one statement once per row of parameters; the rows it changed in all."""
        ...


PENDING = -1
"""``log_index`` of a row written before its ingest entry is appended: no reader sees it."""
QUARANTINED = -2
"""``log_index`` of a row ``sovra check`` found without an ingest entry: hidden, kept."""


def _int(value: object, what: str, minimum: int = _INT64_MIN) -> int:
    # bool is an int subclass; True as a log index is a bug, not the number 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{what} must be an integer, got {type(value).__name__}")
    if not minimum <= value <= _INT64_MAX:
        raise BadRequest(f"{what} must be between {minimum} and {_INT64_MAX}, got {value}")
    return value


def _is_label(value: object, max_chars: int = _MAX_LABEL_CHARS) -> bool:
    # isprintable() also rejects NUL (which PostgreSQL TEXT cannot hold) and lone
    # surrogates (which cannot be encoded), so a label stores the same on every engine.
    return isinstance(value, str) and 0 < len(value) <= max_chars and value.isprintable()


def _label(value: object, what: str, max_chars: int = _MAX_LABEL_CHARS) -> str:
    if not _is_label(value, max_chars):
        raise BadRequest(f"{what} must be 1..{max_chars} printable characters, got {value!r}")
    return cast("str", value)


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value <= _INT64_MAX


def _labels(
    value: object,
    what: str,
    check: Callable[[object, str], object],
    fine: Callable[[object], bool],
) -> str:
    """*value*, a mapping of labels to what *check* takes, as canonical JSON text.

    *fine* is a quick test that *check* would pass: each entry meets it or goes to the
    full check (which names the entry on a refusal), so no message is built for a good one.
    A mapping whose canonical JSON passed the checks before (most records of a batch
    carry the same few) is not checked again: the same text means the same labels and
    values, which pass alike.
    """
    text = None
    if type(value) is dict:
        try:
            text = canonical_json(value).decode()
        except (TypeError, ValueError):
            text = None  # the checks below say what is wrong with it
        if text is not None and (what, text) in _CHECKED_LABELS:
            return text
    if not isinstance(value, Mapping):
        raise BadRequest(f"{what} must be a mapping")
    if len(value) > _MAX_LABELS:
        raise BadRequest(f"{what} has {len(value)} entries, over the {_MAX_LABELS} limit")
    for k, v in value.items():
        if not _is_label(k):
            _label(k, f"{what} key")
        if not fine(v):
            check(v, f"{what}[{k}]")
    if text is None:
        return canonical_json(dict(value)).decode()
    if len(_CHECKED_LABELS) >= _MAX_CHECKED_LABELS:
        _CHECKED_LABELS.clear()
    _CHECKED_LABELS[(what, text)] = None
    return text


_CHECKED_LABELS: dict[tuple[str, str], None] = {}
"""``(what, canonical JSON)`` of label mappings :func:`_labels` found good."""
_MAX_CHECKED_LABELS = 4096


def _count(value: object, what: str) -> int:
    return _int(value, what, 0)


def _commitment(value: object) -> str:
    if not isinstance(value, str) or not _COMMITMENT.fullmatch(value):
        raise BadRequest("a subject commitment is 64 lower-case hex digits")
    return value


def _bytes(value: object, what: str, max_bytes: int) -> bytes:
    if not isinstance(value, bytes):
        raise BadRequest(f"{what} must be bytes, got {type(value).__name__}")
    if not value:
        raise BadRequest(f"{what} is empty")
    if len(value) > max_bytes:
        raise BadRequest(f"{what} is {len(value)} bytes, over the {max_bytes}-byte limit")
    return value


def _record_row(meta: object) -> tuple[object, ...]:
    if not isinstance(meta, RecordMeta):
        raise BadRequest(f"expected RecordMeta, got {type(meta).__name__}")
    h, wk = meta.header, meta.wrapped_key
    if not isinstance(h, RecordHeader) or not isinstance(wk, WrappedKey):
        raise BadRequest("record metadata needs a RecordHeader and a WrappedKey")
    # RecordHeader's constructor checks values but not types: 1.5 passes `>= 1`.
    kek, fmt, wrapped_kek = h.kek_version, h.format, wk.kek_version
    size, created, index = meta.blob_size, meta.created_ms, meta.log_index
    # Each number is tested in line first; only one that fails goes to the check that
    # names it (a batch of 1,000 rows made 7,000 calls for numbers that were fine).
    if not (
        type(kek) is int
        and type(fmt) is int
        and type(wrapped_kek) is int
        and type(size) is int
        and type(created) is int
        and type(index) is int
        and 1 <= kek <= _INT64_MAX
        and 1 <= fmt <= _INT64_MAX
        and 1 <= wrapped_kek <= _INT64_MAX
        and 0 <= size <= _INT64_MAX
        and 0 <= created <= _INT64_MAX
        and -1 <= index <= _INT64_MAX
    ):
        kek = _int(kek, "kek_version", 1)
        fmt = _int(fmt, "record format", 1)
        wrapped_kek = _int(wrapped_kek, "wrapped key kek_version", 1)
        size = _count(size, "blob_size")
        created = _count(created, "created_ms")
        index = _int(index, "log_index", -1)
    return (
        h.record_id,
        h.subject,
        h.jurisdiction,
        h.region,
        kek,
        _label(h.content_type, "content type", _MAX_CONTENT_TYPE_CHARS),
        fmt,
        check_jurisdiction(wk.jurisdiction),
        wrapped_kek,
        _bytes(wk.blob, "wrapped key", MAX_WRAPPED_KEY_BYTES),
        size,
        created,
        _labels(meta.findings, "findings", _count, _is_count),
        _labels(meta.actions, "actions", _label, _is_label),
        index,
    )


# Written out in full (not assembled) so every statement is a constant a reader can
# check against the table definition.
_INSERT_RECORD = """INSERT INTO records (
    record_id, subject, jurisdiction, region, kek_version, content_type, format,
    wrapped_jurisdiction, wrapped_kek_version, wrapped_key, blob_size, created_ms,
    findings, actions, log_index
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (record_id) DO NOTHING"""

_SELECT_RECORD = """SELECT
    record_id, subject, jurisdiction, region, kek_version, content_type, format,
    wrapped_jurisdiction, wrapped_kek_version, wrapped_key, blob_size, created_ms,
    findings, actions, log_index
FROM records WHERE record_id = ? AND log_index >= 0"""

_SELECT_SUBJECT_RECORDS = """SELECT
    record_id, subject, jurisdiction, region, kek_version, content_type, format,
    wrapped_jurisdiction, wrapped_kek_version, wrapped_key, blob_size, created_ms,
    findings, actions, log_index
FROM records WHERE subject = ? AND log_index >= 0 ORDER BY created_ms, record_id"""

# A jurisdiction's records: those whose first home it is, and those of two homes whose
# second home it is (the first two bytes of a split wrapped key; the index
# records_by_second_home), each side already in order and cut at the limit.
_SELECT_JURISDICTION_IDS = f"""SELECT record_id FROM (
    SELECT * FROM (
        SELECT record_id, created_ms FROM records
        WHERE jurisdiction = ? AND log_index >= 0 ORDER BY created_ms, record_id LIMIT ?
    ) AS first_home
    UNION ALL
    SELECT * FROM (
        SELECT record_id, created_ms FROM records
        WHERE format = {SPLIT_KEY_FORMAT} AND substr(wrapped_key, 1, 2) = ? AND log_index >= 0
        ORDER BY created_ms, record_id LIMIT ?
    ) AS second_home
) AS homes ORDER BY created_ms, record_id LIMIT ?"""  # noqa: S608 - a constant, placeholders

_SELECT_UNLOGGED_RECORDS = """SELECT
    record_id, subject, jurisdiction, region, kek_version, content_type, format,
    wrapped_jurisdiction, wrapped_kek_version, wrapped_key, blob_size, created_ms,
    findings, actions, log_index
FROM records WHERE log_index < 0 ORDER BY created_ms, record_id LIMIT ?"""

_SELECT_RECORD_PAGE = """SELECT
    record_id, subject, jurisdiction, region, kek_version, content_type, format,
    wrapped_jurisdiction, wrapped_kek_version, wrapped_key, blob_size, created_ms,
    findings, actions, log_index
FROM records WHERE record_id > ? ORDER BY record_id LIMIT ?"""


# Lists of ids are bound in chunks, well below every engine's limit on parameters.
_IN_CHUNK = 500

_SELECT_RECORDS_IN = """SELECT
    record_id, subject, jurisdiction, region, kek_version, content_type, format,
    wrapped_jurisdiction, wrapped_kek_version, wrapped_key, blob_size, created_ms,
    findings, actions, log_index
FROM records WHERE record_id IN ({marks}) AND log_index >= 0"""

_DELETE_UNLOGGED_IN = "DELETE FROM records WHERE record_id IN ({marks}) AND log_index < 0"


def _json_object(text: object, what: str) -> dict[str, Any]:
    # The store wrote it as canonical JSON; orjson reads it at a fifth of the stdlib's
    # cost, and refuses what the stdlib refuses (and NaN, which no label mapping holds).
    value = orjson.loads(str(text))
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a JSON object")
    return value


def _record_from_row(row: Sequence[Any]) -> RecordMeta:
    try:
        return RecordMeta(
            header=RecordHeader(
                record_id=row[0],
                subject=row[1],
                jurisdiction=row[2],
                region=row[3],
                kek_version=row[4],
                content_type=row[5],
                format=row[6],
            ),
            wrapped_key=WrappedKey(jurisdiction=row[7], kek_version=row[8], blob=bytes(row[9])),
            blob_size=row[10],
            created_ms=row[11],
            findings=_json_object(row[12], "findings"),
            actions=_json_object(row[13], "actions"),
            log_index=row[14],
        )
    except (BadRequest, TypeError, ValueError) as exc:
        raise IntegrityError(f"stored record {row[0]!r} does not parse: {exc}") from None


def _nonce_digest(principal_id: str, nonce: str, expires_ms: int, now_ms: int) -> str:
    """The stored form of a nonce, once its arguments are checked.

    Raises:
        BadRequest: malformed argument, or *expires_ms* is not after *now_ms*.
    """
    check_id(principal_id, "principal id")
    if not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_NONCE_CHARS:
        raise BadRequest(f"a nonce is 1..{MAX_NONCE_CHARS} characters")
    _count(expires_ms, "nonce expires_ms")
    _count(now_ms, "now_ms")
    if expires_ms <= now_ms:
        raise BadRequest(f"nonce already expired ({expires_ms} ms is not after {now_ms} ms)")
    # surrogatepass: a nonce decoded from client JSON may hold lone surrogates.
    return hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).hexdigest()


_SELECT_PRINCIPAL = (
    "SELECT principal_id, jurisdiction, role, public_key, subject FROM principals "
    "WHERE principal_id = ?"
)


def _principal_from_row(row: Sequence[Any]) -> Principal:
    try:
        return Principal(
            id=row[0],
            jurisdiction=row[1],
            role=Role(row[2]),
            public_key=bytes(row[3]),
            subject=row[4],
        )
    except (BadRequest, TypeError, ValueError) as exc:
        raise IntegrityError(f"stored principal {row[0]!r} does not parse: {exc}") from None


NONCE_SWEEP_MS = 60_000
"""How often (by the callers' clocks, in ms) a store deletes expired nonces: at most once
in this long per process, not in every spend, whose batches are a request or two."""

# A spent nonce is refused while its row is unexpired; an expired row (not swept yet) is
# taken over by the new spend, so a nonce is free again exactly at its expiry, as if its
# row had been deleted then. The conflict's WHERE is false for an unexpired row: nothing
# changes, the count is 0, and the spend is a replay.
_SPEND_NONCE = """INSERT INTO token_nonces (principal_id, nonce_sha256, expires_ms)
VALUES (?, ?, ?) ON CONFLICT (principal_id, nonce_sha256)
DO UPDATE SET expires_ms = excluded.expires_ms WHERE token_nonces.expires_ms <= ?"""


class _Taken(Exception):
    """A batch's insert found a record id stored already (its transaction rolls back)."""


class SQLMetadataStore(abc.ABC):
    """A :class:`~sovra.store.protocols.MetadataStore` over an SQL engine.

    Subclasses implement :meth:`_transaction` and :meth:`close`, and bring the schema to
    this release's version when opened (:meth:`_init_schema`, or the PostgreSQL pool's
    migrations).
    """

    # The engine's column types, for the migrations.
    _DIALECT: Dialect
    # The clock of the last sweep of expired nonces (None: none yet in this process).
    _nonces_swept_ms: int | None = None

    @abc.abstractmethod
    def _transaction(self, *, write: bool, durable: bool = False) -> AbstractContextManager[Run]:
        """Run statements as one transaction, isolated from every other caller's.

        MUST commit when the block ends normally and roll back when it raises. With
        *durable*, the commit MUST be on stable storage when the block ends (a power cut
        afterwards cannot lose it); without, an engine MAY defer that to a later commit.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection. Calling it twice is harmless."""

    def _put_rows(self, rows: Sequence[tuple[object, ...]], *, durable: bool) -> None:
        """Store checked record rows (``_INSERT_RECORD``'s columns) all or none; raises
        :class:`_Taken` (nothing stored) if any id was stored already. An engine that
        takes arrays does it in one statement."""
        with self._transaction(write=True, durable=durable) as run:
            if run.many(_INSERT_RECORD, rows) != len(rows):
                raise _Taken

    def _set_log_indices(self, run: Run, pairs: Sequence[tuple[str, int]]) -> int:
        """Give each ``(record id, log index)`` its index where it has none yet; how many
        rows changed. An engine that takes arrays does it in one statement."""
        return run.many(
            "UPDATE records SET log_index = ? WHERE record_id = ? AND log_index < 0",
            [(index, record_id) for record_id, index in pairs],
        )

    def _init_schema(self, run: Run) -> None:
        """Create the tables on first use, or bring an older schema to this version
        (:mod:`sovra.store.migrations`); the caller holds the engine's exclusive lock.

        Raises:
            ConfigError: the database holds a schema newer than this sovra knows.
        """
        migrate(run, self._DIALECT, _COMPONENT, METADATA_STEPS)

    # -- records ---------------------------------------------------------------------

    def put_record(self, meta: RecordMeta) -> None:
        """Store a new record's metadata; see the protocol for the contract.

        A row stored with ``log_index`` -1 (the default) is pending: no reader sees it
        until :meth:`set_record_log_index` gives it the index of its ingest entry.

        Raises:
            BadRequest: the record id is already stored, or a field is malformed.
        """
        self.put_records([meta])

    def put_records(self, metas: Sequence[RecordMeta], *, durable: bool = True) -> None:
        """Store new records' metadata in one transaction, all or none; see the protocol.

        Raises:
            BadRequest: a record id is already stored or repeated, or a field is
                malformed (the message names the record); nothing is stored.
        """
        rows = []
        for meta in metas:
            rows.append(_record_row(meta))
            if meta.log_index < PENDING:
                raise BadRequest("a record is stored pending (log index -1) or with its log index")
        ids = [str(row[0]) for row in rows]
        if len(set(ids)) != len(ids):
            twice = next(i for i, n in Counter(ids).items() if n > 1)
            raise BadRequest(f"record {twice} appears twice in one batch")
        if not rows:
            return
        try:
            self._put_rows(rows, durable=durable)
        except _Taken:
            taken = next((i for i in ids if self.record_log_index(i) is not None), ids[0])
            raise BadRequest(f"record {taken} already exists") from None

    def get_record(self, record_id: str) -> RecordMeta:
        """Return the record stored under *record_id*.

        Raises:
            BadRequest: *record_id* is not a valid id.
            NotFound: no such record.
            IntegrityError: the stored row no longer parses.
        """
        check_id(record_id, "record id")
        with self._transaction(write=False) as run:
            row = run(_SELECT_RECORD, (record_id,)).fetchone()
        if row is None:
            raise NotFound(f"no record {record_id}")
        return _record_from_row(row)

    def get_records(self, record_ids: Sequence[str]) -> dict[str, RecordMeta]:
        """The visible records among *record_ids*, by id; a missing or hidden one is absent.

        Raises:
            BadRequest: a record id is not a valid id.
            IntegrityError: a stored row no longer parses.
        """
        ids = list(dict.fromkeys(check_id(r, "record id") for r in record_ids))
        rows = []
        with self._transaction(write=False) as run:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                sql = _SELECT_RECORDS_IN.format(marks=", ".join("?" * len(chunk)))
                rows.extend(run(sql, chunk).fetchall())
        found = {r[0]: r for r in rows}
        return {rid: _record_from_row(found[rid]) for rid in ids if rid in found}

    def set_record_log_index(self, record_id: str, index: int) -> None:
        """Write the record's log index once, making it visible; see the protocol.

        Raises:
            BadRequest: *index* is negative, or the record already has another index.
            NotFound: no such record.
        """
        self.set_record_log_indices([(record_id, index)])

    def set_record_log_indices(self, indices: Sequence[tuple[str, int]]) -> None:
        """:meth:`set_record_log_index` for many records in one transaction, all or none.

        Raises:
            BadRequest: an index is negative, or a record already has another index.
            NotFound: no such record.
        """
        pairs = [
            (check_id(rid, "record id"), _int(index, "log index", 0)) for rid, index in indices
        ]
        if not pairs:
            return
        with self._transaction(write=True) as run:
            # The condition in the UPDATE, not a prior SELECT, decides: two writers racing
            # from different processes cannot both set an index. A quarantined row is
            # completed too: whoever holds the index knows its entry is in the log, and a
            # check that quarantined it only saw the log before the entry arrived.
            if self._set_log_indices(run, pairs) == len(pairs):
                return
            # Some rows had an index already: a retry is harmless, another index is not.
            for record_id, index in pairs:
                row = run("SELECT log_index FROM records WHERE record_id = ?", (record_id,))
                found = row.fetchone()
                if found is None:
                    raise NotFound(f"no record {record_id}")
                if found[0] != index:
                    raise BadRequest(f"record {record_id} is already at log index {found[0]}")

    def unlogged_records(self, limit: int) -> list[RecordMeta]:
        """Up to *limit* rows without a log index (pending or quarantined), oldest first.

        Raises:
            BadRequest: *limit* is below 1.
            IntegrityError: a stored row no longer parses.
        """
        _int(limit, "limit", 1)
        with self._transaction(write=False) as run:
            rows = run(_SELECT_UNLOGGED_RECORDS, (limit,)).fetchall()
        return [_record_from_row(r) for r in rows]

    def quarantine_record(self, record_id: str) -> bool:
        """Mark a pending row quarantined; whether it was pending.

        Raises:
            BadRequest: *record_id* is not a valid id.
        """
        check_id(record_id, "record id")
        with self._transaction(write=True) as run:
            cur = run(
                "UPDATE records SET log_index = ? WHERE record_id = ? AND log_index = ?",
                (QUARANTINED, record_id, PENDING),
            )
            return cur.rowcount == 1

    def delete_unlogged_record(self, record_id: str) -> bool:
        """Remove a row that never got a log index; whether one was removed.

        Raises:
            BadRequest: *record_id* is not a valid id.
        """
        return self.delete_unlogged_records([record_id]) == 1

    def delete_unlogged_records(self, record_ids: Sequence[str]) -> int:
        """Remove the rows among *record_ids* that never got a log index, in one
        transaction; how many were removed. A visible row is never removed.

        Raises:
            BadRequest: a record id is not a valid id.
        """
        ids = list(dict.fromkeys(check_id(r, "record id") for r in record_ids))
        removed = 0
        with self._transaction(write=True) as run:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                sql = _DELETE_UNLOGGED_IN.format(marks=", ".join("?" * len(chunk)))
                removed += run(sql, chunk).rowcount
        return removed

    def record_log_index(self, record_id: str) -> int | None:
        """The row's log index whatever its state (negative: hidden), None if no row.

        Raises:
            BadRequest: *record_id* is not a valid id.
        """
        check_id(record_id, "record id")
        with self._transaction(write=False) as run:
            row = run("SELECT log_index FROM records WHERE record_id = ?", (record_id,))
            found = row.fetchone()
        return None if found is None else int(found[0])

    def records_page(self, after: str, limit: int) -> list[RecordMeta]:
        """Up to *limit* rows, visible or not, with ids after *after*, by record id.

        Raises:
            BadRequest: *limit* is below 1 or *after* is not a string.
            IntegrityError: a stored row no longer parses.
        """
        if not isinstance(after, str):
            raise BadRequest("after must be a record id or the empty string")
        _int(limit, "limit", 1)
        with self._transaction(write=False) as run:
            rows = run(_SELECT_RECORD_PAGE, (after, limit)).fetchall()
        return [_record_from_row(r) for r in rows]

    def records_for_subject(self, commitment: str) -> list[RecordMeta]:
        """Every record about one subject, oldest first.

        Raises:
            BadRequest: *commitment* is not 64 lower-case hex digits.
            IntegrityError: a stored row no longer parses.
        """
        _commitment(commitment)
        with self._transaction(write=False) as run:
            rows = run(_SELECT_SUBJECT_RECORDS, (commitment,)).fetchall()
        return [_record_from_row(r) for r in rows]

    def record_ids_for_jurisdiction(self, jurisdiction: str, limit: int) -> list[str]:
        """Up to *limit* record ids in *jurisdiction*, first or second home, oldest first.

        Raises:
            BadRequest: *jurisdiction* is not a jurisdiction code or *limit* is below 1.
        """
        check_jurisdiction(jurisdiction)
        _int(limit, "limit", 1)
        with self._transaction(write=False) as run:
            rows = run(
                _SELECT_JURISDICTION_IDS,
                (jurisdiction, limit, jurisdiction.encode("ascii"), limit, limit),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def count_records(self) -> int:
        """How many records are visible (their ingest entry is in the log)."""
        with self._transaction(write=False) as run:
            row = run("SELECT COUNT(*) FROM records WHERE log_index >= 0", ()).fetchone()
        return int(row[0])

    # -- grants ----------------------------------------------------------------------

    def put_grant(self, grant_id: str, digest: str, grant_json: bytes) -> None:
        """Store a signed grant; see the protocol for the contract.

        Raises:
            BadRequest: the id or digest is already stored, or an argument is malformed.
            PayloadTooLarge: *grant_json* is over :data:`MAX_GRANT_BYTES`.
        """
        check_id(grant_id, "grant id")
        if not isinstance(digest, str) or not _COMMITMENT.fullmatch(digest):
            raise BadRequest("a grant digest is 64 lower-case hex digits (SHA-256)")
        if not isinstance(grant_json, bytes) or not grant_json:
            raise BadRequest("grant JSON must be non-empty bytes")
        if len(grant_json) > MAX_GRANT_BYTES:
            raise PayloadTooLarge(
                f"grant {grant_id} is {len(grant_json)} bytes, "
                f"over the {MAX_GRANT_BYTES}-byte limit"
            )
        with self._transaction(write=True) as run:
            cur = run(
                "INSERT INTO grants (grant_id, digest, grant_json, revoked_ms) "
                "VALUES (?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                (grant_id, digest, grant_json),
            )
            if cur.rowcount == 1:
                return
            same_id = run("SELECT 1 FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        if same_id is not None:
            raise BadRequest(f"grant {grant_id} already exists")
        raise BadRequest(f"a grant with digest {digest} is already stored under another id")

    def get_grant(self, grant_id: str) -> bytes:
        """Return the stored grant JSON.

        Raises:
            BadRequest: *grant_id* is not a valid id.
            NotFound: no such grant.
        """
        check_id(grant_id, "grant id")
        with self._transaction(write=False) as run:
            row = run("SELECT grant_json FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        if row is None:
            raise NotFound(f"no grant {grant_id}")
        return bytes(row[0])

    def revoke_grant(self, grant_id: str, time_ms: int) -> None:
        """Revoke a grant once, for good.

        Raises:
            BadRequest: malformed argument, or the grant is already revoked.
            NotFound: no such grant.
        """
        check_id(grant_id, "grant id")
        _count(time_ms, "revocation time_ms")
        with self._transaction(write=True) as run:
            cur = run(
                "UPDATE grants SET revoked_ms = ? WHERE grant_id = ? AND revoked_ms IS NULL",
                (time_ms, grant_id),
            )
            if cur.rowcount == 1:
                return
            found = run("SELECT revoked_ms FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        if found is None:
            raise NotFound(f"no grant {grant_id}")
        raise BadRequest(f"grant {grant_id} was already revoked at {found[0]} ms")

    def grant_revoked(self, grant_id: str) -> bool:
        """Whether the grant has been revoked.

        Raises:
            BadRequest: *grant_id* is not a valid id.
            NotFound: no such grant.
        """
        check_id(grant_id, "grant id")
        with self._transaction(write=False) as run:
            row = run("SELECT revoked_ms FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        if row is None:
            raise NotFound(f"no grant {grant_id}")
        return row[0] is not None

    def withdraw_cosignature(self, grant_id: str, jurisdiction: str, time_ms: int) -> None:
        """Record that *jurisdiction* took back its co-signature of a grant, once, for good.

        Raises:
            BadRequest: malformed argument, or this co-signature is already withdrawn.
            NotFound: no such grant.
        """
        check_id(grant_id, "grant id")
        check_jurisdiction(jurisdiction)
        _count(time_ms, "withdrawal time_ms")
        with self._transaction(write=True) as run:
            if run("SELECT 1 FROM grants WHERE grant_id = ?", (grant_id,)).fetchone() is None:
                raise NotFound(f"no grant {grant_id}")
            cur = run(
                "INSERT INTO grant_withdrawals (grant_id, jurisdiction, withdrawn_ms) "
                "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (grant_id, jurisdiction, time_ms),
            )
            if cur.rowcount == 1:
                return
            found = run(
                "SELECT withdrawn_ms FROM grant_withdrawals "
                "WHERE grant_id = ? AND jurisdiction = ?",
                (grant_id, jurisdiction),
            ).fetchone()
        raise BadRequest(
            f"{jurisdiction}'s co-signature of grant {grant_id} was already withdrawn "
            f"at {found[0]} ms"
        )

    def grant_withdrawals(self, grant_id: str) -> frozenset[str]:
        """The jurisdictions that withdrew their co-signature of a grant.

        Raises:
            BadRequest: *grant_id* is not a valid id.
        """
        check_id(grant_id, "grant id")
        with self._transaction(write=False) as run:
            rows = run(
                "SELECT jurisdiction FROM grant_withdrawals WHERE grant_id = ?", (grant_id,)
            ).fetchall()
        return frozenset(str(r[0]) for r in rows)

    # -- principals ------------------------------------------------------------------

    def put_principal(self, principal: Principal) -> None:
        """Create or replace a principal.

        Raises:
            BadRequest: a field is malformed.
        """
        if not isinstance(principal, Principal):
            raise BadRequest(f"expected Principal, got {type(principal).__name__}")
        try:
            role = Role(principal.role)
        except ValueError:
            raise BadRequest(f"unknown role {principal.role!r}") from None
        if not isinstance(principal.public_key, bytes) or len(principal.public_key) != 32:
            raise BadRequest("a principal's public key is a raw 32-byte Ed25519 key")
        row = (
            check_id(principal.id, "principal id"),
            check_jurisdiction(principal.jurisdiction),
            role.value,
            principal.public_key,
            principal.subject,
        )
        with self._transaction(write=True) as run:
            run(
                "INSERT INTO principals (principal_id, jurisdiction, role, public_key, subject) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (principal_id) DO UPDATE SET "
                "jurisdiction = excluded.jurisdiction, role = excluded.role, "
                "public_key = excluded.public_key, subject = excluded.subject",
                row,
            )

    def get_principal(self, principal_id: str) -> Principal:
        """Return a registered principal.

        Raises:
            BadRequest: *principal_id* is not a valid id.
            NotFound: no such principal.
            IntegrityError: the stored row no longer parses.
        """
        check_id(principal_id, "principal id")
        with self._transaction(write=False) as run:
            row = run(
                _SELECT_PRINCIPAL,
                (principal_id,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no principal {principal_id}")
        return _principal_from_row(row)

    def remove_principal(self, principal_id: str) -> None:
        """Remove a principal, so no token of its is accepted any more.

        Raises:
            BadRequest: *principal_id* is not a valid id.
            NotFound: no such principal.
        """
        check_id(principal_id, "principal id")
        with self._transaction(write=True) as run:
            cur = run("DELETE FROM principals WHERE principal_id = ?", (principal_id,))
            if cur.rowcount != 1:
                raise NotFound(f"no principal {principal_id}")

    def list_principals(self) -> list[Principal]:
        """Every principal, ordered by id.

        Raises:
            IntegrityError: a stored row no longer parses.
        """
        with self._transaction(write=False) as run:
            rows = run(
                "SELECT principal_id, jurisdiction, role, public_key, subject FROM principals "
                "ORDER BY principal_id",
                (),
            ).fetchall()
        return [_principal_from_row(r) for r in rows]

    # -- nonces ----------------------------------------------------------------------

    def use_nonce(self, principal_id: str, nonce: str, expires_ms: int, now_ms: int) -> None:
        """Spend a token nonce; see the protocol for the contract.

        Raises:
            Unauthenticated: the nonce was already used and has not expired.
            BadRequest: malformed argument, or *expires_ms* is not after *now_ms*.
        """
        (result,) = self.spend_nonces([(principal_id, nonce, expires_ms, now_ms)])
        if isinstance(result, SovraError):
            raise result

    def _spend(
        self, spent: Sequence[tuple[int, str, str, int, int]], sweep_ms: int | None
    ) -> dict[int, Sequence[Any] | None]:
        """Spend checked, distinct nonces ``(n, principal id, digest, expires_ms, now_ms)``
        after deleting the nonces expired at *sweep_ms* (if given), atomically; for each
        *n* spent, its principal's row (None if there is none), absent if replayed. An
        engine that takes arrays does it in one statement."""
        found: dict[int, Sequence[Any] | None] = {}
        with self._transaction(write=True) as run:
            if sweep_ms is not None:
                run("DELETE FROM token_nonces WHERE expires_ms <= ?", (sweep_ms,))
            for n, principal_id, digest, expires_ms, now_ms in spent:
                if run(_SPEND_NONCE, (principal_id, digest, expires_ms, now_ms)).rowcount == 1:
                    found[n] = run(_SELECT_PRINCIPAL, (principal_id,)).fetchone()
        return found

    def spend_nonces(
        self, nonces: Sequence[tuple[str, str, int, int]]
    ) -> list[Principal | SovraError | None]:
        """Spend token nonces and read their principals, in one transaction; see the
        protocol for the contract.

        Raises:
            IntegrityError: a stored principal no longer parses.
        """
        results: list[Principal | SovraError | None] = []
        spent: list[tuple[int, str, str, int]] = []
        for n, (principal_id, nonce, expires_ms, now_ms) in enumerate(nonces):
            try:
                digest = _nonce_digest(principal_id, nonce, expires_ms, now_ms)
            except BadRequest as exc:
                results.append(exc)
            else:
                results.append(None)
                spent.append((n, principal_id, digest, expires_ms))
        if not spent:
            return results
        # The earliest clock of the batch: nothing unexpired for any of them is forgotten.
        now_ms = min(nonces[n][3] for n, _, _, _ in spent)
        sweep = self._nonces_swept_ms is None or not (
            0 <= now_ms - self._nonces_swept_ms < NONCE_SWEEP_MS
        )
        # A nonce named twice in the batch is a replay the second time.
        first = {(principal_id, digest): n for n, principal_id, digest, _ in reversed(spent)}
        found = self._spend(
            [(n, p, d, e, nonces[n][3]) for n, p, d, e in spent if first[p, d] == n],
            now_ms if sweep else None,
        )
        for n, _, _, _ in spent:
            if n not in found:
                results[n] = Unauthenticated("token replayed")
            else:
                row = found[n]
                results[n] = None if row is None else _principal_from_row(row)
        if sweep:
            self._nonces_swept_ms = now_ms
        return results
