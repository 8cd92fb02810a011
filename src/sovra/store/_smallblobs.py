"""Small sealed blobs of one region in one SQLite file inside that region's folder.

A batch of small blobs is one transaction: the rows, then one fsync of the write-ahead
log (``synchronous=FULL``), instead of a file and two fsyncs per blob. The file sits in
the region's own folder, so residency holds exactly as for blobs with a file each; it is
never the metadata database, which is not per region.

Every method speaks the ``OSError`` dialect of :class:`~sovra.store.blobs.BlobStoreBase`:
SQLite's own failures become ``OSError`` (``EBADMSG`` when the file is not a database or
is damaged, ``EIO`` otherwise), a key stored already is ``FileExistsError`` naming it.

Threads share one connection for reads and one for writes, each behind a lock, so a read
never waits for a write's fsync; a process that inherits the store across ``fork`` opens
its own connections, since an SQLite connection must not be used from two processes.
``secure_delete`` overwrites a deleted blob's bytes in the file, as the subject-key store
does for shredded keys.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sovra._writer_lock import WriterLock, create_private

__all__ = ["SMALL_BLOBS_NAME", "SmallBlobs"]

SMALL_BLOBS_NAME = "small-blobs.sqlite"
_SUFFIXES = ("", "-wal", "-shm")
_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 10_000


class SmallBlobs:
    """The small-blob file of one region folder, created (mode 0600) by the first write.

    Until then it reads as empty. It is not created on open, so a file lost from a
    deployment stays missing (and the deployment refuses to start, ``sovra doctor``
    reports it) rather than being replaced by an empty one without a word.
    """

    def __init__(self, folder: Path) -> None:
        """Open ``folder/small-blobs.sqlite`` if it exists.

        Raises:
            OSError: the file is a link or has a second name (``ELOOP``/``EMLINK``), is
                not an SQLite database of this schema (``EBADMSG``), or cannot be opened.
        """
        self._path = folder / SMALL_BLOBS_NAME
        # Two connections, each behind its own lock: readers never wait for a writer's
        # fsync (WAL lets a reader see the last commit while the next one is written).
        self._reader = _Connection()
        self._writer = _Connection()
        with self._reader.lock:
            self._connection(self._reader, create=False)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    def _connection(self, link: _Connection, *, create: bool) -> sqlite3.Connection | None:
        """*link*'s connection in this process; None while there is no file and *create*
        is false. The caller holds ``link.lock``."""
        if link.conn is not None and link.pid == os.getpid():
            return link.conn
        self._refuse_links()
        if not create and not os.path.lexists(self._path):
            return None
        try:
            create_private(self._path, follow=False)
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise _os_error(exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            # Read before anything is changed: a file of another schema is left as it is.
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version in (0, _SCHEMA_VERSION):
                conn.execute("PRAGMA journal_mode=WAL")
                # FULL: every commit fsyncs the log, so a returned put survives a power cut.
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA secure_delete=ON")
            if version == 0:
                conn.execute("BEGIN IMMEDIATE")
                with conn:
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS blobs"
                        " (key TEXT PRIMARY KEY, data BLOB NOT NULL) STRICT"
                    )
                    conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            conn.close()
            raise _os_error(exc) from None
        if version not in (0, _SCHEMA_VERSION):
            conn.close()
            raise OSError(errno.EBADMSG, f"small-blob store has schema version {version}")
        self._refuse_links()
        link.conn, link.pid = conn, os.getpid()
        if link is self._writer:
            link.queue = WriterLock(str(self._path))
        return conn

    def _refuse_links(self) -> None:
        # SQLite follows links; a store linked to a file elsewhere would serve (and take)
        # blobs from outside the region's folder, so the file and its companions must be
        # plain files with one name.
        for suffix in _SUFFIXES:
            try:
                st = os.lstat(f"{self._path}{suffix}")
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise OSError(
                    errno.EMLINK,
                    f"{SMALL_BLOBS_NAME}{suffix} is a link or not a plain file with one name",
                )

    def close(self) -> None:
        """Close this process's connections; calling it twice is harmless."""
        for link in (self._reader, self._writer):
            with link.lock:
                if link.conn is not None and link.pid == os.getpid():
                    link.conn.close()
                    if link.queue is not None:
                        link.queue.close()
                link.conn = link.queue = None

    def put_many(self, items: Sequence[tuple[str, bytes]], *, taken: set[str]) -> None:
        """Insert every item in one transaction, durable on return; none if it raises.

        *taken* holds keys stored elsewhere (as files): they count as existing.

        Raises:
            FileExistsError: a key is stored already (its ``filename``); nothing is written.
            OSError: the write failed; nothing is written.
        """
        for key, _ in items:
            if key in taken:
                raise FileExistsError(errno.EEXIST, "blob exists", key)
        with self._writer.lock:
            conn = self._connection(self._writer, create=True)
            if conn is None:  # pragma: no cover - create=True always connects
                raise OSError(errno.EIO, "small-blob store did not open")
            queue = self._writer.queue
            try:
                # IMMEDIATE takes the write lock up front (another process may write too);
                # the connection's context commits, or rolls back whatever went wrong.
                with queue.held() if queue is not None else contextlib.nullcontext():
                    conn.execute("BEGIN IMMEDIATE")
                    with conn:
                        conn.executemany("INSERT INTO blobs (key, data) VALUES (?, ?)", items)
            except sqlite3.IntegrityError:
                raise FileExistsError(
                    errno.EEXIST, "blob exists", self._first_stored(conn, items)
                ) from None
            except sqlite3.Error as exc:
                raise _os_error(exc) from None

    @staticmethod
    def _first_stored(conn: sqlite3.Connection, items: Sequence[tuple[str, bytes]]) -> str:
        for key, _ in items:
            if conn.execute("SELECT 1 FROM blobs WHERE key = ?", (key,)).fetchone():
                return key
        return ""

    def get_many(self, keys: Sequence[str], limit: int) -> dict[str, bytes | int]:
        """The stored blobs among *keys*: bytes, or the size of one over *limit* (unread).

        Raises:
            OSError: the read failed or the file is damaged.
        """
        rows = self._read(
            "SELECT key, length(data), CASE WHEN length(data) <= ? THEN data END"
            " FROM blobs WHERE key IN (SELECT value FROM json_each(?))",
            (limit, json.dumps(keys)),
        )
        return {key: size if data is None else bytes(data) for key, size, data in rows}

    def get(self, key: str, limit: int) -> bytes | int | None:
        """The blob under *key*, the size of one over *limit* (unread), or None.

        Raises:
            OSError: the read failed or the file is damaged.
        """
        rows = self._read(
            "SELECT length(data), CASE WHEN length(data) <= ? THEN data END"
            " FROM blobs WHERE key = ?",
            (limit, key),
        )
        if not rows:
            return None
        size, data = rows[0]
        return int(size) if data is None else bytes(data)

    def delete(self, key: str) -> bool:
        """Delete the blob under *key*, durably; whether there was one.

        Raises:
            OSError: the write failed.
        """
        with self._writer.lock:
            try:
                conn = self._connection(self._writer, create=False)
                if conn is None:
                    return False
                cur = conn.execute("DELETE FROM blobs WHERE key = ?", (key,))
            except sqlite3.Error as exc:
                raise _os_error(exc) from None
        return cur.rowcount > 0

    def stored(self, keys: Sequence[str]) -> set[str]:
        """Which of *keys* are stored here.

        Raises:
            OSError: the read failed.
        """
        rows = self._read(
            "SELECT key FROM blobs WHERE key IN (SELECT value FROM json_each(?))",
            (json.dumps(keys),),
        )
        return {key for (key,) in rows}

    def keys(self) -> Iterator[str]:
        """Every stored key.

        Raises:
            OSError: the read failed.
        """
        return (key for (key,) in self._read("SELECT key FROM blobs", ()))

    def empty(self) -> bool:
        """Whether no blob is stored (one row looked at, whatever the size).

        Raises:
            OSError: the read failed.
        """
        return not self._read("SELECT 1 FROM blobs LIMIT 1", ())

    def count(self) -> int:
        """How many blobs are stored.

        Raises:
            OSError: the read failed.
        """
        return sum(n for (n,) in self._read("SELECT count(*) FROM blobs", ()))

    def _read(self, sql: str, params: Sequence[object]) -> list[Any]:
        """The rows of one query; none while there is no file.

        Raises:
            OSError: the read failed or the file is damaged.
        """
        with self._reader.lock:
            try:
                conn = self._connection(self._reader, create=False)
                return [] if conn is None else conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _os_error(exc) from None


def _os_error(exc: sqlite3.Error) -> OSError:
    """SQLite's failure in the ``OSError`` dialect, without the file's path."""
    # The bare DatabaseError is SQLite's "not a database" and "disk image is malformed".
    code = errno.EBADMSG if type(exc) is sqlite3.DatabaseError else errno.EIO
    return OSError(code, f"small-blob store: {exc}")


class _Connection:
    """One SQLite connection, the process that opened it, and the lock its users hold."""

    __slots__ = ("conn", "lock", "pid", "queue")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None
        self.pid = 0
        # The writer's: other processes writing to the file queue for it without
        # SQLite's polling (sovra._writer_lock).
        self.queue: WriterLock | None = None
