"""What sovra's PostgreSQL stores share: a connection pool, migrations on open, and one
translation of the driver's failures.

Every store over PostgreSQL (metadata, the bulk guard's journal, a custodian's subject
keys) opens a :class:`Pool`: schema migrations run first on a connection of their own,
under an advisory transaction lock, so processes opening one database at once migrate it
once and a bad DSN fails with the server's own words; then a psycopg_pool pool serves
the threads of the process.

Failures are split by what a caller can do about them:

- the server cannot be reached, went away or restarted, or no connection was free in
  time: :class:`~sovra.errors.Unavailable` (503 with Retry-After at the HTTP edge). The
  pool drops the broken connections, so a retry gets a fresh one. A write that failed so
  MAY have been committed (the commit's answer was lost) and is not retried here: every
  write of sovra is written once (``ON CONFLICT DO NOTHING``) or idempotent, so the
  caller's retry finds it;
- anything else the server refuses (permissions, a schema it does not expect):
  :class:`~sovra.errors.ConfigError`.

Messages name the host and the database, never the DSN (it may hold a password).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from sovra.errors import ConfigError, Unavailable
from sovra.store.migrations import POSTGRES, Step, migrate

__all__ = ["IDLE_IN_TRANSACTION_S", "RETRY_AFTER_S", "PgRun", "Pool", "session_settings"]

RETRY_AFTER_S = 1.0
"""What a 503 from a lost database connection tells the client to wait, in seconds."""
IDLE_IN_TRANSACTION_S = 30.0
"""How long the server lets a session sit idle inside a transaction before ending it (and
releasing its locks): longer than any pause of a live process between two statements."""
_DEFAULT_MAX_CONNECTIONS = 8


class PgRun:
    """Statements on one cursor, inside its connection's open transaction (``?`` marks)."""

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


def session_settings(
    conn: psycopg.Connection[TupleRow], *, idle_in_transaction_s: float = IDLE_IN_TRANSACTION_S
) -> None:
    """What every sovra session sets: durable commits, and a bound on a stalled transaction.

    A server configured with synchronous_commit = off acknowledges commits before they are
    on disk; sovra hands out receipts after a commit, so its sessions wait for the flush
    (stronger settings, remote_apply..., are left as they are). A replica whose machine
    vanishes in the middle of a transaction leaves its connection open until TCP gives up
    (hours): the server ends such a session after *idle_in_transaction_s*, which releases
    the locks it held (the log's index row, the guard's advisory lock; ADR 0021).
    """
    row = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
    if row is not None and row[0] == "off":
        conn.execute("SET synchronous_commit = on")
    conn.execute(
        "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
        (f"{max(1, round(idle_in_transaction_s * 1000))}ms",),
    )


class Pool:
    """A pool of autocommit connections to one PostgreSQL database, for one store."""

    def __init__(
        self,
        dsn: str,
        what: str,
        *,
        migrations: Sequence[tuple[str, Sequence[Step]]] = (),
        lock_key: int,
        max_connections: int = _DEFAULT_MAX_CONNECTIONS,
        connect_timeout_s: int = 10,
    ) -> None:
        """Migrate each ``(component, steps)`` of *migrations*, then open the pool.

        Raises:
            Unavailable: the server cannot be reached.
            ConfigError: it refuses the login, a migration fails, or the database holds a
                schema newer than this sovra.
        """
        self._what = what
        kwargs = {"autocommit": True, "connect_timeout": connect_timeout_s}
        try:
            # autocommit: every transaction is an explicit conn.transaction() block, so
            # none is left open between calls holding locks or a stale snapshot.
            first = psycopg.connect(dsn, **kwargs)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            raise Unavailable(
                f"cannot connect to PostgreSQL for the {what}: {exc}", retry_after_s=RETRY_AFTER_S
            ) from None
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to PostgreSQL for the {what}: {exc}") from None
        try:
            with first.transaction(), first.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
                for component, steps in migrations:
                    migrate(PgRun(cur), POSTGRES, component, steps)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot create the {what} tables in PostgreSQL: {exc}") from None
        finally:
            first.close()
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            kwargs=kwargs,
            configure=session_settings,
            timeout=connect_timeout_s,
            name=f"sovra-{what}".replace(" ", "-"),
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise Unavailable(
                f"PostgreSQL for the {what} took no connection within {connect_timeout_s} s",
                retry_after_s=RETRY_AFTER_S,
            ) from None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[TupleRow]]:
        """A connection of the pool for the block (the caller runs its own transaction).

        Raises:
            Unavailable: no connection, or it broke during the block.
            ConfigError: the server refused a statement for another reason.
        """
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            # The server restarted or went away: drop every idle connection it broke, so
            # the next callers do not each meet one of them.
            self._pool.check()
            raise Unavailable(
                f"PostgreSQL {self._what} unavailable: {exc}", retry_after_s=RETRY_AFTER_S
            ) from None
        except psycopg.Error as exc:
            raise ConfigError(f"PostgreSQL {self._what} failed: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[PgRun]:
        """One transaction on a pooled connection: committed when the block ends, rolled
        back when it raises.

        Raises:
            Unavailable: no connection, or it broke (the commit's outcome is unknown).
            ConfigError: the server refused a statement for another reason.
        """
        with self.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield PgRun(cur)

    def close(self) -> None:
        """Close every connection. Calling it twice is harmless."""
        self._pool.close()
