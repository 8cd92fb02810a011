"""The default metadata store: one SQLite file in WAL mode.

Threads share ONE connection behind a lock. SQLite admits one writer at a time per file
anyway, so a connection per thread would only trade the lock for ``SQLITE_BUSY`` retries
on every concurrent write, and leave connections open after their threads end. WAL lets
other processes (the CLI next to a running server) read while this one writes; the busy
timeout makes their writers wait rather than fail.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from types import TracebackType

from sovra._writer_lock import WriterLock, create_private
from sovra.errors import ConfigError
from sovra.store._sql import Run, SQLMetadataStore
from sovra.store.migrations import SQLITE

__all__ = ["SQLiteMetadataStore"]

_BUSY_TIMEOUT_MS = 5000


class SQLiteRun:
    """Statements on one connection, inside the transaction its caller began."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __call__(self, sql: str, params: Sequence[object]) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        # sqlite3 sums the rows each execution changed.
        return self._conn.executemany(sql, rows).rowcount


class SQLiteMetadataStore(SQLMetadataStore):
    """A :class:`~sovra.store.protocols.MetadataStore` in one SQLite file.

    The file is created (mode 0600; SQLite gives its WAL and shared-memory files the same
    mode) with its tables on first use. ``":memory:"`` gives a private in-memory store.
    """

    _DIALECT = SQLITE

    MARK_LOGGED = "UPDATE records SET log_index = ? WHERE record_id = ? AND log_index < 0"
    """What a log in the same file runs, with ``(index, record id)``, to make a pending row
    visible in the transaction that stores its ingest entry
    (:meth:`~sovra.ledger.SQLiteLogStorage.mark_rows_with`): :meth:`set_record_log_indices`
    without a transaction of its own."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (creating if needed) the store at *path*.

        Raises:
            ConfigError: the file cannot be created or opened, is not an SQLite
                database, or holds another schema version.
        """
        self._path = str(path)
        self._lock = threading.Lock()
        # Shared with the log (one file by default) and other workers: queue for its
        # write lock without SQLite's polling (sovra._writer_lock).
        self._writer = WriterLock(self._path)
        try:
            if self._path != ":memory:":
                create_private(self._path)
            # isolation_level=None: transactions are begun explicitly below, so the
            # module never opens one behind our back.
            self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            self._writer.close()
            raise ConfigError(f"cannot open metadata store {self._path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            with self._transaction(write=True) as run:
                self._init_schema(run)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ConfigError(f"metadata store {self._path} is unusable: {exc}") from exc
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @contextmanager
    def _transaction(self, *, write: bool, durable: bool = False) -> Iterator[Run]:
        with self._lock, self._writer.held() if write else nullcontext():
            conn = self._conn
            run = SQLiteRun(conn)
            try:
                if durable:
                    # FULL syncs the WAL at this commit, which makes every commit before
                    # it durable too (the WAL is one sequential file); NORMAL commits
                    # leave the sync to the next FULL one or a checkpoint.
                    conn.execute("PRAGMA synchronous=FULL")
                try:
                    # IMMEDIATE takes the write lock up front: a deferred transaction
                    # that later upgrades can fail with SQLITE_BUSY halfway through.
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        yield run
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                finally:
                    if durable:
                        conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.OperationalError as exc:
                raise ConfigError(f"metadata store {self._path} failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection. Calling it twice is harmless."""
        with self._lock:
            self._conn.close()
            self._writer.close()

    def __enter__(self) -> SQLiteMetadataStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
