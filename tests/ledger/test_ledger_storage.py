"""One conformance suite for every log storage backend, plus SQLite-specific durability."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sovra.errors import BadRequest, ConfigError, IntegrityError
from sovra.ledger.storage import (
    MAX_TAG_CHARS,
    LogStorage,
    SQLiteLogStorage,
)
from sovra.model import MAX_ENTRY_BYTES
from sovra_verify._merkle import leaf_hash

Factory = Callable[[], LogStorage]


def item(data: bytes, *tags: str) -> tuple[bytes, bytes, tuple[str, ...]]:
    return (data, leaf_hash(data), tags)


def snapshot(s: LogStorage) -> tuple[int, list[bytes], list[bytes], list[str], list[int]]:
    size = s.size()
    return (
        size,
        s.read_entries(0, size),
        s.read_leaf_hashes(0, size),
        s.checkpoints(),
        s.find("subject-a"),
    )


# --- conformance -------------------------------------------------------------------


def test_is_a_log_storage(storage: LogStorage) -> None:
    assert isinstance(storage, LogStorage)


def test_indices_are_dense_from_zero(storage: LogStorage) -> None:
    assert storage.size() == 0
    assert storage.append_batch([item(b"e0"), item(b"e1")]) == [0, 1]
    assert storage.append_batch([]) == []
    assert storage.append_batch([item(b"e2")]) == [2]
    assert storage.size() == 3
    assert storage.read_entries(0, 3) == [b"e0", b"e1", b"e2"]
    assert storage.read_entries(1, 2) == [b"e1"]
    assert storage.read_entries(3, 3) == []
    assert storage.read_leaf_hashes(0, 3) == [leaf_hash(x) for x in (b"e0", b"e1", b"e2")]


def test_tags_are_indexed(storage: LogStorage) -> None:
    storage.append_batch([item(b"a", "subject-a"), item(b"b", "subject-b")])
    storage.append_batch([item(b"ab", "subject-a", "subject-b", "subject-a"), item(b"none")])
    assert storage.find("subject-a") == [0, 2]
    assert storage.find("subject-b") == [1, 2]
    assert storage.find("subject-c") == []
    with pytest.raises(BadRequest):
        storage.find("")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((b"x", leaf_hash(b"y"), ()), "not SHA-256"),
        ((b"x", leaf_hash(b"x")[:31], ()), "32 bytes"),
        ((b"", leaf_hash(b""), ()), "non-empty"),
        (("x", leaf_hash(b"x"), ()), "non-empty bytes"),
        ((b"x" * (MAX_ENTRY_BYTES + 1), leaf_hash(b"x" * (MAX_ENTRY_BYTES + 1)), ()), "over"),
        ((b"x", leaf_hash(b"x"), ("",)), "tag"),
        ((b"x", leaf_hash(b"x"), ("t" * (MAX_TAG_CHARS + 1),)), "tag"),
        ((b"x", leaf_hash(b"x"), ("a\nb",)), "printable"),
        ((b"x", leaf_hash(b"x"), "subject-a"), "sequence"),
        ((b"x", leaf_hash(b"x"), (7,)), "tag"),
        ((b"x", leaf_hash(b"x")), "entry, leaf hash, tags"),
    ],
)
def test_a_bad_item_refuses_the_whole_batch(
    storage: LogStorage, bad: tuple[bytes, bytes, tuple[str, ...]], message: str
) -> None:
    storage.append_batch([item(b"first", "subject-a")])
    storage.add_checkpoint(1, "note")
    before = snapshot(storage)
    with pytest.raises(BadRequest, match=message):
        storage.append_batch([item(b"ok", "subject-a"), bad, item(b"ok2")])
    assert snapshot(storage) == before
    assert storage.append_batch([item(b"next")]) == [1]


@pytest.mark.parametrize(("start", "end"), [(-1, 1), (2, 1), (0, 4), (4, 4)])
def test_ranges_outside_the_log(storage: LogStorage, start: int, end: int) -> None:
    storage.append_batch([item(b"a"), item(b"b"), item(b"c")])
    with pytest.raises(BadRequest, match="not inside the log of size 3"):
        storage.read_entries(start, end)
    with pytest.raises(BadRequest):
        storage.read_leaf_hashes(start, end)


def test_checkpoints(storage: LogStorage) -> None:
    assert storage.checkpoints() == []
    assert storage.latest_checkpoint() is None
    storage.add_checkpoint(0, "empty")
    storage.append_batch([item(b"a"), item(b"b")])
    storage.add_checkpoint(2, "two")
    storage.add_checkpoint(2, "two again")
    with pytest.raises(BadRequest, match="beyond the log size 2"):
        storage.add_checkpoint(3, "three")
    with pytest.raises(BadRequest, match="below the latest"):
        storage.add_checkpoint(1, "one")
    with pytest.raises(BadRequest, match="non-empty"):
        storage.add_checkpoint(2, "")
    assert storage.checkpoints() == ["empty", "two", "two again"]
    assert storage.latest_checkpoint() == "two again"


def test_concurrent_appends_get_distinct_indices(storage: LogStorage) -> None:
    results: list[list[int]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(20):
            got = storage.append_batch([item(f"{n}-{i}-a".encode()), item(f"{n}-{i}-b".encode())])
            with lock:
                results.append(got)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = sorted(i for batch in results for i in batch)
    assert flat == list(range(160))
    assert all(batch[1] == batch[0] + 1 for batch in results)
    entries = storage.read_entries(0, 160)
    assert storage.read_leaf_hashes(0, 160) == [leaf_hash(e) for e in entries]


# --- SQLite durability -------------------------------------------------------------


def test_sqlite_survives_reopen_and_never_reuses_indices(tmp_path: Path) -> None:
    path = tmp_path / "deployment.db"
    first = SQLiteLogStorage(path)
    first.append_batch([item(b"a", "subject-a"), item(b"b")])
    first.add_checkpoint(2, "cp2")
    with pytest.raises(BadRequest):
        first.append_batch([item(b"c"), (b"d", leaf_hash(b"x"), ())])
    first.close()

    second = SQLiteLogStorage(path)
    assert second.size() == 2
    assert second.read_entries(0, 2) == [b"a", b"b"]
    assert second.find("subject-a") == [0]
    assert second.checkpoints() == ["cp2"]
    assert second.append_batch([item(b"c")]) == [2]
    second.close()
    third = SQLiteLogStorage(path)
    assert third.append_batch([item(b"d")]) == [3]
    third.close()


def test_sqlite_two_connections_share_one_sequence(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    a, b = SQLiteLogStorage(path), SQLiteLogStorage(path)
    assert a.append_batch([item(b"1")]) == [0]
    assert b.append_batch([item(b"2")]) == [1]
    assert a.append_batch([item(b"3")]) == [2]
    assert b.read_entries(0, 3) == [b"1", b"2", b"3"]
    a.close()
    b.close()


def test_sqlite_layout(tmp_path: Path) -> None:
    path = tmp_path / "layout.db"
    SQLiteLogStorage(path).close()
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    assert {t for t in tables if not t.startswith("sqlite_")} == {
        "log_state",
        "log_entries",
        "log_tags",
        "log_tags_recent",
        "log_tags_by_epoch",
        "log_checkpoints",
        "log_cosignatures",
    }
    assert mode == "wal"


def test_sqlite_deleted_row_is_an_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "tampered.db"
    s = SQLiteLogStorage(path)
    s.append_batch([item(b"a"), item(b"b"), item(b"c")])
    db = sqlite3.connect(path)
    with db:
        db.execute("DELETE FROM log_entries WHERE idx = 1")
    db.close()
    with pytest.raises(IntegrityError, match="entry 1 is missing"):
        s.read_entries(0, 3)
    with pytest.raises(IntegrityError, match="entry 1 is missing"):
        s.read_leaf_hashes(1, 2)
    assert s.read_entries(2, 3) == [b"c"]
    s.close()


def test_sqlite_rewound_counter_cannot_reuse_an_index(tmp_path: Path) -> None:
    path = tmp_path / "rewound.db"
    s = SQLiteLogStorage(path)
    s.append_batch([item(b"a"), item(b"b")])
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE log_state SET next_index = 1")
    db.close()
    with pytest.raises(IntegrityError, match="refused a write"):
        s.append_batch([item(b"c")])
    db = sqlite3.connect(path)
    rows = db.execute("SELECT idx, entry FROM log_entries ORDER BY idx").fetchall()
    db.close()
    assert rows == [(0, b"a"), (1, b"b")]
    s.close()


def test_sqlite_failed_batch_rolls_back_rows_already_written(tmp_path: Path) -> None:
    path = tmp_path / "half.db"
    s = SQLiteLogStorage(path)
    s.append_batch([item(b"a"), item(b"b"), item(b"c")])
    db = sqlite3.connect(path)
    with db:
        # Open a hole at 1 and rewind the counter: the batch's first row fits, its
        # second collides, and the first must not survive the failure.
        db.execute("DELETE FROM log_entries WHERE idx = 1")
        db.execute("UPDATE log_state SET next_index = 1")
    db.close()
    with pytest.raises(IntegrityError):
        s.append_batch([item(b"x", "subject-x"), item(b"y")])
    db = sqlite3.connect(path)
    rows = db.execute("SELECT idx FROM log_entries ORDER BY idx").fetchall()
    counter = db.execute("SELECT next_index FROM log_state").fetchone()[0]
    db.close()
    assert rows == [(0,), (2,)]
    assert counter == 1
    assert s.find("subject-x") == []
    s.close()


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a sqlite database, just some bytes" * 100)
    with pytest.raises(ConfigError, match="log database"):
        SQLiteLogStorage(path)


def test_sqlite_refuses_another_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SQLiteLogStorage(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE log_state SET schema_version = 2")
    db.close()
    with pytest.raises(ConfigError, match="schema version"):
        SQLiteLogStorage(path)


def test_sqlite_refuses_an_unopenable_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        SQLiteLogStorage(tmp_path / "missing-dir" / "x.db")
