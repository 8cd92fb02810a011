"""A custodian's subject keys in PostgreSQL, for a custodian service that scales out.

Same contract as :class:`~sovra.keys.subjects.SubjectKeyStore` (the same sealed rows,
shred tombstones and all-or-none inserts), in a database that MUST be the custodian's
own: its own database, reached with its own role, which no other role (the gateway's
least of all) may read. The store refuses to open tables another role has been granted
anything on, and a database that already belongs to another jurisdiction's custodian.
The rows are sealed under the custodian's KEKs, so the database alone opens nothing; the
separation keeps even the sealed keys from the gateway, as the SQLite file's mode does.

Crypto-shredding deletes the row and its tombstone is written in one transaction; the
table is vacuumed at once, so the row leaves the table's live pages. PostgreSQL's
write-ahead log, a base backup or a replica still holds the sealed bytes until they are
recycled or expire: ADR 0008's answer applies (rotate the KEK and destroy the old version,
after which no remnant anywhere opens).

The changes counter stands in for SQLite's ``data_version``: every shred or rewrap bumps
it, so each custodian process drops its cache of unsealed keys when another one changed
what it caches.

Its sessions wait as long as the ``[postgres]`` table of ``sovra.toml`` allows
(:mod:`sovra.store.pg_timeouts`), as the gateway's stores do: a shred or an insert waiting
past ``lock_timeout_s`` for the writers' lock or a row another session holds (another
custodian process, an operator's open ``psql`` transaction) ends with
:class:`~sovra.errors.Unavailable` naming the limit (a 503 with Retry-After from the
custodian service), and keeps nothing of the call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from sovra.errors import ConfigError, IntegrityError
from sovra.keys.subjects import (
    Fetched,
    MakeKeys,
    SubjectKeyRow,
    SubjectShredded,
    check_subject,
)
from sovra.model import check_jurisdiction
from sovra.store._pg import PgRun, Pool
from sovra.store.migrations import Dialect, Step
from sovra.store.pg_timeouts import PgTimeouts

__all__ = ["PostgresSubjectKeyStore"]

_SCHEMA_LOCK_KEY = 0x736F767261_53
_WRITE_LOCK_KEY = 0x736F767261_54
_LOOKUP_CHUNK = 500
_TABLES = ("subject_keys", "shredded", "subject_store")
_PRUNE_WAIT_S = 5.0
"""How long a shred waits for transactions older than its delete to end before it
prunes the key's dead row: VACUUM keeps a row that a snapshot taken before the delete
could still read."""

# Sessions of this database whose snapshot began before the given time: while any is
# open, the deleted row may still be visible to it and VACUUM leaves its bytes in place.
_OLDER_SNAPSHOTS = """SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
AND backend_type = 'client backend' AND backend_xmin IS NOT NULL AND xact_start < %s"""


def _subject_keys_1(d: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE subject_keys (
            subject TEXT PRIMARY KEY,
            kek_version {d.int_type} NOT NULL,
            sealed {d.blob_type} NOT NULL,
            created_ms {d.int_type} NOT NULL
        ){d.table_suffix}""",
        "CREATE INDEX subject_keys_version ON subject_keys (kek_version)",
        f"""CREATE TABLE shredded (
            subject TEXT PRIMARY KEY,
            shredded_ms {d.int_type} NOT NULL
        ){d.table_suffix}""",
        # Whose keys these are, and how often they changed under the caches.
        f"""CREATE TABLE subject_store (
            id {d.int_type} PRIMARY KEY CHECK (id = 1),
            jurisdiction TEXT NOT NULL,
            changes {d.int_type} NOT NULL
        ){d.table_suffix}""",
    ]


SUBJECT_KEY_STEPS: tuple[Step, ...] = (_subject_keys_1,)


# A call's subjects, each with its key or tombstone (or neither), and the changes
# counter: one statement.
_FETCH = """SELECT given.subject, keys.kek_version, keys.sealed, gone.shredded_ms,
    (SELECT changes FROM subject_store WHERE id = 1)
FROM unnest(?::text[]) AS given (subject)
LEFT JOIN subject_keys AS keys ON keys.subject = given.subject
LEFT JOIN shredded AS gone ON gone.subject = given.subject"""

# New keys from arrays, except for a subject shredded meanwhile or keyed by another
# process (the caller holds the writers' lock, so the statement sees every shred before
# it); the subjects it stored come back.
_INSERT_NEW = """INSERT INTO subject_keys (subject, kek_version, sealed, created_ms)
SELECT given.subject, given.kek_version, given.sealed, ?
FROM unnest(?::text[], ?::bigint[], ?::bytea[]) AS given (subject, kek_version, sealed)
WHERE NOT EXISTS (SELECT 1 FROM shredded WHERE shredded.subject = given.subject)
ON CONFLICT (subject) DO NOTHING
RETURNING subject"""


class PostgresSubjectKeyStore:
    """Sealed subject keys and shred tombstones of one custodian, in PostgreSQL."""

    def __init__(
        self,
        dsn: str,
        jurisdiction: str,
        *,
        connect_timeout_s: int = 10,
        timeouts: PgTimeouts | None = None,
    ) -> None:
        """Connect, create or migrate the tables, and claim them for *jurisdiction*; every
        session waits at most as long as *timeouts* say (the defaults without).

        Raises:
            Unavailable: the server cannot be reached.
            ConfigError: the tables belong to another jurisdiction's custodian, another
                role may use them, or the database holds a newer schema.
        """
        self._jurisdiction = check_jurisdiction(jurisdiction)
        self._pool = Pool(
            dsn,
            f"subject keys of custodian {jurisdiction}",
            migrations=[("subject_keys", SUBJECT_KEY_STEPS)],
            lock_key=_SCHEMA_LOCK_KEY,
            max_connections=4,
            connect_timeout_s=connect_timeout_s,
            timeouts=timeouts,
        )
        try:
            self._claim()
        except BaseException:
            self._pool.close()
            raise

    def _claim(self) -> None:
        with self._pool.transaction() as run:
            run(
                "INSERT INTO subject_store (id, jurisdiction, changes) VALUES (1, ?, 0) "
                "ON CONFLICT (id) DO NOTHING",
                (self._jurisdiction,),
            )
            (owner,) = _one(run("SELECT jurisdiction FROM subject_store WHERE id = 1", ()))
            others = run(
                "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
                "WHERE table_schema = current_schema() AND table_name = ANY(?) "
                "AND grantee <> current_user",
                (list(_TABLES),),
            ).fetchall()
        if owner != self._jurisdiction:
            raise ConfigError(
                f"this database holds the subject keys of custodian {owner}, not "
                f"{self._jurisdiction}: each custodian needs a database of its own"
            )
        if others:
            names = ", ".join(sorted(str(r[0]) for r in others))
            raise ConfigError(
                f"other roles may use custodian {self._jurisdiction}'s subject keys "
                f"({names}): revoke their grants; only the custodian's own role may"
            )

    def close(self) -> None:
        """Close the pool. Calling it twice is harmless."""
        self._pool.close()

    def data_version(self) -> int:
        """A number that changes whenever a shred or a rewrap commits, from any process."""
        # One statement, in autocommit: a round trip, where a transaction took three.
        with self._pool.connection() as conn:
            (changes,) = _one(conn.execute("SELECT changes FROM subject_store WHERE id = 1"))
        return int(changes)

    def get(self, subject: str) -> SubjectKeyRow | None:
        """The sealed key of *subject*, or None when she has none."""
        keys, _ = self.lookup([subject])
        return keys.get(subject)

    def lookup(self, subjects: list[str]) -> tuple[dict[str, SubjectKeyRow], dict[str, int]]:
        """The sealed keys and the shred times of *subjects* (see the SQLite store)."""
        for subject in subjects:
            check_subject(subject)
        with self._pool.transaction() as run:
            keys = {
                s: (s, int(v), bytes(sealed))
                for s, v, sealed in _select_in(
                    run, "SELECT subject, kek_version, sealed FROM subject_keys", subjects
                )
            }
            shredded = {
                s: int(when)
                for s, when in _select_in(
                    run, "SELECT subject, shredded_ms FROM shredded", subjects
                )
            }
        return keys, shredded

    def insert_many(
        self, rows: list[tuple[str, int, bytes]], now_ms: int
    ) -> dict[str, SubjectKeyRow]:
        """Store new subject keys in one transaction, all or none; the keys another
        process stored first for any of the subjects (see the SQLite store).

        Raises:
            SubjectShredded: a subject's key was destroyed; nothing was stored.
            Unavailable: the database cannot be reached; nothing was stored.
        """
        for subject, _, _ in rows:
            check_subject(subject)
        subjects = [subject for subject, _, _ in rows]
        with self._pool.transaction() as run:
            # Writers take turns (SQLite's BEGIN IMMEDIATE): a shred and an insert for one
            # subject never both commit unseen by the other.
            run("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK_KEY,))
            for subject, when in _select_in(
                run, "SELECT subject, shredded_ms FROM shredded", subjects
            ):
                raise SubjectShredded(subject, int(when))
            stored = {
                s: (s, int(v), bytes(sealed))
                for s, v, sealed in _select_in(
                    run, "SELECT subject, kek_version, sealed FROM subject_keys", subjects
                )
            }
            run.many(
                "INSERT INTO subject_keys (subject, kek_version, sealed, created_ms) "
                "VALUES (?, ?, ?, ?)",
                [(s, v, sealed, now_ms) for s, v, sealed in rows if s not in stored],
            )
        return stored

    def fetch(self, subjects: list[str], make: MakeKeys | None, now_ms: int) -> Fetched:
        """The version, keys and shred times of *subjects*, and with *make* the new keys,
        in one transaction (see :class:`~sovra.keys.subjects.SubjectKeys`).

        The read is one statement; new keys take the writers' lock and one more. In
        pipeline mode the transaction's start travels with the read and the lock with
        the insert: three round trips where the three transactions it replaces took
        about fourteen.

        Raises:
            SubjectShredded: a subject was shredded by another process between the read
                and the insert; nothing was stored.
            Unavailable: the database cannot be reached; nothing was stored.
        """
        for subject in subjects:
            check_subject(subject)
        with (
            self._pool.connection() as conn,
            conn.pipeline(),
            conn.transaction(),
            conn.cursor() as cur,
        ):
            run = PgRun(cur)
            version, keys, shredded = _read(run, subjects)
            missing = [s for s in subjects if s not in keys and s not in shredded]
            if make is not None and missing and not shredded:
                rows = make(missing)
                run("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK_KEY,))
                columns = ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
                stored = {str(r[0]) for r in run(_INSERT_NEW, (now_ms, *columns)).fetchall()}
                keys.update((row[0], row) for row in rows if row[0] in stored)
                if len(stored) != len(rows):
                    # Rare: another process keyed or shredded one of them since the read.
                    _, found, gone = _read(run, [r[0] for r in rows if r[0] not in stored])
                    for subject, when in gone.items():
                        raise SubjectShredded(subject, when)
                    keys.update(found)
        if version is None:
            version = self.data_version()
        return Fetched(int(version), keys, shredded)

    def shred(self, subject: str, now_ms: int) -> bool:
        """Delete *subject*'s key for good and leave a tombstone; True if a key was deleted.

        Raises:
            Unavailable: the database cannot be reached; the key may still be there, so
                retry.
        """
        check_subject(subject)
        with self._pool.transaction() as run:
            run("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK_KEY,))
            run(
                "INSERT INTO shredded (subject, shredded_ms) VALUES (?, ?) "
                "ON CONFLICT (subject) DO NOTHING",
                (subject, now_ms),
            )
            deleted = run("DELETE FROM subject_keys WHERE subject = ?", (subject,)).rowcount
            run("UPDATE subject_store SET changes = changes + 1 WHERE id = 1", ())
        if deleted:
            # Outside a transaction (VACUUM cannot run in one): prune the dead row now,
            # once no snapshot older than the delete is left (bounded: a session that
            # stays open longer leaves the row to a later VACUUM; a role that may not see
            # other sessions' snapshots does not wait).
            with self._pool.connection() as conn:
                row = conn.execute("SELECT clock_timestamp()").fetchone()
                deadline = time.monotonic() + _PRUNE_WAIT_S
                while row is not None and time.monotonic() < deadline:
                    older = conn.execute(_OLDER_SNAPSHOTS, (row[0],)).fetchone()
                    if older is None or older[0] == 0:
                        break
                    time.sleep(0.01)
                conn.execute("VACUUM subject_keys")
        return deleted > 0

    def counts(self) -> dict[int, int]:
        """How many subject keys each KEK version seals."""
        with self._pool.transaction() as run:
            rows = run(
                "SELECT kek_version, COUNT(*) FROM subject_keys GROUP BY kek_version", ()
            ).fetchall()
        return {int(v): int(n) for v, n in rows}

    def shredded_count(self) -> int:
        """How many subjects have been crypto-shredded."""
        with self._pool.transaction() as run:
            (n,) = _one(run("SELECT COUNT(*) FROM shredded", ()))
        return int(n)

    def sealed_below(self, kek_version: int, limit: int) -> list[SubjectKeyRow]:
        """Up to *limit* subject keys sealed under a version older than *kek_version*."""
        with self._pool.transaction() as run:
            rows = run(
                "SELECT subject, kek_version, sealed FROM subject_keys WHERE kek_version < ? "
                "ORDER BY subject LIMIT ?",
                (kek_version, limit),
            ).fetchall()
        return [(str(r[0]), int(r[1]), bytes(r[2])) for r in rows]

    def replace(self, rows: list[tuple[str, int, int, bytes]]) -> int:
        """Swap sealed keys ``(subject, old version, new version, new sealed)`` atomically,
        each only if still sealed under the old version; how many changed."""
        with self._pool.transaction() as run:
            run("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK_KEY,))
            changed = run.many(
                "UPDATE subject_keys SET kek_version = ?, sealed = ? "
                "WHERE subject = ? AND kek_version = ?",
                [(new, sealed, subject, old) for subject, old, new, sealed in rows],
            )
            run("UPDATE subject_store SET changes = changes + 1 WHERE id = 1", ())
        return changed


def _read(
    run: PgRun, subjects: list[str]
) -> tuple[int | None, dict[str, SubjectKeyRow], dict[str, int]]:
    """The changes counter (None for no subjects), and the keys and shred times of
    *subjects*, in one statement."""
    keys: dict[str, SubjectKeyRow] = {}
    shredded: dict[str, int] = {}
    version = None
    for subject, kek_version, sealed, when, changes in run(_FETCH, (subjects,)).fetchall():
        version = int(changes)
        if sealed is not None:
            keys[subject] = (subject, int(kek_version), bytes(sealed))
        elif when is not None:
            shredded[subject] = int(when)
    return version, keys, shredded


def _select_in(run: PgRun, query: str, subjects: list[str]) -> Iterator[tuple[Any, ...]]:
    """The rows of *query* for *subjects*, a few hundred per statement."""
    for start in range(0, len(subjects), _LOOKUP_CHUNK):
        chunk = subjects[start : start + _LOOKUP_CHUNK]
        yield from run(query + " WHERE subject = ANY(?)", (chunk,)).fetchall()


def _one(cur: psycopg.Cursor[TupleRow]) -> TupleRow:
    """The one row a statement returns.

    Raises:
        IntegrityError: it returned none (the store's state row was deleted).
    """
    row = cur.fetchone()
    if row is None:
        raise IntegrityError("the subject-key store's state row is missing")
    return row
