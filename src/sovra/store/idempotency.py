"""Idempotency keys of batch requests, kept in the metadata store for a window.

A batch of records sent with an ``Idempotency-Key`` (``POST /v1/records/batch``) may be
sent again after a timeout, a broken connection or a 503: the gateway answers the lines
it answered before from what it kept here, and stores only the rest
(:mod:`sovra.server.idempotency`). The state of a key, per principal, is one row and the
answer of each window of lines (a chunk the gateway stores at once)::

    idempotency_keys    (principal, key) -> fingerprint of the body, created, the claim
                        (owner, lease), the window being stored, complete
    idempotency_pieces  (principal, key, start_line) -> the window's answer lines

A window's answer is recorded once its records are stored. ``running_from`` ..
``running_to`` marks the window being stored: a process that dies in it leaves the
marks, and those of its lines without a recorded answer have an unknown outcome (their
records may or may not have been stored); a later claim answers them as such instead of
storing them again. A claim is a lease: while it runs, another request with the key is
told to come back later; once it lapses (its process died), the next request takes the
key over.

The tables live in the metadata database (SQLite or PostgreSQL), so every replica sees
every key; rows older than the window are deleted as new keys are claimed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sovra.errors import BadRequest, Unavailable
from sovra.store.migrations import Dialect, Step, migrate

if TYPE_CHECKING:
    from sovra.store._sql import Run

__all__ = [
    "IDEMPOTENCY_STEPS",
    "Claim",
    "IdempotencyKeys",
    "KeyInFlight",
    "KeyReused",
    "idempotency_keys",
]

_COMPONENT = "idempotency"
# Serialises this component's migration between PostgreSQL processes (an advisory lock).
_MIGRATION_LOCK_KEY = 0x736F767261_49


class KeyReused(BadRequest):
    """The key was used before with another body (HTTP 422): nothing was stored."""

    status = 422
    code = "idempotency_key_reused"


class KeyInFlight(Unavailable):
    """Another request with the key is being answered now (HTTP 409, with Retry-After)."""

    status = 409
    code = "idempotency_key_in_flight"


def _idempotency_1(d: Dialect) -> list[str]:
    i, b, s = d.int_type, d.blob_type, d.table_suffix
    return [
        f"""CREATE TABLE idempotency_keys (
            principal_id TEXT NOT NULL,
            idem_key TEXT NOT NULL,
            fingerprint {b} NOT NULL,
            lines {i} NOT NULL,
            created_ms {i} NOT NULL,
            owner {b} NOT NULL,
            lease_until_ms {i} NOT NULL,
            running_from {i} NOT NULL,
            running_to {i} NOT NULL,
            complete {i} NOT NULL,
            PRIMARY KEY (principal_id, idem_key)
        ){s}""",
        "CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_ms)",
        f"""CREATE TABLE idempotency_pieces (
            principal_id TEXT NOT NULL,
            idem_key TEXT NOT NULL,
            start_line {i} NOT NULL,
            end_line {i} NOT NULL,
            piece {b} NOT NULL,
            PRIMARY KEY (principal_id, idem_key, start_line)
        ){s}""",
    ]


IDEMPOTENCY_STEPS: tuple[Step, ...] = (_idempotency_1,)
"""The idempotency keys of batch requests and their recorded answers."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A request's hold on its key: what was answered before.

    Attributes:
        owner: this claim's secret; every later call on the key names it.
        pieces: the recorded answer of each window of lines, by the window's start (the
            number of lines before it).
        crashed: the window (start, end) being stored when the request holding the key
            stopped without a word (its process died), or None.
        complete: every line has its final answer; nothing is left to run.
    """

    owner: bytes
    pieces: Mapping[int, bytes]
    crashed: tuple[int, int] | None
    complete: bool


class IdempotencyKeys:
    """The keys of one metadata store (SQLite or PostgreSQL); safe across threads,
    processes and replicas (every change is one transaction of the database)."""

    def __init__(
        self,
        transaction: Callable[..., AbstractContextManager[Run]],
        dialect: Dialect,
        *,
        window_s: float = 86_400.0,
        lease_s: float = 30.0,
        clock: Callable[[], float],
    ) -> None:
        """Keys kept for *window_s*; a claim lapses *lease_s* after its last sign of life.

        *transaction* is the metadata store's (``write=True`` for changes).
        """
        self._transaction = transaction
        self._dialect = dialect
        self._window_ms = int(window_s * 1000)
        self._lease_ms = int(lease_s * 1000)
        self._clock = clock
        self._ready = False

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _write(self) -> AbstractContextManager[Run]:
        return self._transaction(write=True)

    def _migrated(self, run: Run) -> None:
        if self._ready:
            return
        if self._dialect.name == "postgresql":
            run("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))
        migrate(run, self._dialect, _COMPONENT, IDEMPOTENCY_STEPS)
        self._ready = True

    def claim(self, principal: str, key: str, fingerprint: bytes, lines: int) -> Claim:
        """Hold *key* of *principal* for a request whose body has *fingerprint*.

        Raises:
            KeyReused: the key was used with another body within the window.
            KeyInFlight: another request holds the key (its lease has not lapsed).
            Unavailable, ConfigError: the database failed.
        """
        owner = os.urandom(16)
        now = self._now_ms()
        lock = " FOR UPDATE" if self._dialect.name == "postgresql" else ""
        with self._write() as run:
            self._migrated(run)
            row = run(
                "SELECT fingerprint, created_ms, lease_until_ms, running_from, running_to, "  # noqa: S608 - a fixed lock clause
                "complete FROM idempotency_keys "
                f"WHERE principal_id = ? AND idem_key = ?{lock}",
                (principal, key),
            ).fetchone()
            if row is not None and int(row[1]) <= now - self._window_ms:
                self._forget(run, principal, key)
                row = None
            if row is None:
                self._expire(run, now)
                inserted = run(
                    "INSERT INTO idempotency_keys (principal_id, idem_key, fingerprint, lines, "
                    "created_ms, owner, lease_until_ms, running_from, running_to, complete) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0) "
                    "ON CONFLICT (principal_id, idem_key) DO NOTHING",
                    (principal, key, fingerprint, lines, now, owner, now + self._lease_ms),
                ).rowcount
                if inserted == 1:
                    return Claim(owner, {}, None, complete=False)
                # Another replica claimed it since the SELECT: it is running.
                raise KeyInFlight(_in_flight(key), retry_after_s=1)
            found, _, lease_until, running_from, running_to, complete = row
            if bytes(found) != fingerprint:
                raise KeyReused(
                    f"Idempotency-Key {key!r} was used before with another body; nothing was "
                    "stored: send a new key with a new batch"
                )
            if not complete and int(lease_until) > now:
                wait = max(1.0, (int(lease_until) - now) / 1000)
                raise KeyInFlight(_in_flight(key), retry_after_s=wait)
            pieces = run(
                "SELECT start_line, piece FROM idempotency_pieces "
                "WHERE principal_id = ? AND idem_key = ?",
                (principal, key),
            ).fetchall()
            if not complete:
                run(
                    "UPDATE idempotency_keys SET owner = ?, lease_until_ms = ? "
                    "WHERE principal_id = ? AND idem_key = ?",
                    (owner, now + self._lease_ms, principal, key),
                )
        window = (int(running_from), int(running_to))
        return Claim(
            owner,
            {int(start): bytes(piece) for start, piece in pieces},
            window if window[1] > window[0] else None,
            complete=bool(complete),
        )

    def running(self, principal: str, key: str, owner: bytes, start: int, end: int) -> None:
        """The window of lines *start* + 1 .. *end* is about to be stored; renews the lease.

        Raises:
            KeyInFlight: the claim lapsed and another request took the key over.
        """
        with self._write() as run:
            self._hold(run, principal, key, owner)
            run(
                "UPDATE idempotency_keys SET running_from = ?, running_to = ?, "
                "lease_until_ms = ? WHERE principal_id = ? AND idem_key = ?",
                (start, end, self._now_ms() + self._lease_ms, principal, key),
            )

    def record(
        self, principal: str, key: str, owner: bytes, start: int, end: int, *, piece: bytes
    ) -> None:
        """Lines *start* + 1 .. *end* were answered with *piece* (replacing what was
        recorded for them): replayed from now on.

        Raises:
            KeyInFlight: the claim lapsed and another request took the key over.
        """
        with self._write() as run:
            self._hold(run, principal, key, owner)
            run(
                "INSERT INTO idempotency_pieces (principal_id, idem_key, start_line, end_line, "
                "piece) VALUES (?, ?, ?, ?, ?) ON CONFLICT (principal_id, idem_key, start_line) "
                "DO UPDATE SET end_line = excluded.end_line, piece = excluded.piece",
                (principal, key, start, end, piece),
            )
            run(
                "UPDATE idempotency_keys SET running_from = 0, running_to = 0, "
                "lease_until_ms = ? WHERE principal_id = ? AND idem_key = ?",
                (self._now_ms() + self._lease_ms, principal, key),
            )

    def release(
        self, principal: str, key: str, owner: bytes, *, complete: bool, settled: bool = True
    ) -> None:
        """End the claim: with *complete*, every line has its final answer and the key only
        replays; without, the lines not answered for good may be sent again at once. With
        *settled* false, the window being stored stays marked (its records may have been
        stored without their answer being recorded): its lines get an unknown outcome.
        A claim taken over meanwhile is left alone."""
        change = "complete = 1" if complete else "complete = 0"
        if settled and not complete:
            change += ", running_from = 0, running_to = 0"
        with self._write() as run:
            run(
                f"UPDATE idempotency_keys SET {change}, lease_until_ms = 0 "  # noqa: S608
                "WHERE principal_id = ? AND idem_key = ? AND owner = ?",
                (principal, key, owner),
            )

    def _hold(self, run: Run, principal: str, key: str, owner: bytes) -> None:
        lock = " FOR UPDATE" if self._dialect.name == "postgresql" else ""
        row = run(
            "SELECT owner FROM idempotency_keys "  # noqa: S608 - a fixed lock clause
            f"WHERE principal_id = ? AND idem_key = ?{lock}",
            (principal, key),
        ).fetchone()
        if row is None or bytes(row[0]) != owner:
            raise KeyInFlight(
                f"the claim on Idempotency-Key {key!r} lapsed and another request took it "
                "over; retry to get that request's answer",
                retry_after_s=1,
            )

    def _forget(self, run: Run, principal: str, key: str) -> None:
        run(
            "DELETE FROM idempotency_pieces WHERE principal_id = ? AND idem_key = ?",
            (principal, key),
        )
        run(
            "DELETE FROM idempotency_keys WHERE principal_id = ? AND idem_key = ?",
            (principal, key),
        )

    def _expire(self, run: Run, now: int) -> None:
        cutoff = now - self._window_ms
        run(
            "DELETE FROM idempotency_pieces WHERE EXISTS (SELECT 1 FROM idempotency_keys k "
            "WHERE k.principal_id = idempotency_pieces.principal_id "
            "AND k.idem_key = idempotency_pieces.idem_key AND k.created_ms <= ?)",
            (cutoff,),
        )
        run("DELETE FROM idempotency_keys WHERE created_ms <= ?", (cutoff,))

    def count(self) -> int:
        """How many keys are kept (for tests and metrics)."""
        with self._write() as run:
            self._migrated(run)
            row = run("SELECT count(*) FROM idempotency_keys", ()).fetchone()
        return 0 if row is None else int(row[0])


def _in_flight(key: str) -> str:
    return (
        f"a request with Idempotency-Key {key!r} is being answered now; retry after the "
        "pause to get its answer"
    )


def idempotency_keys(
    store: Any, *, clock: Callable[[], float], window_s: float = 86_400.0
) -> IdempotencyKeys | None:
    """The idempotency keys kept in *store*, an SQL metadata store (SQLite or
    PostgreSQL); None for a store that keeps none."""
    from sovra.store._sql import SQLMetadataStore

    if not isinstance(store, SQLMetadataStore):
        return None
    # The store's own transactions (package-private): the keys share its database, its
    # connection pool and its error translation.
    return IdempotencyKeys(
        store._transaction,
        store._DIALECT,
        window_s=window_s,
        clock=clock,
    )
