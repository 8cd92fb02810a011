"""One writer at a time on an SQLite file shared by threads and processes, handed over
without polling.

SQLite lets one connection write at a time. A connection that finds the file locked
sleeps in its busy handler on a growing schedule (1, 2, 5, 10, 15, 20, 25 ms, ...) and
tries again, so under contention a write waits for its next retry rather than for the
lock: two worker processes appending to one log, or a token check beside a log append,
wait about twice as long as the lock is held, and now and then 25 ms or more. Writers
that take a :class:`WriterLock` first queue in the kernel instead (``flock`` on a file
beside the database): the next one is woken as soon as the holder lets go.

The lock only orders the writers that take it. SQLite's own lock still decides who
writes, so a program that does not take it is excluded as before, and a process that
dies holding it releases it with its descriptors. A wait for it is not bounded by the
busy timeout; the holder holds it for one transaction, whose own wait for SQLite's lock
is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator

__all__ = ["WRITER_SUFFIX", "WriterLock", "create_private"]

WRITER_SUFFIX = "-writer"
"""The lock file's name is the database's with this appended."""


def create_private(database: str | os.PathLike[str], *, follow: bool = True) -> None:
    """Create the SQLite file *database* empty and readable by its owner only (0600),
    if it is not there yet; an existing file is not opened at all.

    SQLite holds its locks with ``fcntl``, which a process loses on *every* descriptor of
    the file as soon as it closes *any* one of them. Opening and closing an existing
    database here would drop the locks of this process's open connections to it: in WAL
    mode each holds a shared lock on the file, which tells another process closing its
    last connection that the log is still in use. Without it, that process checkpoints
    and deletes the ``-wal`` file under the connections still writing to it, and their
    commits are lost or the file is damaged. A file created here is closed at once, before
    any connection of this process can have opened it.

    Raises:
        OSError: the file cannot be created (a link where *follow* is false, a folder
            that does not exist or cannot be written).
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    if not follow:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(database, flags, 0o600)
    except FileExistsError:
        if not os.path.islink(database):
            return
        if not follow:
            raise OSError(errno.ELOOP, "is a symbolic link", database) from None
        if os.path.exists(database):
            return
        # A link to a file not there yet: its target is made, as SQLite would make it.
        fd = os.open(database, flags & ~os.O_EXCL, 0o600)
    os.close(fd)


class WriterLock:
    """The write lock of one connection to the SQLite file at a path.

    Each connection takes its own (its own open file description), so two connections
    of one process to the same file exclude each other as two processes do.
    """

    def __init__(self, database: str) -> None:
        """The lock beside *database*; none (SQLite's busy handler alone) for an
        in-memory database or where the lock file cannot be opened (a read-only folder)."""
        self._thread = threading.Lock()
        self._pid = os.getpid()
        self._fd = -1
        if database and database != ":memory:" and not database.startswith("file:"):
            with contextlib.suppress(OSError):
                self._fd = os.open(
                    database + WRITER_SUFFIX,
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                )

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block: one of this connection's threads at a time, and
        one cooperating connection to the file at a time."""
        with self._thread:
            # A forked child shares its parent's file description, hence its lock: it
            # falls back to SQLite's busy handler (workers open their own stores).
            if self._fd < 0 or self._pid != os.getpid():
                yield
                return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file; calling it twice is harmless."""
        with self._thread:
            if self._fd >= 0 and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = -1
