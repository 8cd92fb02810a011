"""The scale-out metadata store: PostgreSQL through psycopg 3.

Same tables and semantics as the SQLite store (BIGINT for integers, BYTEA for bytes),
in whatever schema the connection's ``search_path`` names first.

One connection behind a lock serves all threads of a process for now. It serialises this
process's queries, which is fine at the request rates a single gateway replica sees; a
pool (psycopg_pool) is the upgrade when it is not. Concurrency between replicas is the
database's job: every check-then-write is one conditional statement, so two replicas
cannot both win a race.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType

import psycopg
from psycopg.rows import TupleRow

from sovra.errors import ConfigError
from sovra.store._sql import Run, SQLMetadataStore

__all__ = ["PostgresMetadataStore"]

# Serialises schema creation between processes opening a fresh database at once;
# CREATE TABLE IF NOT EXISTS alone races on the catalog. The value is arbitrary but fixed.
_SCHEMA_LOCK_KEY = 0x736F767261_01


class _Run:
    """Statements on one cursor, inside its connection's open transaction."""

    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.Cursor[TupleRow]) -> None:
        self._cur = cur

    def __call__(self, sql: str, params: Sequence[object]) -> psycopg.Cursor[TupleRow]:
        # The statements are constants written with '?' and contain no other '?' or
        # '%'; psycopg wants '%s'.
        self._cur.execute(sql.replace("?", "%s"), params)
        return self._cur

    def many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        # psycopg sends the rows in one pipeline and sums the rows each one changed.
        self._cur.executemany(sql.replace("?", "%s"), rows)
        return self._cur.rowcount


class PostgresMetadataStore(SQLMetadataStore):
    """A :class:`~sovra.store.protocols.MetadataStore` in a PostgreSQL database."""

    def __init__(self, dsn: str, *, connect_timeout_s: int = 10) -> None:
        """Connect to *dsn* (``postgresql://...`` or ``key=value`` form) and create the tables.

        Raises:
            ConfigError: the server cannot be reached or refuses the login, the tables
                cannot be created, or the database holds another schema version.
        """
        self._dsn = dsn
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            with self._transaction(write=True) as run:
                run("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_KEY,))
                self._init_schema(run)
        except psycopg.Error as exc:
            self._conn.close()
            raise ConfigError(f"cannot create the metadata tables in PostgreSQL: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[TupleRow]:
        try:
            # autocommit: every transaction is an explicit conn.transaction() block, so
            # none is left open between calls holding locks or a stale snapshot.
            return psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout_s
            )
        except psycopg.Error as exc:
            # The message names host and database, never the DSN (it may hold a password).
            raise ConfigError(f"cannot connect to PostgreSQL: {exc}") from exc

    @contextmanager
    def _transaction(self, *, write: bool, durable: bool = False) -> Iterator[Run]:
        # Every commit is durable here: synchronous_commit stays at its default (on)
        # for this store's sessions, so *durable* asks for nothing more.
        with self._lock:
            # A connection the server dropped is replaced on the next call; the call that
            # saw it drop has already failed, and is not retried here since it may have
            # been applied.
            if self._conn.broken:
                self._conn = self._connect()
            conn = self._conn
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield _Run(cur)
            except psycopg.OperationalError as exc:
                raise ConfigError(f"PostgreSQL metadata store failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection. Calling it twice is harmless."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PostgresMetadataStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
