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
- a wait past the deployment's ``lock_timeout`` or ``statement_timeout``
  (:mod:`sovra.store.pg_timeouts`): :class:`~sovra.errors.Unavailable` too, whose message
  says which limit expired, so a request held up by another replica's lock, or by a
  stalled transaction, ends with a 503 instead of hanging;
- anything else the server refuses (permissions, a schema it does not expect):
  :class:`~sovra.errors.ConfigError`.

Messages name the host and the database, never the DSN (it may hold a password).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from sovra.errors import ConfigError, Unavailable
from sovra.store.migrations import POSTGRES, Step, migrate
from sovra.store.pg_timeouts import PgTimeouts

__all__ = [
    "RETRY_AFTER_S",
    "PgRun",
    "Pool",
    "session_settings",
    "timed_out",
]

RETRY_AFTER_S = 1.0
"""What a 503 from a lost database connection tells the client to wait, in seconds."""
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
    conn: psycopg.Connection[TupleRow], timeouts: PgTimeouts | None = None
) -> None:
    """What every sovra session sets: durable commits, and bounds on every wait.

    A server configured with synchronous_commit = off acknowledges commits before they are
    on disk; sovra hands out receipts after a commit, so its sessions wait for the flush
    (stronger settings, remote_apply..., are left as they are). A replica whose machine
    vanishes in the middle of a transaction leaves its connection open until TCP gives up
    (hours): the server ends such a session after *timeouts*' idle limit, which releases
    the locks it held (the log's index row, the guard's advisory lock; ADR 0021); and a
    statement waiting for such a lock gives up after its lock limit
    (:mod:`sovra.store.pg_timeouts`).
    """
    row = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
    if row is not None and row[0] == "off":
        conn.execute("SET synchronous_commit = on")
    for name, value in (timeouts or PgTimeouts()).settings().items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))


def timed_out(exc: psycopg.Error, what: str, timeouts: PgTimeouts | None) -> Unavailable | None:
    """The 503 for a statement that hit the session's lock or statement limit, naming the
    limit; None for any other failure.

    PostgreSQL ends the statement (SQLSTATE 55P03 lock_not_available, 57014
    query_canceled) and the transaction rolls back: nothing of it is kept, and the
    connection stays usable.
    """
    limits = timeouts or PgTimeouts()
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return Unavailable(
            f"PostgreSQL {what}: waited longer than lock_timeout ({limits.lock_s:g} s) for a "
            "lock another session holds (another replica's transaction, or a stalled one); "
            "nothing was written, retry",
            retry_after_s=RETRY_AFTER_S,
        )
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return Unavailable(
            f"PostgreSQL {what}: a statement ran longer than statement_timeout "
            f"({limits.statement_s:g} s) and was cancelled; nothing was written, retry",
            retry_after_s=RETRY_AFTER_S,
        )
    return None


def _configure(
    timeouts: PgTimeouts | None,
) -> Callable[[psycopg.Connection[TupleRow]], None]:
    def configure(conn: psycopg.Connection[TupleRow]) -> None:
        session_settings(conn, timeouts)

    return configure


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
        timeouts: PgTimeouts | None = None,
    ) -> None:
        """Migrate each ``(component, steps)`` of *migrations*, then open the pool, whose
        sessions wait at most as long as *timeouts* say (the defaults without).

        Raises:
            Unavailable: the server cannot be reached.
            ConfigError: it refuses the login, a migration fails, or the database holds a
                schema newer than this sovra.
        """
        self._what = what
        self._timeouts = timeouts
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
            configure=_configure(timeouts),
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
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
            # The server ended one statement; the connection is sound.
            raise timed_out(exc, self._what, self._timeouts) or Unavailable(
                str(exc), retry_after_s=RETRY_AFTER_S
            ) from None
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
