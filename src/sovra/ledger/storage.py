"""Where the transparency log keeps its entries, leaf hashes, tags and checkpoints.

:class:`LogStorage` is the contract; :class:`MemoryLogStorage` (tests, ephemeral
deployments) and :class:`SQLiteLogStorage` (the embedded default) implement it. Both
run the same input checks before touching anything, so a refused batch leaves the
stored log exactly as it was.

Tags are opaque strings (the gateway passes subject commitments); each tag is indexed,
so "every entry about subject X" is a lookup, not a scan of the log.

:class:`CosignatureStore` is a second, small contract the same backends implement:
witness cosignature lines of published checkpoints (see :mod:`sovra.ledger.cosigning`).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sovra._writer_lock import WriterLock
from sovra.errors import BadRequest, ConfigError, IntegrityError
from sovra.model import MAX_ENTRY_BYTES
from sovra_verify._merkle import HASH_SIZE, leaf_hash

__all__ = [
    "MAX_BATCH",
    "MAX_ENTRY_BYTES",
    "MAX_TAGS_PER_ENTRY",
    "MAX_TAG_CHARS",
    "SYNC_MODES",
    "CatchingUp",
    "CosignatureStore",
    "LogStorage",
    "MemoryLogStorage",
    "RowMarking",
    "SQLiteLogStorage",
    "check_tag",
]

MAX_TAG_CHARS = 256
MAX_TAGS_PER_ENTRY = 1024
MAX_BATCH = 10_000
SYNC_MODES = ("full", "checkpoint")
_MAX_CHECKPOINT_CHARS = 1 << 20
# find() scans the recent tags; merging past this many keeps that scan to a few ms,
# and merging rarely keeps the sorted index's page writes few.
_MAX_RECENT_TAGS = 65_536
_EPOCH_BITS = 16
_MAX_COSIGNATURES = 100
_MAX_VKEY_CHARS = 400
_MAX_LINE_CHARS = 1024

BatchItem = tuple[bytes, bytes, Sequence[str]]
# (witness vkey, cosignature timestamp in POSIX seconds, the signature line)
CosignatureRow = tuple[str, int, str]


def check_tag(tag: object) -> str:
    """Return *tag* if it is a usable tag: 1..256 printable characters.

    Raises:
        BadRequest: it is not.
    """
    if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_CHARS:
        raise BadRequest(f"a tag must be a string of 1..{MAX_TAG_CHARS} characters")
    if not tag.isprintable():
        raise BadRequest("a tag must hold printable characters only")
    return tag


def _check_batch(items: Sequence[BatchItem]) -> list[tuple[bytes, bytes, tuple[str, ...]]]:
    """Validate a whole batch before any of it is written; return a normalised copy."""
    if len(items) > MAX_BATCH:
        raise BadRequest(f"a batch holds at most {MAX_BATCH} entries, got {len(items)}")
    out = []
    sha256 = hashlib.sha256
    for n, item in enumerate(items):
        # Fast path for what the log itself passes: bytes, at most one tag.
        if type(item) is tuple and len(item) == 3:
            entry, leaf, tags = item
            if (
                type(entry) is bytes
                and type(tags) is tuple
                and 0 < len(entry) <= MAX_ENTRY_BYTES
                and sha256(b"\x00" + entry).digest() == leaf
                and (
                    not tags
                    or (
                        len(tags) == 1
                        and type(tags[0]) is str
                        and 0 < len(tags[0]) <= MAX_TAG_CHARS
                        and tags[0].isprintable()
                    )
                )
            ):
                out.append((entry, leaf, tuple(tags)))
                continue
        if not isinstance(item, tuple) or len(item) != 3:
            raise BadRequest(f"batch item {n} must be (entry, leaf hash, tags)")
        entry, leaf, tags = item
        if not isinstance(entry, bytes | bytearray) or not entry:
            raise BadRequest(f"entry {n} must be non-empty bytes")
        if len(entry) > MAX_ENTRY_BYTES:
            raise BadRequest(f"entry {n} is {len(entry)} bytes, over {MAX_ENTRY_BYTES}")
        if not isinstance(leaf, bytes | bytearray) or len(leaf) != HASH_SIZE:
            raise BadRequest(f"leaf hash of entry {n} must be {HASH_SIZE} bytes")
        if leaf_hash(bytes(entry)) != leaf:
            raise BadRequest(f"leaf hash of entry {n} is not SHA-256(0x00 || entry)")
        if isinstance(tags, str) or not isinstance(tags, Sequence):
            raise BadRequest(f"tags of entry {n} must be a sequence of strings")
        if len(tags) > MAX_TAGS_PER_ENTRY:
            raise BadRequest(f"entry {n} has {len(tags)} tags, over {MAX_TAGS_PER_ENTRY}")
        # Duplicates collapse: a tag either marks an entry or it does not.
        unique = tuple(dict.fromkeys(check_tag(t) for t in tags))
        out.append((bytes(entry), bytes(leaf), unique))
    return out


def _check_range(start: int, end: int, size: int) -> None:
    if not 0 <= start <= end <= size:
        raise BadRequest(f"range [{start}, {end}) is not inside the log of size {size}")


def _check_checkpoint(size: int, note: str, log_size: int, latest: int | None) -> None:
    if not isinstance(note, str) or not 0 < len(note) <= _MAX_CHECKPOINT_CHARS:
        raise BadRequest("a checkpoint note must be non-empty text of bounded size")
    if not 0 <= size <= log_size:
        raise BadRequest(f"checkpoint size {size} is beyond the log size {log_size}")
    if latest is not None and size < latest:
        raise BadRequest(f"checkpoint size {size} is below the latest one, {latest}")


@runtime_checkable
class LogStorage(Protocol):
    """Durable home of one log. Implementations MUST be safe to call from many threads.

    Indices are assigned by the storage, densely from 0, inside the same atomic step
    that stores the batch: an index MUST NOT ever be handed out twice, and a batch
    MUST be stored entirely or not at all. A refused call MUST leave the stored data
    unchanged.
    """

    def append_batch(self, items: Sequence[BatchItem]) -> list[int]:
        """Store ``(entry, leaf hash, tags)`` items in order; return their indices.

        Raises:
            BadRequest: a malformed item (the whole batch is refused).
        """
        ...

    def size(self) -> int:
        """Number of stored entries."""
        ...

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``.

        Raises:
            BadRequest: the range is not inside the log.
            IntegrityError: stored rows are missing.
        """
        ...

    def read_leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``[start, end)``.

        Raises:
            BadRequest: the range is not inside the log.
            IntegrityError: stored rows are missing.
        """
        ...

    def find(self, tag: str) -> list[int]:
        """Indices of the entries carrying *tag*, ascending.

        Raises:
            BadRequest: *tag* is not a valid tag.
        """
        ...

    def add_checkpoint(self, size: int, note: str, *, durable: bool = True) -> None:
        """Keep a published checkpoint note for tree size *size*.

        With ``durable=False`` the caller promises that every entry the note covers is
        already durable, so losing the note to a power failure loses nothing: the log
        signs the same note again for the same size (Ed25519 is deterministic). Such a
        note MAY then be stored without a sync of its own; it MUST still be stored
        atomically and in order.

        Raises:
            BadRequest: *size* beyond the log or below the latest checkpoint's.
        """
        ...

    def checkpoints(self) -> list[str]:
        """Every stored checkpoint note, oldest first."""
        ...

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint note, if any."""
        ...

    def close(self) -> None:
        """Release resources; the storage is unusable afterwards."""
        ...


@runtime_checkable
class CatchingUp(Protocol):
    """A :class:`LogStorage` shared by several writers (worker processes, replicas) that
    tells a writer, with each batch it stores, what the others stored just before it."""

    def append_batch_after(
        self, items: Sequence[BatchItem], known: int
    ) -> tuple[list[int], list[bytes]]:
        """:meth:`LogStorage.append_batch`, and the leaf hashes of ``[known, first)``:
        the entries other writers stored after the caller's *known* size and before the
        batch's first index.

        Raises:
            BadRequest: a malformed or empty batch, or a negative *known*; nothing is
                stored.
            IntegrityError: *known* is beyond the entries stored before the batch (the
                caller's tree is ahead of the storage; the batch is stored).
        """
        ...


@runtime_checkable
class RowMarking(Protocol):
    """A storage whose database also holds rows the log vouches for (the embedded default:
    the metadata store's records in the same SQLite file), which it can mark with their
    entries' indices in the very transaction that stores the entries."""

    @property
    def marks_rows(self) -> bool:
        """Whether :meth:`append_marked` may be called (a marking statement is set)."""
        ...

    def append_marked(
        self, items: Sequence[BatchItem], marks: Sequence[tuple[int, str]]
    ) -> list[int]:
        """:meth:`LogStorage.append_batch`, and in the same transaction, for each
        ``(offset, mark)``, the row named *mark* given the index of the item at *offset*.

        Raises:
            BadRequest: as :meth:`LogStorage.append_batch`.
            IntegrityError: a marked row is not there to mark; nothing is stored.
        """
        ...


@runtime_checkable
class CosignatureStore(Protocol):
    """Witness cosignatures of the checkpoints a log published, by tree size.

    The caller MUST have verified every line against the published checkpoint of that
    size: the store keeps lines, it does not check signatures. Per checkpoint size and
    witness one line is kept, the one with the newest timestamp. A refused call MUST
    leave the stored cosignatures unchanged.
    """

    def checkpoint_at(self, size: int) -> str | None:
        """The published checkpoint note for tree size *size*, if there is one."""
        ...

    def add_cosignatures(self, size: int, rows: Sequence[CosignatureRow]) -> None:
        """Keep ``(witness vkey, timestamp, line)`` rows for the checkpoint of *size*, atomically.

        Raises:
            BadRequest: no checkpoint of that size was published, or a malformed row.
        """
        ...

    def cosignatures(self, size: int) -> list[tuple[str, str]]:
        """``(witness vkey, line)`` of the checkpoint of *size*, ordered by vkey."""
        ...

    def latest_cosigned_size(self, witnesses: Sequence[str], quorum: int) -> int | None:
        """The largest checkpoint size cosigned by at least *quorum* of *witnesses*."""
        ...


def _check_cosignatures(rows: Sequence[CosignatureRow]) -> dict[str, tuple[int, str]]:
    """Validate rows before any is stored; the newest line per witness wins."""
    if not rows or len(rows) > _MAX_COSIGNATURES:
        raise BadRequest(f"store 1..{_MAX_COSIGNATURES} cosignatures at a time")
    out: dict[str, tuple[int, str]] = {}
    for row in rows:
        if not isinstance(row, tuple) or len(row) != 3:
            raise BadRequest("a cosignature row is (witness vkey, timestamp, line)")
        witness, timestamp, line = row
        if not isinstance(witness, str) or not 0 < len(witness) <= _MAX_VKEY_CHARS:
            raise BadRequest("a witness vkey must be a short non-empty string")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise BadRequest("a cosignature timestamp must be an integer")
        if not 0 <= timestamp < 1 << 63:
            raise BadRequest("a cosignature timestamp must be in 0..2**63-1")
        if not isinstance(line, str) or not 0 < len(line) <= _MAX_LINE_CHARS or "\n" in line:
            raise BadRequest("a cosignature line must be one short line of text")
        held = out.get(witness)
        if held is None or timestamp > held[0]:
            out[witness] = (timestamp, line)
    return out


def _check_quorum(witnesses: Sequence[str], quorum: int) -> list[str]:
    unique = sorted(set(witnesses))
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 0 < quorum <= len(unique):
        raise BadRequest(f"a quorum of {quorum!r} out of {len(unique)} witnesses is not possible")
    return unique


class MemoryLogStorage:
    """A :class:`LogStorage` in process memory; gone when the process ends."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._entries: list[bytes] = []
        self._leaves: list[bytes] = []
        self._tags: dict[str, list[int]] = {}
        self._checkpoints: list[tuple[int, str]] = []
        self._cosignatures: dict[int, dict[str, tuple[int, str]]] = {}

    def append_batch(self, items: Sequence[BatchItem]) -> list[int]:
        """See :meth:`LogStorage.append_batch`."""
        batch = _check_batch(items)
        with self._lock:
            first = len(self._entries)
            for offset, (entry, leaf, tags) in enumerate(batch):
                self._entries.append(entry)
                self._leaves.append(leaf)
                for tag in tags:
                    self._tags.setdefault(tag, []).append(first + offset)
            return list(range(first, first + len(batch)))

    def size(self) -> int:
        """See :meth:`LogStorage.size`."""
        with self._lock:
            return len(self._entries)

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """See :meth:`LogStorage.read_entries`."""
        with self._lock:
            _check_range(start, end, len(self._entries))
            return self._entries[start:end]

    def read_leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """See :meth:`LogStorage.read_leaf_hashes`."""
        with self._lock:
            _check_range(start, end, len(self._leaves))
            return self._leaves[start:end]

    def find(self, tag: str) -> list[int]:
        """See :meth:`LogStorage.find`."""
        check_tag(tag)
        with self._lock:
            return list(self._tags.get(tag, ()))

    def add_checkpoint(self, size: int, note: str, *, durable: bool = True) -> None:
        """See :meth:`LogStorage.add_checkpoint`."""
        with self._lock:
            latest = self._checkpoints[-1][0] if self._checkpoints else None
            _check_checkpoint(size, note, len(self._entries), latest)
            self._checkpoints.append((size, note))

    def checkpoints(self) -> list[str]:
        """See :meth:`LogStorage.checkpoints`."""
        with self._lock:
            return [note for _, note in self._checkpoints]

    def latest_checkpoint(self) -> str | None:
        """See :meth:`LogStorage.latest_checkpoint`."""
        with self._lock:
            return self._checkpoints[-1][1] if self._checkpoints else None

    def checkpoint_at(self, size: int) -> str | None:
        """See :meth:`CosignatureStore.checkpoint_at`."""
        with self._lock:
            return next((n for s, n in reversed(self._checkpoints) if s == size), None)

    def add_cosignatures(self, size: int, rows: Sequence[CosignatureRow]) -> None:
        """See :meth:`CosignatureStore.add_cosignatures`."""
        newest = _check_cosignatures(rows)
        with self._lock:
            if not any(s == size for s, _ in self._checkpoints):
                raise BadRequest(f"no checkpoint of size {size} was published")
            held = self._cosignatures.setdefault(size, {})
            for witness, (timestamp, line) in newest.items():
                if witness not in held or timestamp > held[witness][0]:
                    held[witness] = (timestamp, line)

    def cosignatures(self, size: int) -> list[tuple[str, str]]:
        """See :meth:`CosignatureStore.cosignatures`."""
        with self._lock:
            held = self._cosignatures.get(size, {})
            return [(w, line) for w, (_, line) in sorted(held.items())]

    def latest_cosigned_size(self, witnesses: Sequence[str], quorum: int) -> int | None:
        """See :meth:`CosignatureStore.latest_cosigned_size`."""
        wanted = set(_check_quorum(witnesses, quorum))
        with self._lock:
            sizes = [
                s for s, held in self._cosignatures.items() if len(wanted & set(held)) >= quorum
            ]
        return max(sizes, default=None)

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    next_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_entries (
    idx INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE TABLE IF NOT EXISTS log_tags (
    tag TEXT NOT NULL,
    idx INTEGER NOT NULL REFERENCES log_entries (idx),
    PRIMARY KEY (tag, idx)
) WITHOUT ROWID;
-- Tags of recent batches, appended in index order (no random B-tree inserts on the
-- hot path) and merged, sorted, into log_tags_by_epoch in one go: see _merge_tags.
CREATE TABLE IF NOT EXISTS log_tags_recent (
    tag TEXT NOT NULL,
    idx INTEGER NOT NULL
);
-- The tag index, keyed by epoch (idx >> 16) first: a merge lands in the newest one or
-- two epochs instead of rewriting pages across the whole index, and a lookup probes
-- each epoch once. log_tags holds rows indexed before epochs existed.
CREATE TABLE IF NOT EXISTS log_tags_by_epoch (
    epoch INTEGER NOT NULL,
    tag TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (epoch, tag, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    size INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_checkpoints_by_size ON log_checkpoints (size);
-- Witness cosignatures, one line per checkpoint size and witness (the newest).
CREATE TABLE IF NOT EXISTS log_cosignatures (
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (size, witness)
) WITHOUT ROWID;
INSERT OR IGNORE INTO log_state (id, schema_version, next_index) VALUES (1, 1, 0);
"""


class SQLiteLogStorage:
    """A :class:`LogStorage` in a SQLite file (WAL mode), in tables prefixed ``log_``.

    It opens its own connection, so it can share the deployment's database file with
    the metadata store. Indices come from a counter row that only ever grows, read and
    advanced in the same write transaction as the rows it numbers: a crash or a
    refused batch leaves no gap and no index handed out twice, and a deleted row shows
    up as an :class:`~sovra.errors.IntegrityError` rather than a reused index.
    """

    def __init__(self, path: str | Path, *, sync: str = "full") -> None:
        """Open (creating if needed) the log tables in the database at *path*.

        Args:
            path: the SQLite file.
            sync: ``"full"`` fsyncs every committed batch, so a promise survives power
                loss; ``"checkpoint"`` fsyncs when a checkpoint is stored, so promises
                survive a killed process at once and power loss from the next
                checkpoint on (see docs/adr/0006-batched-integration-and-durability.md).

        Raises:
            ConfigError: the file cannot be opened, is not a database, holds a log
                schema of another version, or *sync* is not a known mode.
        """
        if sync not in SYNC_MODES:
            raise ConfigError(f"log sync mode must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        self._sync = sync
        self._mark: str | None = None
        self._lock = threading.Lock()
        # Worker processes and the metadata store in the same file queue for its write
        # lock without SQLite's polling (sovra._writer_lock).
        self._writer = WriterLock(str(path))
        # Unknown until counted; forces an early merge after a restart, which is cheap.
        self._recent_tags = _MAX_RECENT_TAGS
        try:
            # Autocommit mode: writes open BEGIN IMMEDIATE themselves, so the index
            # counter is read under the database's write lock.
            self._db = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the log database {path}: {exc}") from None
        try:
            self._prepare(str(path))
        except BaseException:
            self._db.close()
            self._writer.close()
            raise

    def _prepare(self, path: str) -> None:
        with _guard(self._db, write=False):
            self._db.execute("PRAGMA journal_mode=WAL")
            # A logged decision gates a key release; by default it must survive power
            # loss. In WAL mode NORMAL still writes each commit to the WAL before
            # returning (a killed process loses nothing) and fsyncs on checkpoints.
            self._db.execute(f"PRAGMA synchronous={'FULL' if self._sync == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys=ON")
            # 8 MiB of pages: tags reach the sorted index in merges ordered like it, so
            # its hot pages are few; a larger cache only fills with pages written once
            # (64 MiB grew every worker's memory by as much, and was no faster).
            self._db.execute("PRAGMA cache_size=-8192")
            # Fewer, larger WAL checkpoints: each one copies pages and fsyncs twice.
            self._db.execute("PRAGMA wal_autocheckpoint=8192")
        with self._writer.held(), _guard(self._db, write=True):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
        with _guard(self._db, write=False):
            row = self._db.execute("SELECT schema_version FROM log_state WHERE id = 1").fetchone()
        if row is None or row[0] != 1:
            raise ConfigError(f"log database {path} has an unknown schema version")

    def _next_index(self) -> int:
        row = self._db.execute("SELECT next_index FROM log_state WHERE id = 1").fetchone()
        return int(row[0])

    def mark_rows_with(self, statement: str | None) -> None:
        """Let :meth:`append_marked` run *statement* with ``(index, mark)`` for each marked
        entry, in the transaction that stores the batch (None: mark no rows). The statement
        MUST change exactly one row of this database per mark (an ``UPDATE``); fewer
        refuse the batch."""
        self._mark = statement

    @property
    def marks_rows(self) -> bool:
        """See :meth:`RowMarking.marks_rows`."""
        return self._mark is not None

    def append_batch(self, items: Sequence[BatchItem]) -> list[int]:
        """See :meth:`LogStorage.append_batch`."""
        return self.append_marked(items, ())

    def append_marked(
        self, items: Sequence[BatchItem], marks: Sequence[tuple[int, str]]
    ) -> list[int]:
        """See :meth:`RowMarking.append_marked`.

        Raises:
            ConfigError: marks without a marking statement (:meth:`mark_rows_with`).
        """
        batch = _check_batch(items)
        if not batch:
            return []
        if marks and self._mark is None:
            raise ConfigError("this log storage marks no rows: no statement was set")
        if any(not 0 <= off < len(batch) for off, _ in marks):
            raise BadRequest(f"a mark names an item outside the batch of {len(batch)}")
        with self._lock, self._writer.held(), _guard(self._db, write=True):
            first = self._next_index()
            self._db.executemany(
                "INSERT INTO log_entries (idx, entry, leaf_hash) VALUES (?, ?, ?)",
                [(first + off, entry, leaf) for off, (entry, leaf, _) in enumerate(batch)],
            )
            if marks:
                assert self._mark is not None  # checked above
                changed = self._db.executemany(
                    self._mark, [(first + off, mark) for off, mark in marks]
                ).rowcount
                if changed != len(marks):
                    raise IntegrityError(
                        f"{len(marks) - changed} of {len(marks)} rows to mark with this "
                        "batch's indices are not there; nothing of the batch is stored"
                    )
            self._db.executemany(
                "INSERT INTO log_tags_recent (tag, idx) VALUES (?, ?)",
                [(tag, first + off) for off, (_, _, tags) in enumerate(batch) for tag in tags],
            )
            self._db.execute(
                "UPDATE log_state SET next_index = ? WHERE id = 1", (first + len(batch),)
            )
            self._recent_tags += sum(len(tags) for _, _, tags in batch)
            if self._recent_tags > _MAX_RECENT_TAGS:
                self._merge_tags()
        return list(range(first, first + len(batch)))

    def size(self) -> int:
        """See :meth:`LogStorage.size`."""
        with self._lock, _guard(self._db, write=False):
            return self._next_index()

    def _read(self, query: str, start: int, end: int) -> list[bytes]:
        with self._lock, _guard(self._db, write=False):
            _check_range(start, end, self._next_index())
            rows = self._db.execute(query, (start, end)).fetchall()
        if len(rows) != end - start or any(idx != start + n for n, (idx, _) in enumerate(rows)):
            present = {idx for idx, _ in rows}
            missing = next(i for i in range(start, end) if i not in present)
            raise IntegrityError(f"log entry {missing} is missing from storage")
        return [bytes(value) for _, value in rows]

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """See :meth:`LogStorage.read_entries`."""
        return self._read(
            "SELECT idx, entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            start,
            end,
        )

    def read_leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """See :meth:`LogStorage.read_leaf_hashes`."""
        return self._read(
            "SELECT idx, leaf_hash FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            start,
            end,
        )

    def find(self, tag: str) -> list[int]:
        """See :meth:`LogStorage.find`."""
        check_tag(tag)
        with self._lock, _guard(self._db, write=False):
            last_epoch = max(self._next_index() - 1, 0) >> _EPOCH_BITS
            rows = self._db.execute(
                "WITH RECURSIVE epochs(e) AS (SELECT 0 UNION ALL "
                "SELECT e + 1 FROM epochs WHERE e < ?) "
                "SELECT idx FROM log_tags WHERE tag = ? UNION "
                "SELECT idx FROM log_tags_by_epoch "
                "WHERE epoch IN (SELECT e FROM epochs) AND tag = ? UNION "
                "SELECT idx FROM log_tags_recent WHERE tag = ? ORDER BY idx",
                (last_epoch, tag, tag, tag),
            ).fetchall()
        return [int(idx) for (idx,) in rows]

    def add_checkpoint(self, size: int, note: str, *, durable: bool = True) -> None:
        """See :meth:`LogStorage.add_checkpoint`.

        In ``sync="checkpoint"`` mode every checkpoint is synced whatever *durable* says:
        it is what makes the batches before it durable.
        """
        mode = "FULL" if durable or self._sync != "full" else "NORMAL"
        with self._lock, self._writer.held(), self._synchronous(mode), _guard(self._db, write=True):
            row = self._db.execute(
                "SELECT size FROM log_checkpoints ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            _check_checkpoint(size, note, self._next_index(), None if row is None else row[0])
            self._db.execute("INSERT INTO log_checkpoints (size, note) VALUES (?, ?)", (size, note))

    def _merge_tags(self) -> None:
        """Move recent tags into the sorted index (inside the caller's transaction)."""
        self._db.execute(
            "INSERT OR IGNORE INTO log_tags_by_epoch (epoch, tag, idx) "
            "SELECT idx >> ? AS epoch, tag, idx FROM log_tags_recent "
            "ORDER BY epoch, tag, idx",
            (_EPOCH_BITS,),
        )
        self._db.execute("DELETE FROM log_tags_recent")
        self._recent_tags = 0

    @contextlib.contextmanager
    def _synchronous(self, mode: str) -> Iterator[None]:
        """Commit the enclosed write under ``PRAGMA synchronous=`` *mode*.

        ``FULL`` syncs the WAL at this commit, which also makes every batch committed
        before it durable (the WAL is one sequential file); ``NORMAL`` does not, and
        the next synced commit covers this one.
        """
        default = "FULL" if self._sync == "full" else "NORMAL"
        if mode == default:
            yield
            return
        with _guard(self._db, write=False):
            self._db.execute(f"PRAGMA synchronous={mode}")
        try:
            yield
        finally:
            with _guard(self._db, write=False):
                self._db.execute(f"PRAGMA synchronous={default}")

    def checkpoints(self) -> list[str]:
        """See :meth:`LogStorage.checkpoints`."""
        with self._lock, _guard(self._db, write=False):
            rows = self._db.execute("SELECT note FROM log_checkpoints ORDER BY seq").fetchall()
        return [str(note) for (note,) in rows]

    def latest_checkpoint(self) -> str | None:
        """See :meth:`LogStorage.latest_checkpoint`."""
        with self._lock, _guard(self._db, write=False):
            row = self._db.execute(
                "SELECT note FROM log_checkpoints ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else str(row[0])

    def checkpoint_at(self, size: int) -> str | None:
        """See :meth:`CosignatureStore.checkpoint_at`."""
        with self._lock, _guard(self._db, write=False):
            row = self._db.execute(
                "SELECT note FROM log_checkpoints WHERE size = ? ORDER BY seq DESC LIMIT 1",
                (size,),
            ).fetchone()
        return None if row is None else str(row[0])

    def add_cosignatures(self, size: int, rows: Sequence[CosignatureRow]) -> None:
        """See :meth:`CosignatureStore.add_cosignatures`."""
        newest = _check_cosignatures(rows)
        with self._lock, self._writer.held(), _guard(self._db, write=True):
            if (
                self._db.execute(
                    "SELECT 1 FROM log_checkpoints WHERE size = ? LIMIT 1", (size,)
                ).fetchone()
                is None
            ):
                raise BadRequest(f"no checkpoint of size {size} was published")
            self._db.executemany(
                "INSERT INTO log_cosignatures (size, witness, timestamp, line) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (size, witness) DO UPDATE SET "
                "timestamp = excluded.timestamp, line = excluded.line "
                "WHERE excluded.timestamp > log_cosignatures.timestamp",
                [(size, w, ts, line) for w, (ts, line) in newest.items()],
            )

    def cosignatures(self, size: int) -> list[tuple[str, str]]:
        """See :meth:`CosignatureStore.cosignatures`."""
        with self._lock, _guard(self._db, write=False):
            rows = self._db.execute(
                "SELECT witness, line FROM log_cosignatures WHERE size = ? ORDER BY witness",
                (size,),
            ).fetchall()
        return [(str(w), str(line)) for w, line in rows]

    def latest_cosigned_size(self, witnesses: Sequence[str], quorum: int) -> int | None:
        """See :meth:`CosignatureStore.latest_cosigned_size`."""
        wanted = _check_quorum(witnesses, quorum)
        marks = ", ".join("?" * len(wanted))
        with self._lock, _guard(self._db, write=False):
            row = self._db.execute(
                "SELECT size FROM log_cosignatures "  # noqa: S608 - only placeholders
                f"WHERE witness IN ({marks}) GROUP BY size HAVING COUNT(*) >= ? "
                "ORDER BY size DESC LIMIT 1",
                (*wanted, quorum),
            ).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
            self._writer.close()


@contextlib.contextmanager
def _guard(db: sqlite3.Connection, *, write: bool) -> Iterator[None]:
    """Run a block (in ``BEGIN IMMEDIATE`` ... ``COMMIT`` if *write*), mapping DB errors.

    A write block that raises is rolled back, so nothing of a refused batch remains.
    """
    try:
        if write:
            db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if write:
                db.execute("ROLLBACK")
            raise
        if write:
            db.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        # Only a tampered counter can make an insert collide with an existing index.
        raise IntegrityError(f"log database refused a write: {exc}") from None
    except sqlite3.Error as exc:
        raise ConfigError(f"log database error: {exc}") from None


if TYPE_CHECKING:
    # Both backends satisfy the protocol; mypy checks these assignments.
    _memory: type[LogStorage] = MemoryLogStorage
    _sqlite: type[LogStorage] = SQLiteLogStorage
    _memory_cosignatures: type[CosignatureStore] = MemoryLogStorage
    _sqlite_cosignatures: type[CosignatureStore] = SQLiteLogStorage
