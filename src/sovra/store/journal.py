"""The journal the bulk guards of several worker processes share.

Each worker's :class:`~sovra.policy.BulkGuard` keeps its windows, alerts and review queue
in memory as a replay of this journal; a decision holds the journal (a write transaction)
from the guard's catching up to the appending of its own usage, so every budget is
assessed against the usage of every worker. On one machine the journal is a SQLite file
of its own (``BEGIN IMMEDIATE`` is the lock), not the metadata database: a decision's
short critical section then never waits on, or holds up, the log's sequencing or a
metadata batch, and no code path can hold both locks. Replicas share it in PostgreSQL
(:class:`sovra.store.postgres.PostgresGuardJournal`, an advisory lock), through
connections of its own. Both run the statements of :class:`JournalEvents`.

Events are time-windowed usage (pruned once older than the window) and the last alerts
and review items. They hold subject commitments, keyed template hashes and the numbers of
numbered ids (a walk is found by the numbers): sealed with AES-256-GCM under a key of the
deployment, so the file at rest shows neither, and a changed event stops the guard
(:class:`~sovra.errors.IntegrityError`) instead of changing a budget.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovra._writer_lock import WriterLock, create_private
from sovra.errors import ConfigError, IntegrityError
from sovra.store._sql import Run
from sovra.store.migrations import GUARD_JOURNAL_STEPS, SQLITE, migrate
from sovra.store.sqlite import SQLiteRun

__all__ = ["JournalEvents", "SQLiteGuardJournal", "seal_key"]

JournalEvent = tuple[int, str, float, str]  # as sovra.policy.JournalEvent
_BUSY_TIMEOUT_MS = 30_000
_COMPONENT = "guard_journal"


class _Sealer:
    """Seals each event's fields, bound to its kind and time."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, kind: str, time_s: float, data: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, data.encode(), _bound(kind, time_s))
        return base64.b64encode(nonce + sealed).decode()

    def open(self, seq: int, kind: str, time_s: float, stored: str) -> str:
        try:
            raw = base64.b64decode(stored, validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], _bound(kind, time_s)).decode()
        except (ValueError, InvalidTag):
            raise IntegrityError(
                f"guard journal event {seq} was changed or is not this deployment's: the "
                "bulk budgets cannot be trusted; restore the journal (guard.db, or the "
                "guard_journal table) or empty it (the windows then start empty)"
            ) from None


def seal_key(commitment_secret: bytes) -> bytes:
    """The key a deployment's journal events are sealed under, from its commitment secret."""
    return hashlib.blake2b(commitment_secret, person=b"sovra-guard-seal").digest()[:32]


def _bound(kind: str, time_s: float) -> bytes:
    return kind.encode() + struct.pack(">d", time_s)


class JournalEvents:
    """The journal's statements over one transaction (either engine): what a session
    does, and what a read outside one does."""

    __slots__ = ("_run", "_sealer")

    def __init__(self, run: Run, sealer: _Sealer | None) -> None:
        self._run = run
        self._sealer = sealer

    def read(self, after: int) -> list[JournalEvent]:
        """Events after *after*, in order, opened."""
        rows = self._run(
            "SELECT seq, kind, time_s, data FROM guard_journal WHERE seq > ? ORDER BY seq",
            (after,),
        ).fetchall()
        sealer = self._sealer
        if sealer is None:
            return [(int(q), str(k), float(t), str(d)) for q, k, t, d in rows]
        return [(int(q), str(k), float(t), sealer.open(q, k, t, d)) for q, k, t, d in rows]

    def append(self, events: Sequence[tuple[str, float, str]]) -> int:
        """Append events in order; the last one's sequence number."""
        sealer = self._sealer
        if sealer is not None:
            events = [(k, t, sealer.seal(k, t, d)) for k, t, d in events]
        return self._insert(events)

    def _insert(self, events: Sequence[tuple[str, float, str]]) -> int:
        """Insert sealed events in order; the highest sequence number. An engine that
        takes arrays does it in one statement."""
        self._run.many("INSERT INTO guard_journal (kind, time_s, data) VALUES (?, ?, ?)", events)
        row = self._run("SELECT max(seq) FROM guard_journal", ()).fetchone()
        return int(row[0])

    def prune(self, before_s: float, keep: Mapping[str, int]) -> None:
        """Delete usage older than *before_s*, and all but the last ``keep[kind]`` events
        of each kind in *keep*."""
        kinds = sorted(keep)
        if kinds:
            marks = ",".join("?" * len(kinds))
            self._run(
                f"DELETE FROM guard_journal WHERE time_s < ? AND kind NOT IN ({marks})",  # noqa: S608
                (before_s, *kinds),
            )
        else:
            self._run("DELETE FROM guard_journal WHERE time_s < ?", (before_s,))
        for kind, count in keep.items():
            self._run(
                "DELETE FROM guard_journal WHERE kind = ? AND seq <= (SELECT seq FROM "
                "guard_journal WHERE kind = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (kind, kind, count),
            )


class SQLiteGuardJournal:
    """A :class:`~sovra.store.protocols.GuardJournal` in one SQLite file (WAL), shared by
    the worker processes of one machine."""

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None) -> None:
        """Open (creating, mode 0600) the journal at *path*; with a 32-byte *key*, every
        event's fields are sealed under it.

        Raises:
            ConfigError: the file cannot be created or is not this journal, or it was
                written by a newer sovra.
        """
        self._path = str(path)
        self._sealer = None if key is None else _Sealer(key)
        self._lock = threading.Lock()
        # Every worker holds the journal for its decisions: they queue for its write
        # lock without SQLite's polling (sovra._writer_lock).
        self._writer = WriterLock(self._path)
        try:
            create_private(self._path)
            self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            self._writer.close()
            raise ConfigError(f"cannot open the guard journal {self._path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                migrate(SQLiteRun(self._conn), SQLITE, _COMPONENT, GUARD_JOURNAL_STEPS)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ConfigError(f"the guard journal {self._path} is unusable: {exc}") from exc
        except BaseException:
            self.close()
            raise

    @contextmanager
    def session(self) -> Iterator[JournalEvents]:
        """Hold the journal (its write lock) until the block ends; commit what it appended.

        Raises:
            ConfigError: the database failed (locked past the busy timeout, disk full).
        """
        with self._lock, self._writer.held():
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield JournalEvents(SQLiteRun(conn), self._sealer)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise ConfigError(f"the guard journal {self._path} failed: {exc}") from exc

    def read(self, after: int) -> list[JournalEvent]:
        """Events after *after*, in order.

        Raises:
            ConfigError: the database failed.
        """
        with self._lock:
            try:
                return JournalEvents(SQLiteRun(self._conn), self._sealer).read(after)
            except sqlite3.OperationalError as exc:
                raise ConfigError(f"the guard journal {self._path} failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection. Calling it twice is harmless."""
        with self._lock:
            self._conn.close()
            self._writer.close()
