"""The scale-out metadata store: PostgreSQL through psycopg 3 and a connection pool.

Same tables and semantics as the SQLite store (BIGINT for integers, BYTEA for bytes),
in whatever schema the connection's ``search_path`` names first, brought to this
release's version by :mod:`sovra.store.migrations` when opened.

The threads of a process share a pool (:class:`sovra.store._pg.Pool`), so readers and
writers run side by side. Concurrency between threads, processes and replicas is the
database's job: every check-then-write is one conditional statement, so two writers
cannot both win a race.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import psycopg

from sovra.store._pg import Pool
from sovra.store._sql import Run, SQLMetadataStore, _Taken
from sovra.store.journal import JournalEvent, JournalEvents, _Sealer
from sovra.store.migrations import GUARD_JOURNAL_STEPS, METADATA_STEPS, POSTGRES
from sovra.store.pg_timeouts import PgTimeouts

__all__ = ["PostgresGuardJournal", "PostgresMetadataStore"]

# Serialise migrations between processes opening one database at once; CREATE TABLE
# IF NOT EXISTS alone races on the catalog. The values are arbitrary but fixed.
_SCHEMA_LOCK_KEY = 0x736F767261_01
_JOURNAL_SCHEMA_LOCK_KEY = 0x736F767261_4A
# Held by a guard journal session from its first statement to its commit.
_JOURNAL_SESSION_LOCK_KEY = 0x736F767261_4B


# The records of a batch in one statement each (sovra.store._sql's _INSERT_RECORD, which
# a stored id here aborts whole, and its UPDATE of log_index, from arrays): each column
# one array parameter.
_INSERT_RECORDS = """INSERT INTO records (
    record_id, subject, jurisdiction, region, kek_version, content_type, format,
    wrapped_jurisdiction, wrapped_kek_version, wrapped_key, blob_size, created_ms,
    findings, actions, log_index
) SELECT * FROM unnest(
    ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::bigint[],
    ?::text[], ?::bigint[], ?::bytea[], ?::bigint[], ?::bigint[],
    ?::text[], ?::text[], ?::bigint[]
)"""

_SET_LOG_INDICES = """UPDATE records SET log_index = given.log_index
FROM unnest(?::text[], ?::bigint[]) AS given (record_id, log_index)
WHERE records.record_id = given.record_id AND records.log_index < 0"""


# A batch of nonce spends and its principals' rows in one statement (sovra.store._sql's
# _SPEND_NONCE and _SELECT_PRINCIPAL for each): a row for each nonce spent, none for a
# replay; each nonce's row is taken over only if it expired by that nonce's own clock.
_SPEND_NONCES = """WITH given AS (
    SELECT * FROM unnest(?::int[], ?::text[], ?::text[], ?::bigint[], ?::bigint[])
        AS given (n, principal_id, nonce_sha256, expires_ms, now_ms)
), spent AS (
    INSERT INTO token_nonces (principal_id, nonce_sha256, expires_ms)
    SELECT principal_id, nonce_sha256, expires_ms FROM given
    ON CONFLICT (principal_id, nonce_sha256) DO UPDATE SET expires_ms = excluded.expires_ms
    WHERE token_nonces.expires_ms <= (
        SELECT given.now_ms FROM given
        WHERE given.principal_id = excluded.principal_id
        AND given.nonce_sha256 = excluded.nonce_sha256
    )
    RETURNING principal_id, nonce_sha256
)
SELECT given.n, p.principal_id, p.jurisdiction, p.role, p.public_key, p.subject
FROM spent
JOIN given ON given.principal_id = spent.principal_id
    AND given.nonce_sha256 = spent.nonce_sha256
LEFT JOIN principals AS p ON p.principal_id = spent.principal_id"""


class PostgresMetadataStore(SQLMetadataStore):
    """A :class:`~sovra.store.protocols.MetadataStore` in a PostgreSQL database."""

    _DIALECT = POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: int = 10,
        max_connections: int = 8,
        timeouts: PgTimeouts | None = None,
    ) -> None:
        """Connect to *dsn* (``postgresql://...`` or ``key=value`` form), create or migrate
        the tables, and open a pool of up to *max_connections* whose sessions wait as
        *timeouts* say.

        Raises:
            Unavailable: the server cannot be reached.
            ConfigError: the server refuses the login, the tables cannot be created, or
                the database holds a newer schema than this sovra knows.
        """
        self._pool = Pool(
            dsn,
            "metadata store",
            migrations=[("metadata", METADATA_STEPS)],
            lock_key=_SCHEMA_LOCK_KEY,
            max_connections=max_connections,
            connect_timeout_s=connect_timeout_s,
            timeouts=timeouts,
        )

    def _put_rows(self, rows: Sequence[tuple[object, ...]], *, durable: bool) -> None:
        # One statement for the batch, its columns as arrays, in autocommit: one round
        # trip where BEGIN, an INSERT per record and COMMIT took three or more. A stored
        # id aborts the statement whole, so nothing of the batch is kept; every commit
        # here is durable, so *durable* asks for nothing more.
        columns = [list(column) for column in zip(*rows, strict=True)]
        with self._pool.connection() as conn:
            try:
                conn.execute(_INSERT_RECORDS.replace("?", "%s"), columns)
            except psycopg.errors.UniqueViolation:
                raise _Taken from None

    def _set_log_indices(self, run: Run, pairs: Sequence[tuple[str, int]]) -> int:
        return run(
            _SET_LOG_INDICES, ([rid for rid, _ in pairs], [index for _, index in pairs])
        ).rowcount

    def _spend(
        self, spent: Sequence[tuple[int, str, str, int, int]], sweep_ms: int | None
    ) -> dict[int, Sequence[Any] | None]:
        # One statement, in autocommit: a round trip where a transaction with a statement
        # per nonce and per principal took four or more. The sweep needs no atomicity with
        # it (an expired row refuses nothing): a statement of its own, once a minute.
        with self._pool.connection() as conn:
            if sweep_ms is not None:
                conn.execute("DELETE FROM token_nonces WHERE expires_ms <= %s", (sweep_ms,))
            columns = [list(column) for column in zip(*spent, strict=True)]
            rows = conn.execute(_SPEND_NONCES.replace("?", "%s"), columns).fetchall()
        return {int(row[0]): None if row[1] is None else row[1:] for row in rows}

    @contextmanager
    def _transaction(self, *, write: bool, durable: bool = False) -> Iterator[Run]:
        # Every commit is durable here (the pool's sessions never run with
        # synchronous_commit off), so *durable* asks for nothing more.
        with self._pool.transaction() as run:
            yield run

    def close(self) -> None:
        """Close the pool. Calling it twice is harmless."""
        self._pool.close()

    def __enter__(self) -> PostgresMetadataStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# A session's events in one statement (sovra.store.journal's INSERT for each, then the
# highest sequence number): in order of the arrays, so their numbers ascend as the events
# do, and the session's lock keeps every other writer out until the commit.
_APPEND_EVENTS = """WITH appended AS (
    INSERT INTO guard_journal (kind, time_s, data)
    SELECT kind, time_s, data
    FROM unnest(?::text[], ?::double precision[], ?::text[]) WITH ORDINALITY
        AS given (kind, time_s, data, n)
    ORDER BY n
    RETURNING seq
)
SELECT max(seq) FROM appended"""


class _PgJournalEvents(JournalEvents):
    __slots__ = ()

    def _insert(self, events: Sequence[tuple[str, float, str]]) -> int:
        if not events:
            return super()._insert(events)
        columns = [list(column) for column in zip(*events, strict=True)]
        (last,) = self._run(_APPEND_EVENTS, columns).fetchone()
        return int(last)


class PostgresGuardJournal:
    """A :class:`~sovra.store.protocols.GuardJournal` in PostgreSQL, shared by every
    worker of every replica over one database.

    A session is a transaction that first takes an advisory transaction lock, so sessions
    of all replicas follow one another, each seeing every event committed before it;
    the lock goes with the commit (or the rollback, or the connection if it breaks).
    Events are sealed as in the SQLite journal; sequence numbers come from a sequence,
    so they ascend in commit order (one session at a time) and a rolled-back session only
    leaves a gap. The journal has a pool of its own: a decision holding a session never
    waits for a connection that metadata queries hold, nor the other way round.
    """

    def __init__(
        self,
        dsn: str,
        key: bytes | None = None,
        *,
        connect_timeout_s: int = 10,
        max_connections: int = 4,
        timeouts: PgTimeouts | None = None,
    ) -> None:
        """Connect to *dsn*, create or migrate the journal's table; with a 32-byte *key*,
        every event's fields are sealed under it. A session that waits for the journal's
        lock longer than *timeouts*' lock limit fails with
        :class:`~sovra.errors.Unavailable`.

        Raises:
            Unavailable: the server cannot be reached.
            ConfigError: the server refuses the login or the table, or the database holds
                a newer journal schema than this sovra knows.
        """
        self._sealer = None if key is None else _Sealer(key)
        self._pool = Pool(
            dsn,
            "guard journal",
            migrations=[("guard_journal", GUARD_JOURNAL_STEPS)],
            lock_key=_JOURNAL_SCHEMA_LOCK_KEY,
            max_connections=max_connections,
            connect_timeout_s=connect_timeout_s,
            timeouts=timeouts,
        )

    @contextmanager
    def session(self) -> Iterator[JournalEvents]:
        """Hold the journal, across every replica, until the block ends; commit what it
        appended (durably) when it ends without an error.

        Raises:
            Unavailable: the database cannot be reached (nothing of the session is kept).
            ConfigError: the database refused a statement.
        """
        with self._pool.transaction() as run:
            run("SELECT pg_advisory_xact_lock(?)", (_JOURNAL_SESSION_LOCK_KEY,))
            yield _PgJournalEvents(run, self._sealer)

    def read(self, after: int) -> list[JournalEvent]:
        """Events after *after*, in order (committed ones; no session needed).

        Raises:
            Unavailable: the database cannot be reached.
            IntegrityError: an event was changed or sealed under another key.
        """
        with self._pool.transaction() as run:
            return JournalEvents(run, self._sealer).read(after)

    def close(self) -> None:
        """Close the pool. Calling it twice is harmless."""
        self._pool.close()
