"""A second store on an SQLite file keeps the locks of the first in the same process.

SQLite locks with ``fcntl``; a process that closes any descriptor of a file loses every
lock it holds on it. A store that opened and closed an existing database to create it
dropped the shared lock an open WAL connection holds, and another process closing its
last connection then checkpointed and deleted the ``-wal`` file under the writers still
using it: commits lost, the file damaged (three worker processes sharing one small-blob
file lost about one run in seven). Each store here is opened twice in this process, as
workers open a reader and a writer or the log and the metadata store share one file;
then a connection of another process comes and goes, and the log must still be there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sovra._writer_lock import create_private
from sovra.store import FilesystemBlobStore
from sovra.store.journal import SQLiteGuardJournal
from sovra.store.sqlite import SQLiteMetadataStore

VISITOR = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
conn.close()
"""


def _visit(database: Path) -> None:
    """Open, read and close *database* from another process, as a worker that stops."""
    subprocess.run([sys.executable, "-c", VISITOR, str(database)], check=True, timeout=300)


def _blobs(folder: Path) -> tuple[Callable[[], object], Path]:
    def open_store() -> object:
        store = FilesystemBlobStore(folder, "pl-waw")
        store.put_many([(f"k{os.urandom(4).hex()}", b"x")])
        return store

    return open_store, folder / "pl-waw" / "small-blobs.sqlite"


def _metadata(folder: Path) -> tuple[Callable[[], object], Path]:
    path = folder / "sovra.db"
    return lambda: SQLiteMetadataStore(path), path


def _journal(folder: Path) -> tuple[Callable[[], object], Path]:
    path = folder / "guard.db"
    return lambda: SQLiteGuardJournal(path), path


@pytest.mark.parametrize("store", [_blobs, _metadata, _journal], ids=["blobs", "meta", "guard"])
def test_a_second_store_on_the_file_keeps_the_first_ones_log(tmp_path, store) -> None:
    open_store, database = store(tmp_path)
    first = open_store()
    second = open_store()
    try:
        wal = Path(f"{database}-wal")
        assert wal.exists()
        _visit(database)
        # The visitor found this process's shared lock and left the log to it.
        assert wal.exists(), "another process deleted the WAL under open connections"
    finally:
        for s in (second, first):
            s.close()  # type: ignore[attr-defined]


def test_create_private_makes_a_new_file_for_its_owner_only(tmp_path) -> None:
    path = tmp_path / "new.db"
    create_private(path)
    assert path.stat().st_size == 0
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_bytes(b"kept")
    create_private(path)  # there already: not opened, not changed
    assert path.read_bytes() == b"kept"


def test_create_private_refuses_a_link_where_links_are_not_followed(tmp_path) -> None:
    target = tmp_path / "elsewhere.db"
    link = tmp_path / "small-blobs.sqlite"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        create_private(link, follow=False)
    assert not target.exists()
    create_private(link)  # followed: the target is made, for the owner only
    assert target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(OSError, match="symbolic link"):
        create_private(link, follow=False)
