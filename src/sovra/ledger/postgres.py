"""The log in PostgreSQL, for gateways that scale out: the sequencer is the database.

Same contract as :class:`~sovra.ledger.storage.SQLiteLogStorage`: the index counter row is
locked and advanced in the transaction that stores the batch, so replicas sharing the
database never hand out one index twice and a failed batch leaves nothing behind. Tables
are created in the connection's first ``search_path`` schema.

A batch is ONE statement (:data:`_APPEND`: the counter's ``UPDATE`` takes the row lock,
the entries and tags are inserted from arrays, the statement commits on its own): one
round trip, and the row lock is held only while the server runs it, never across a
round trip to a client that the scheduler may have put to sleep. Replicas and workers
wait for each other on that lock, so the shorter it is held the less they wait (ADR 0021).
The same statement returns the leaf hashes other writers stored just below the batch, as
far as its snapshot saw them, so a writer's tree catches up without another query in
most batches (:meth:`PostgresLogStorage.append_batch_after`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow

from sovra.errors import BadRequest, ConfigError, IntegrityError, Unavailable
from sovra.ledger.storage import (
    BatchItem,
    CosignatureRow,
    _check_batch,
    _check_checkpoint,
    _check_cosignatures,
    _check_quorum,
    _check_range,
    check_tag,
)
from sovra.store._pg import session_settings, timed_out
from sovra.store.pg_timeouts import PgTimeouts

__all__ = ["PostgresLogStorage"]

# Serialises schema creation between processes opening a fresh database at once.
_SCHEMA_LOCK_KEY = 0x736F767261_4C

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS log_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        schema_version INTEGER NOT NULL,
        next_index BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS log_entries (
        idx BIGINT PRIMARY KEY,
        entry BYTEA NOT NULL,
        leaf_hash BYTEA NOT NULL CHECK (length(leaf_hash) = 32)
    )""",
    """CREATE TABLE IF NOT EXISTS log_tags (
        tag TEXT NOT NULL,
        idx BIGINT NOT NULL REFERENCES log_entries (idx),
        PRIMARY KEY (tag, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS log_checkpoints (
        seq BIGSERIAL PRIMARY KEY,
        size BIGINT NOT NULL,
        note TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS log_checkpoints_by_size ON log_checkpoints (size)",
    """CREATE TABLE IF NOT EXISTS log_cosignatures (
        size BIGINT NOT NULL,
        witness TEXT NOT NULL,
        timestamp BIGINT NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (size, witness)
    )""",
    """INSERT INTO log_state (id, schema_version, next_index) VALUES (1, 1, 0)
        ON CONFLICT (id) DO NOTHING""",
)


# The counter's UPDATE takes the row lock (waiting for the writer holding it) and reads the
# newest counter once it has it; the entries and tags go in at the indices it hands out,
# all in the statement's own transaction. The leaf hashes of [known, first) come from the
# statement's snapshot, taken before it waited for the lock: entries committed while it
# waited are missing from the end of that list (batches commit in index order, since each
# holds the row until its commit), and are read afterwards.
_APPEND = """WITH s AS (
    UPDATE log_state SET next_index = next_index + %(n)s WHERE id = 1
    RETURNING next_index - %(n)s AS first
), e AS (
    INSERT INTO log_entries (idx, entry, leaf_hash)
    SELECT s.first + t.o - 1, t.entry, t.leaf
    FROM s, unnest(%(entries)s::bytea[], %(leaves)s::bytea[]) WITH ORDINALITY AS t(entry, leaf, o)
), g AS (
    INSERT INTO log_tags (tag, idx)
    SELECT t.tag, s.first + t.off
    FROM s, unnest(%(tags)s::text[], %(offsets)s::bigint[]) AS t(tag, off)
)
SELECT s.first, ARRAY(
    SELECT leaf_hash FROM log_entries WHERE idx >= %(known)s AND idx < s.first ORDER BY idx
) FROM s"""

# One statement, one snapshot: the counter and the rows of a range read together.
_READ = """SELECT (SELECT next_index FROM log_state WHERE id = 1),
    ARRAY(SELECT idx FROM log_entries WHERE idx >= %(start)s AND idx < %(end)s ORDER BY idx),
    ARRAY(SELECT {column} FROM log_entries WHERE idx >= %(start)s AND idx < %(end)s
          ORDER BY idx)"""


class PostgresLogStorage:
    """A :class:`~sovra.ledger.storage.LogStorage` in PostgreSQL (psycopg 3).

    One connection behind a lock serves this process; other processes and replicas
    are serialised by the database's row lock on the index counter.
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: int = 10,
        timeouts: PgTimeouts | None = None,
    ) -> None:
        """Connect to *dsn* and create the log tables if needed.

        A session of this storage left idle inside a batch's transaction for *timeouts*'
        idle limit (its process frozen, its machine gone) is ended by the server, so the
        other replicas take the index row and go on; a batch that waits for the index row
        longer than their lock limit fails with :class:`~sovra.errors.Unavailable` (503).

        Raises:
            ConfigError: the server cannot be reached, the tables cannot be created, or
                the database holds a log schema of another version.
        """
        self._dsn = dsn
        self._timeout = connect_timeout_s
        self._timeouts = timeouts
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            version = self._prepare()
        except BaseException:
            self._conn.close()
            raise
        if version != 1:
            self._conn.close()
            raise ConfigError("the PostgreSQL log has an unknown schema version")

    def _prepare(self) -> int | None:
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            for statement in _SCHEMA:
                cur.execute(statement)
            cur.execute("SELECT schema_version FROM log_state WHERE id = 1")
            row = cur.fetchone()
        return None if row is None else int(row[0])

    def _connect(self) -> psycopg.Connection[TupleRow]:
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
            # Receipts follow a commit, so commits wait for the flush (add_checkpoint opts
            # out alone); a holder of the index row that stalls is ended (ADR 0021).
            session_settings(conn, self._timeouts)
        except psycopg.OperationalError as exc:
            # The message names host and database, never the DSN (it may hold a password).
            raise Unavailable(
                f"cannot connect to PostgreSQL for the log: {exc}", retry_after_s=1
            ) from None
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to PostgreSQL for the log: {exc}") from None
        return conn

    @contextmanager
    def _transaction(self, *, single: bool = False) -> Iterator[psycopg.Cursor[TupleRow]]:
        """A cursor in a transaction of its own; with *single*, for one statement that is
        its own transaction (autocommit: no BEGIN and COMMIT round trips)."""
        with self._lock:
            if self._conn.broken:
                self._conn = self._connect()
            try:
                if single:
                    with self._conn.cursor() as cur:
                        yield cur
                else:
                    with self._conn.transaction(), self._conn.cursor() as cur:
                        yield cur
            except psycopg.errors.IntegrityError as exc:
                # Only a tampered counter makes an insert collide with a stored index.
                raise IntegrityError(f"PostgreSQL refused a log write: {exc}") from None
            except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
                # Another replica's batch, or a stalled transaction, held the index row
                # past the lock limit: this batch took no index and wrote nothing.
                raise timed_out(exc, "log storage", self._timeouts) or Unavailable(
                    str(exc), retry_after_s=1
                ) from None
            except psycopg.OperationalError as exc:
                # The server went away or restarted: the next call reconnects. A batch
                # whose commit's answer was lost is found by the start-up reconciliation.
                raise Unavailable(
                    f"PostgreSQL log storage unavailable: {exc}", retry_after_s=1
                ) from None
            except psycopg.Error as exc:
                raise ConfigError(f"PostgreSQL log storage failed: {exc}") from None

    def _next_index(self, cur: psycopg.Cursor[TupleRow], *, lock: bool = False) -> int:
        cur.execute(
            "SELECT next_index FROM log_state WHERE id = 1 FOR UPDATE"
            if lock
            else "SELECT next_index FROM log_state WHERE id = 1"
        )
        row = cur.fetchone()
        if row is None:
            raise IntegrityError("the log's index counter row is missing")
        return int(row[0])

    def append_batch(self, items: Sequence[BatchItem]) -> list[int]:
        """See :meth:`LogStorage.append_batch`."""
        batch = _check_batch(items)
        if not batch:
            return []
        first, _ = self._append(batch, None)
        return list(range(first, first + len(batch)))

    def append_batch_after(
        self, items: Sequence[BatchItem], known: int
    ) -> tuple[list[int], list[bytes]]:
        """See :meth:`~sovra.ledger.storage.CatchingUp.append_batch_after`."""
        batch = _check_batch(items)
        if not batch:
            raise BadRequest("an empty batch has no place in the log")
        if known < 0:
            raise BadRequest(f"a log size is not negative, got {known}")
        first, leaves = self._append(batch, known)
        if known > first:
            raise IntegrityError(f"the log held {first} entries before the batch, not {known}")
        seen = known + len(leaves)
        if seen < first:  # committed while the statement waited for the index row
            leaves += self.read_leaf_hashes(seen, first)
        return list(range(first, first + len(batch))), leaves

    def _append(
        self, batch: list[tuple[bytes, bytes, tuple[str, ...]]], known: int | None
    ) -> tuple[int, list[bytes]]:
        """Run :data:`_APPEND` for *batch*: its first index, and the leaf hashes from
        *known* up to it that the statement's snapshot held (none without *known*)."""
        params = {
            "n": len(batch),
            "entries": [entry for entry, _, _ in batch],
            "leaves": [leaf for _, leaf, _ in batch],
            "tags": [tag for _, _, ts in batch for tag in ts],
            "offsets": [off for off, (_, _, ts) in enumerate(batch) for _ in ts],
            # Past every index: the array of what others appended comes back empty.
            "known": (1 << 63) - 1 if known is None else known,
        }
        with self._transaction(single=True) as cur:
            cur.execute(_APPEND, params)
            row = cur.fetchone()
        if row is None:
            raise IntegrityError("the log's index counter row is missing")
        return int(row[0]), [bytes(leaf) for leaf in row[1]]

    def size(self) -> int:
        """See :meth:`LogStorage.size`."""
        with self._transaction(single=True) as cur:
            return self._next_index(cur)

    def _read(self, column: str, start: int, end: int) -> list[bytes]:
        with self._transaction(single=True) as cur:
            cur.execute(_READ.format(column=column), {"start": start, "end": end})
            row = cur.fetchone()
        if row is None or row[0] is None:
            raise IntegrityError("the log's index counter row is missing")
        _check_range(start, end, int(row[0]))
        indices, values = row[1], row[2]
        if len(indices) != end - start:  # unique indices in [start, end): all or a gap
            present = set(indices)
            missing = next(i for i in range(start, end) if i not in present)
            raise IntegrityError(f"log entry {missing} is missing from storage")
        return [bytes(value) for value in values]

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """See :meth:`LogStorage.read_entries`."""
        return self._read("entry", start, end)

    def read_leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """See :meth:`LogStorage.read_leaf_hashes`."""
        return self._read("leaf_hash", start, end)

    def find(self, tag: str) -> list[int]:
        """See :meth:`LogStorage.find`."""
        check_tag(tag)
        with self._transaction() as cur:
            cur.execute("SELECT idx FROM log_tags WHERE tag = %s ORDER BY idx", (tag,))
            return [int(idx) for (idx,) in cur.fetchall()]

    def add_checkpoint(self, size: int, note: str, *, durable: bool = True) -> None:
        """See :meth:`LogStorage.add_checkpoint`."""
        with self._transaction() as cur:
            if not durable:
                # Only this transaction's commit skips the wait for the WAL flush.
                cur.execute("SET LOCAL synchronous_commit = off")
            log_size = self._next_index(cur, lock=True)  # one checkpoint writer at a time
            cur.execute("SELECT size FROM log_checkpoints ORDER BY seq DESC LIMIT 1")
            row = cur.fetchone()
            _check_checkpoint(size, note, log_size, None if row is None else int(row[0]))
            cur.execute("INSERT INTO log_checkpoints (size, note) VALUES (%s, %s)", (size, note))

    def checkpoints(self) -> list[str]:
        """See :meth:`LogStorage.checkpoints`."""
        with self._transaction() as cur:
            cur.execute("SELECT note FROM log_checkpoints ORDER BY seq")
            return [str(note) for (note,) in cur.fetchall()]

    def latest_checkpoint(self) -> str | None:
        """See :meth:`LogStorage.latest_checkpoint`."""
        with self._transaction(single=True) as cur:
            cur.execute("SELECT note FROM log_checkpoints ORDER BY seq DESC LIMIT 1")
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def checkpoint_at(self, size: int) -> str | None:
        """See :meth:`CosignatureStore.checkpoint_at`."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT note FROM log_checkpoints WHERE size = %s ORDER BY seq DESC LIMIT 1",
                (size,),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def add_cosignatures(self, size: int, rows: Sequence[CosignatureRow]) -> None:
        """See :meth:`CosignatureStore.add_cosignatures`."""
        newest = _check_cosignatures(rows)
        with self._transaction() as cur:
            cur.execute("SELECT 1 FROM log_checkpoints WHERE size = %s LIMIT 1", (size,))
            if cur.fetchone() is None:
                raise BadRequest(f"no checkpoint of size {size} was published")
            cur.executemany(
                "INSERT INTO log_cosignatures (size, witness, timestamp, line) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (size, witness) DO UPDATE SET "
                "timestamp = excluded.timestamp, line = excluded.line "
                "WHERE excluded.timestamp > log_cosignatures.timestamp",
                [(size, w, ts, line) for w, (ts, line) in newest.items()],
            )

    def cosignatures(self, size: int) -> list[tuple[str, str]]:
        """See :meth:`CosignatureStore.cosignatures`."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT witness, line FROM log_cosignatures WHERE size = %s ORDER BY witness",
                (size,),
            )
            return [(str(w), str(line)) for w, line in cur.fetchall()]

    def latest_cosigned_size(self, witnesses: Sequence[str], quorum: int) -> int | None:
        """See :meth:`CosignatureStore.latest_cosigned_size`."""
        wanted = _check_quorum(witnesses, quorum)
        with self._transaction() as cur:
            cur.execute(
                "SELECT size FROM log_cosignatures WHERE witness = ANY(%s) "
                "GROUP BY size HAVING COUNT(*) >= %s ORDER BY size DESC LIMIT 1",
                (wanted, quorum),
            )
            row = cur.fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        """Close the connection. Calling it twice is harmless."""
        with self._lock:
            self._conn.close()
