"""The write lock that SQLite writers of one file queue for (sovra._writer_lock)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sovra._writer_lock import WRITER_SUFFIX, WriterLock
from sovra.ledger import SQLiteLogStorage
from sovra.store.sqlite import SQLiteMetadataStore
from sovra_verify._merkle import leaf_hash


def _entered_while_held(first: WriterLock, second: WriterLock) -> tuple[bool, bool]:
    """Whether *second* was entered while *first* was held, and once it was let go."""
    entered = threading.Event()

    def take() -> None:
        with second.held():
            entered.set()

    with first.held():
        thread = threading.Thread(target=take)
        thread.start()
        during = entered.wait(0.2)
    after = entered.wait(10)
    thread.join(10)
    return during, after


def test_two_locks_on_one_file_exclude_each_other(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    first, second = WriterLock(db), WriterLock(db)
    try:
        assert _entered_while_held(first, second) == (False, True)
        assert (tmp_path / f"a.db{WRITER_SUFFIX}").is_file()
        assert os.stat(tmp_path / f"a.db{WRITER_SUFFIX}").st_mode & 0o077 == 0
    finally:
        first.close()
        second.close()


def test_locks_on_other_files_do_not(tmp_path: Path) -> None:
    first, second = WriterLock(str(tmp_path / "a.db")), WriterLock(str(tmp_path / "b.db"))
    try:
        assert _entered_while_held(first, second) == (True, True)
    finally:
        first.close()
        second.close()


def test_without_a_lock_file_writers_are_left_to_sqlite(tmp_path: Path) -> None:
    for where in (":memory:", str(tmp_path / "missing" / "a.db")):
        lock = WriterLock(where)
        with lock.held():
            pass
        lock.close()
        lock.close()
    assert not (tmp_path / "missing").exists()


def test_the_log_and_the_metadata_store_of_one_file_queue_for_one_lock(tmp_path: Path) -> None:
    db = tmp_path / "sovra.db"
    store = SQLiteMetadataStore(db)
    log = SQLiteLogStorage(db)
    try:
        assert _entered_while_held(store._writer, log._writer) == (False, True)
        assert log.append_batch([(b"entry", leaf_hash(b"entry"), ())]) == [0]
        assert store.spend_nonces([("p", "n", 2_000_000_000_000, 1_000_000_000_000)]) == [None]
    finally:
        log.close()
        store.close()
