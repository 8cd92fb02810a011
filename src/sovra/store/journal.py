"""The journal the bulk guards of several worker processes share (one SQLite file).

Each worker's :class:`~sovra.policy.BulkGuard` keeps its windows, alerts and review queue
in memory as a replay of this journal; a decision holds the journal (a write transaction,
``BEGIN IMMEDIATE``) from the guard's catching up to the appending of its own usage, so
every budget is assessed against the usage of every worker. The file is its own, not the
metadata database: a decision's short critical section then never waits on, or holds up,
the log's sequencing or a metadata batch, and no code path can hold both locks.

Events are time-windowed usage (pruned once older than the window) and the last alerts
and review items. They hold subject commitments, keyed template hashes and the numbers of
numbered ids (a walk is found by the numbers): sealed with AES-256-GCM under a key of the
deployment, so the file at rest shows neither, and a changed event stops the guard
(:class:`~sovra.errors.IntegrityError`) instead of changing a budget.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovra.errors import ConfigError, IntegrityError

__all__ = ["SQLiteGuardJournal"]

JournalEvent = tuple[int, str, float, str]  # as sovra.policy.JournalEvent
_BUSY_TIMEOUT_MS = 30_000
_SCHEMA = """CREATE TABLE IF NOT EXISTS guard_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    time_s REAL NOT NULL,
    data TEXT NOT NULL
) STRICT"""


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
                "bulk budgets cannot be trusted; restore guard.db or remove it (the "
                "windows then start empty)"
            ) from None


def _bound(kind: str, time_s: float) -> bytes:
    return kind.encode() + struct.pack(">d", time_s)


class _Session:
    def __init__(self, conn: sqlite3.Connection, sealer: _Sealer | None) -> None:
        self._conn = conn
        self._sealer = sealer

    def read(self, after: int) -> list[JournalEvent]:
        return _read(self._conn, after, self._sealer)

    def append(self, events: Sequence[tuple[str, float, str]]) -> int:
        sealer = self._sealer
        if sealer is not None:
            events = [(k, t, sealer.seal(k, t, d)) for k, t, d in events]
        self._conn.executemany(
            "INSERT INTO guard_journal (kind, time_s, data) VALUES (?, ?, ?)", events
        )
        row = self._conn.execute("SELECT max(seq) FROM guard_journal").fetchone()
        return int(row[0])

    def prune(self, before_s: float, keep: Mapping[str, int]) -> None:
        kinds = sorted(keep)
        marks = ",".join("?" * len(kinds))
        self._conn.execute(
            f"DELETE FROM guard_journal WHERE time_s < ? AND kind NOT IN ({marks})",  # noqa: S608
            (before_s, *kinds),
        )
        for kind, count in keep.items():
            self._conn.execute(
                "DELETE FROM guard_journal WHERE kind = ? AND seq <= (SELECT seq FROM "
                "guard_journal WHERE kind = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (kind, kind, count),
            )


def _read(conn: sqlite3.Connection, after: int, sealer: _Sealer | None) -> list[JournalEvent]:
    rows = conn.execute(
        "SELECT seq, kind, time_s, data FROM guard_journal WHERE seq > ? ORDER BY seq", (after,)
    ).fetchall()
    if sealer is None:
        return [(int(q), str(k), float(t), str(d)) for q, k, t, d in rows]
    return [(int(q), str(k), float(t), sealer.open(q, k, t, d)) for q, k, t, d in rows]


class SQLiteGuardJournal:
    """A :class:`~sovra.policy.GuardJournal` in one SQLite file (WAL), shared by processes."""

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None) -> None:
        """Open (creating, mode 0600) the journal at *path*; with a 32-byte *key*, every
        event's fields are sealed under it.

        Raises:
            ConfigError: the file cannot be created or is not this journal.
        """
        self._path = str(path)
        self._sealer = None if key is None else _Sealer(key)
        self._lock = threading.Lock()
        try:
            os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
            self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the guard journal {self._path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._conn.execute(_SCHEMA)
            # The first journal's table held its events unsealed: not read, not kept.
            self._conn.execute("DROP TABLE IF EXISTS guard_events")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(f"the guard journal {self._path} is unusable: {exc}") from exc

    @contextmanager
    def session(self) -> Iterator[_Session]:
        """Hold the journal (its write lock) until the block ends; commit what it appended.

        Raises:
            ConfigError: the database failed (locked past the busy timeout, disk full).
        """
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _Session(conn, self._sealer)
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
                return _read(self._conn, after, self._sealer)
            except sqlite3.OperationalError as exc:
                raise ConfigError(f"the guard journal {self._path} failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection. Calling it twice is harmless."""
        with self._lock:
            self._conn.close()
