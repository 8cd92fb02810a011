"""A custodian's store of per-subject keys, each sealed under one of its KEK versions.

One SQLite file per custodian (``custodians/<J>.subjects.db`` beside the KEK file)::

    subject_keys(subject TEXT PRIMARY KEY, kek_version INTEGER, sealed BLOB, created_ms INTEGER)
    shredded(subject TEXT PRIMARY KEY, shredded_ms INTEGER)

``sealed`` is ``nonce | AES-256-GCM(KEK[kek_version], subject key) | tag`` with associated
data ``"sovra-subject-key/v1\\n" J "\\n" version "\\n" subject``; the file alone opens
nothing. The store runs in WAL mode with ``synchronous=FULL``: a commit is one append to
the write-ahead log and one ``fsync`` (a rollback journal took about four). Crypto-shredding
deletes the row: ``PRAGMA secure_delete`` overwrites the freed bytes with zeros, and the
shred (like a rewrap, which replaces sealed keys) then checkpoints the log into the
database file and truncates it to nothing before it returns, so the old pages holding the
sealed key are gone from every file the store owns (the database, its ``-wal`` and its
``-shm``). What the file system or the storage device keeps of truncated or remapped
blocks is beyond any file format; ADR 0008 says so.

SQLite creates the ``-wal`` and ``-shm`` files with the database file's mode, and, when
run as root, gives them its owner, so a root-run command leaves no file the custodian's
own user cannot open.

The subject column is the subject's keyed commitment, never her identifier.

A custodian service may keep them in PostgreSQL instead
(:class:`~sovra.keys.subjects_postgres.PostgresSubjectKeyStore`): the URL of its own
database in ``<J>.database`` beside its KEK file, or ``sovra custodian serve --database``.
Both stores meet :class:`SubjectKeys`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from sovra.errors import BadRequest, ConfigError
from sovra.keys.files import StrPath
from sovra.store.pg_timeouts import PgTimeouts

__all__ = [
    "Fetched",
    "MakeKeys",
    "SubjectKeyRow",
    "SubjectKeyStore",
    "SubjectKeys",
    "SubjectShredded",
    "check_subject",
    "open_subject_keys",
    "require_subject_store",
    "subjects_database_path",
    "subjects_path",
]

_COMMITMENT = re.compile(r"[0-9a-f]{64}")
# Subjects looked up per statement: well under SQLite's limit on bound parameters.
_LOOKUP_CHUNK = 500
SubjectKeyRow = tuple[str, int, bytes]
"""``(subject commitment, KEK version, sealed subject key)``."""

MakeKeys = Callable[[list[str]], list[SubjectKeyRow]]
"""Makes and seals new keys for the subjects it is given: a row for each."""


class Fetched(NamedTuple):
    """What :meth:`SubjectKeys.fetch` read (and stored) in one transaction."""

    version: int
    """The store's :meth:`~SubjectKeys.data_version` as the transaction saw it."""
    keys: dict[str, SubjectKeyRow]
    """The sealed key of each subject that has one (new ones included), by subject."""
    shredded: dict[str, int]
    """The shred time (UNIX ms) of each subject whose key was destroyed."""


class SubjectKeys(Protocol):
    """A custodian's sealed subject keys and shred tombstones (SQLite or PostgreSQL).

    Implementations MUST be safe to share between threads, MUST make every write all or
    none and durable when it returns, MUST NOT store a key for a subject with a tombstone
    (checked in the inserting transaction, against every process), and MUST remove a
    shredded key from the store's live data before :meth:`shred` returns.
    """

    def data_version(self) -> int:
        """A number that changes when another process shreds or rewraps a key."""
        ...

    def get(self, subject: str) -> SubjectKeyRow | None:
        """The sealed key of *subject*, or None."""
        ...

    def lookup(self, subjects: list[str]) -> tuple[dict[str, SubjectKeyRow], dict[str, int]]:
        """The sealed keys and the shred times of *subjects*."""
        ...

    def insert_many(
        self, rows: list[tuple[str, int, bytes]], now_ms: int
    ) -> dict[str, SubjectKeyRow]:
        """Store new keys, all or none; the keys other processes stored first."""
        ...

    def fetch(self, subjects: list[str], make: MakeKeys | None, now_ms: int) -> Fetched:
        """The store's version, and the keys and shred times of *subjects* (distinct), in
        one transaction; with *make*, the keys of those that have neither are made there
        too.

        *make* is called at most once, with the subjects that have neither a key nor a
        tombstone, and only when no subject of the call has a tombstone (the caller
        refuses the call then). Its rows are stored all or none, in the transaction that
        read; a key another process stored first is returned in place of the one made.

        Raises:
            SubjectShredded: a subject was shredded by another process between the read
                and the insert; nothing was stored.
            ConfigError, Unavailable: as :meth:`insert_many`; nothing was stored.
        """
        ...

    def shred(self, subject: str, now_ms: int) -> bool:
        """Delete *subject*'s key for good and leave a tombstone."""
        ...

    def counts(self) -> dict[int, int]:
        """How many subject keys each KEK version seals."""
        ...

    def shredded_count(self) -> int:
        """How many subjects have been crypto-shredded."""
        ...

    def sealed_below(self, kek_version: int, limit: int) -> list[SubjectKeyRow]:
        """Up to *limit* keys sealed under a version older than *kek_version*."""
        ...

    def replace(self, rows: list[tuple[str, int, int, bytes]]) -> int:
        """Swap sealed keys that are still under their old version; how many changed."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


def subjects_database_path(kek_path: StrPath) -> Path:
    """Where a custodian whose subject keys live in PostgreSQL keeps that database's URL
    (``<J>.database`` beside its KEK file, in its own folder)."""
    path = Path(kek_path)
    return path.with_name(path.stem + ".database")


def open_subject_keys(
    kek_path: StrPath,
    jurisdiction: str,
    database: str | None,
    *,
    timeouts: PgTimeouts | None = None,
) -> SubjectKeys:
    """The subject-key store of the custodian whose KEK file is *kek_path*: in the
    PostgreSQL *database* when given, else the one ``<J>.database`` names, else the SQLite
    file beside the KEK file. PostgreSQL sessions wait at most as long as *timeouts* say
    (``[postgres]`` of ``sovra.toml``; the defaults without).

    Raises:
        ConfigError: the store cannot be opened (see each store), or ``<J>.database``
            cannot be read.
        Unavailable: the PostgreSQL server cannot be reached.
    """
    if database is None:
        named = subjects_database_path(kek_path)
        try:
            database = named.read_text().strip() or None
        except FileNotFoundError:
            database = None
        except OSError as exc:
            raise ConfigError(f"cannot read {named}: {exc.strerror}") from None
    if database is None:
        return SubjectKeyStore(subjects_path(kek_path))
    try:
        from sovra.keys.subjects_postgres import PostgresSubjectKeyStore
    except ImportError:
        raise ConfigError(
            "subject keys in PostgreSQL need psycopg and psycopg_pool: "
            "pip install 'sovra[postgres]'"
        ) from None
    return PostgresSubjectKeyStore(database, jurisdiction, timeouts=timeouts)


def subjects_path(kek_path: StrPath) -> Path:
    """Where the subject-key store of the custodian whose KEK file is *kek_path* lives."""
    path = Path(kek_path)
    return path.with_name(path.stem + ".subjects.db")


def require_subject_store(path: StrPath) -> None:
    """Check that the store of an existing custodian is there, before opening it.

    Opening a store creates a missing file, which is right for a new custodian only: for
    one that has held keys, a lost store would start as an empty one, with every record of
    its jurisdiction unreadable for ever and nothing said. :meth:`LocalCustodian.open
    <sovra.keys.LocalCustodian.open>` calls this first, so that loss stops the start.

    Raises:
        ConfigError: the file is missing (the message says what its loss means and how to
            restore it), or is a link or not a regular file.
    """
    target = Path(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        raise ConfigError(
            f"subject-key store {target} is missing: without it no record sealed by this "
            f"custodian opens again. Restore it from a backup of {target.parent}; only a "
            "custodian that never held a key may start from an empty one "
            f"(touch {target} && chmod 600 {target})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot open subject-key store {target}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"subject-key store {target} is not a regular file (a link or a folder?); "
            "put the custodian's own store file there"
        )


class SubjectShredded(BadRequest):
    """A key was to be made for a subject whose key was destroyed; nothing was stored."""

    def __init__(self, subject: str, shredded_ms: int) -> None:
        super().__init__(
            f"the subject's key was destroyed (crypto-shredded) at {shredded_ms} ms; "
            "no key is made for her again"
        )
        self.subject = subject
        self.shredded_ms = shredded_ms


def check_subject(subject: str) -> str:
    """*subject* if it is a subject commitment (64 lower-case hex digits).

    Raises:
        BadRequest: it is not.
    """
    if not _COMMITMENT.fullmatch(subject):
        raise BadRequest("a subject key is named by a 64-hex-digit subject commitment")
    return subject


class SubjectKeyStore:
    """Sealed subject keys and shred tombstones, safe to share between threads."""

    def __init__(self, path: StrPath) -> None:
        """Open (or create) the store at *path*, mode 0600.

        Raises:
            ConfigError: the file cannot be opened or is not a subject-key store.
        """
        self._path = Path(path)
        try:
            # Create with 0600 before SQLite opens it, so the file is never open to others.
            self._path.touch(mode=0o600, exist_ok=True)
            self._db = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=10
            )
            (mode,) = self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode != "wal":
                raise sqlite3.OperationalError(f"journal mode is {mode}, WAL is needed")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS subject_keys (subject TEXT PRIMARY KEY, "
                "kek_version INTEGER NOT NULL, sealed BLOB NOT NULL, created_ms INTEGER NOT NULL)"
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS subject_keys_version ON subject_keys(kek_version)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS shredded "
                "(subject TEXT PRIMARY KEY, shredded_ms INTEGER NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open subject-key store {self._path}: {exc}") from None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The store's file."""
        return self._path

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the store.

        ``PRAGMA data_version``: in WAL mode SQLite answers it from the shared WAL index,
        a few microseconds (it took a third of an unwrap with a rollback journal).
        """
        with self._lock:
            (version,) = self._db.execute("PRAGMA data_version").fetchone()
        return int(version)

    def get(self, subject: str) -> SubjectKeyRow | None:
        """The sealed key of *subject*, or None when she has none."""
        with self._lock:
            row = self._db.execute(
                "SELECT subject, kek_version, sealed FROM subject_keys WHERE subject = ?",
                (check_subject(subject),),
            ).fetchone()
        return None if row is None else (row[0], row[1], bytes(row[2]))

    def lookup(self, subjects: list[str]) -> tuple[dict[str, SubjectKeyRow], dict[str, int]]:
        """The sealed keys and the shred times of *subjects*, a few statements for all.

        Returns:
            ``(keys, shredded)``: the row of each subject that has a key, and the shred
            time (UNIX ms) of each whose key was destroyed; a subject in neither has none.
        """
        for subject in subjects:
            check_subject(subject)
        with self._lock:
            return self._read(subjects)

    def _read(self, subjects: list[str]) -> tuple[dict[str, SubjectKeyRow], dict[str, int]]:
        """:meth:`lookup`, the caller holding the lock."""
        keys = {
            subject: (subject, int(version), bytes(sealed))
            for subject, version, sealed in self._select_in(
                "SELECT subject, kek_version, sealed FROM subject_keys WHERE subject IN ({})",
                subjects,
            )
        }
        shredded = {
            subject: int(when)
            for subject, when in self._select_in(
                "SELECT subject, shredded_ms FROM shredded WHERE subject IN ({})", subjects
            )
        }
        return keys, shredded

    def insert_many(
        self, rows: list[tuple[str, int, bytes]], now_ms: int
    ) -> dict[str, SubjectKeyRow]:
        """Store new subject keys ``(subject, KEK version, sealed key)`` in one transaction.

        All or none: every key is durable when this returns, or none was stored. A
        subject shredded meanwhile (by another process) is refused inside the transaction,
        so no key is ever made for her again. A subject another process gave a key
        meanwhile (two gateway workers ingesting for her at once) keeps that key: hers is
        returned, and the caller MUST use it instead of the one it offered.

        Returns:
            The keys already stored for any of the subjects, by subject (usually none).

        Raises:
            SubjectShredded: a subject's key was destroyed; nothing was stored.
            ConfigError: the write failed (disk full); nothing was stored.
        """
        for subject, _, _ in rows:
            check_subject(subject)
        subjects = [subject for subject, _, _ in rows]
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._refuse_shredded(subjects)
                    # Usually every key is new: then the insert says so, and no query
                    # for keys stored meanwhile is needed.
                    inserted = self._db.executemany(
                        "INSERT OR IGNORE INTO subject_keys VALUES (?, ?, ?, ?)",
                        [(s, v, sealed, now_ms) for s, v, sealed in rows],
                    ).rowcount
                    stored: dict[str, SubjectKeyRow] = {}
                    if inserted != len(rows):
                        offered = {s: sealed for s, _, sealed in rows}
                        stored = {
                            subject: (subject, int(version), bytes(sealed))
                            for subject, version, sealed in self._select_in(
                                "SELECT subject, kek_version, sealed FROM subject_keys "
                                "WHERE subject IN ({})",
                                subjects,
                            )
                            if bytes(sealed) != offered[subject]
                        }
                except (sqlite3.Error, SubjectShredded):
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot store subject keys in {self._path}: {exc}") from None
        return stored

    def fetch(self, subjects: list[str], make: MakeKeys | None, now_ms: int) -> Fetched:
        """The version, keys and shred times of *subjects*, and with *make* the new keys,
        in one transaction (see :class:`SubjectKeys`).

        With *make* the transaction takes the write lock first (``BEGIN IMMEDIATE``), so
        what it reads is what the insert finds: no other process stores or shreds a key
        in between.

        Raises:
            ConfigError: the store could not be read or written; nothing was stored.
        """
        for subject in subjects:
            check_subject(subject)
        try:
            with self._lock:
                self._db.execute("BEGIN" if make is None else "BEGIN IMMEDIATE")
                try:
                    (version,) = self._db.execute("PRAGMA data_version").fetchone()
                    keys, shredded = self._read(subjects)
                    missing = [s for s in subjects if s not in keys]
                    if make is not None and missing and not shredded:
                        rows = make(missing)
                        self._db.executemany(
                            "INSERT INTO subject_keys VALUES (?, ?, ?, ?)",
                            [(s, v, sealed, now_ms) for s, v, sealed in rows],
                        )
                        keys.update((row[0], row) for row in rows)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read or store subject keys in {self._path}: {exc}") from None
        return Fetched(int(version), keys, shredded)

    def _refuse_shredded(self, subjects: list[str]) -> None:
        for subject, when in self._select_in(
            "SELECT subject, shredded_ms FROM shredded WHERE subject IN ({})", subjects
        ):
            raise SubjectShredded(subject, int(when))

    def _select_in(self, query: str, subjects: list[str]) -> Iterator[tuple[Any, ...]]:
        """The rows of *query* (whose ``{}`` takes the placeholders) for *subjects*, a
        few hundred subjects per statement; the caller holds the lock."""
        for start in range(0, len(subjects), _LOOKUP_CHUNK):
            chunk = subjects[start : start + _LOOKUP_CHUNK]
            yield from self._db.execute(query.format(",".join("?" * len(chunk))), chunk)

    def shred(self, subject: str, now_ms: int) -> bool:
        """Delete *subject*'s key for good and leave a tombstone; True if a key was deleted.

        The old pages holding her sealed key are erased from the write-ahead log before
        this returns (:meth:`_erase_old_pages`).

        Raises:
            ConfigError: the write failed, or the log could not be checkpointed; the key
                (or old pages holding it) may still be there, so retry.
        """
        check_subject(subject)
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    deleted = self._db.execute(
                        "DELETE FROM subject_keys WHERE subject = ?", (subject,)
                    ).rowcount
                    self._db.execute(
                        "INSERT OR IGNORE INTO shredded VALUES (?, ?)", (subject, now_ms)
                    )
                except sqlite3.Error:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                self._erase_old_pages()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot shred a subject key in {self._path}: {exc}") from None
        return deleted > 0

    def _erase_old_pages(self) -> None:
        """Checkpoint the write-ahead log into the database file and truncate it, so no
        old page (a shredded or replaced sealed key) is left in it; the caller holds the
        lock, outside a transaction.

        Raises:
            sqlite3.OperationalError: another connection's read kept the log from being
                checkpointed whole (within the busy timeout); the next call erases it.
        """
        (busy, _, _) = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise sqlite3.OperationalError(
                "the write-ahead log could not be checkpointed (a reader held it); "
                "old pages may remain in it until the next shred or rewrap"
            )

    def counts(self) -> dict[int, int]:
        """How many subject keys each KEK version seals."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kek_version, COUNT(*) FROM subject_keys GROUP BY kek_version"
            ).fetchall()
        return {int(v): int(n) for v, n in rows}

    def shredded_count(self) -> int:
        """How many subjects have been crypto-shredded."""
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM shredded").fetchone()
        return int(n)

    def sealed_below(self, kek_version: int, limit: int) -> list[SubjectKeyRow]:
        """Up to *limit* subject keys sealed under a version older than *kek_version*."""
        with self._lock:
            rows = self._db.execute(
                "SELECT subject, kek_version, sealed FROM subject_keys WHERE kek_version < ? "
                "ORDER BY subject LIMIT ?",
                (kek_version, limit),
            ).fetchall()
        return [(r[0], int(r[1]), bytes(r[2])) for r in rows]

    def replace(self, rows: list[tuple[str, int, int, bytes]]) -> int:
        """Swap sealed keys ``(subject, old version, new version, new sealed)`` atomically.

        A row changes only if it is still sealed under the old version, so a key shredded
        or rewrapped meanwhile is left alone. The old sealed keys are erased from the
        write-ahead log before this returns. Returns how many rows changed.

        Raises:
            ConfigError: the write failed (nothing changed), or the log could not be
                checkpointed (the rows changed; old pages may remain until the next
                shred or rewrap, so retry).
        """
        changed = 0
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for subject, old, new, sealed in rows:
                        changed += self._db.execute(
                            "UPDATE subject_keys SET kek_version = ?, sealed = ? "
                            "WHERE subject = ? AND kek_version = ?",
                            (new, sealed, subject, old),
                        ).rowcount
                except sqlite3.Error:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                if rows:
                    self._erase_old_pages()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot rewrap subject keys in {self._path}: {exc}") from None
        return changed
