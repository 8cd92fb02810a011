"""Several writers of one log storage (worker processes, replicas over one database):
each batch hands its writer the leaves the others stored before it, and the publishing
schedule stores one checkpoint per tick for all of them, covering every receipt."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, IntegrityError
from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog, verify_checkpoint
from sovra.ledger.postgres import PostgresLogStorage
from sovra.ledger.storage import CatchingUp, LogStorage
from sovra.model import LogReceipt

ORIGIN = "sovra.test/shared-writers"
SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))


def _item(data: bytes, *tags: str) -> tuple[bytes, bytes, tuple[str, ...]]:
    return data, hashlib.sha256(b"\x00" + data).digest(), tags


def _leaf(data: bytes) -> bytes:
    return _item(data)[1]


@pytest.fixture
def pg_pair(pg_dsn: str) -> Iterator[tuple[PostgresLogStorage, PostgresLogStorage]]:
    a, b = PostgresLogStorage(pg_dsn), PostgresLogStorage(pg_dsn)
    yield a, b
    a.close()
    b.close()


def test_a_batch_brings_back_what_the_other_writer_stored_before_it(
    pg_pair: tuple[PostgresLogStorage, PostgresLogStorage],
) -> None:
    a, b = pg_pair
    assert isinstance(a, CatchingUp)
    assert a.append_batch([_item(b"a0", "t"), _item(b"a1"), _item(b"a2", "t", "u")]) == [0, 1, 2]
    indices, before = b.append_batch_after([_item(b"b0", "t"), _item(b"b1")], 0)
    assert indices == [3, 4]
    assert before == [_leaf(b"a0"), _leaf(b"a1"), _leaf(b"a2")]
    indices, before = a.append_batch_after([_item(b"a3")], 3)
    assert (indices, before) == ([5], [_leaf(b"b0"), _leaf(b"b1")])
    indices, before = a.append_batch_after([_item(b"a4")], 6)
    assert (indices, before) == ([6], [])
    # Everything went where the indices say, tags included.
    assert b.read_entries(0, 7) == [b"a0", b"a1", b"a2", b"b0", b"b1", b"a3", b"a4"]
    assert b.find("t") == [0, 2, 3]
    assert b.find("u") == [2]


def test_bad_calls_store_nothing_or_are_named(
    pg_pair: tuple[PostgresLogStorage, PostgresLogStorage],
) -> None:
    a, _ = pg_pair
    a.append_batch([_item(b"x")])
    with pytest.raises(BadRequest, match="empty batch"):
        a.append_batch_after([], 0)
    with pytest.raises(BadRequest, match="not negative"):
        a.append_batch_after([_item(b"y")], -1)
    with pytest.raises(BadRequest):
        a.append_batch_after([(b"z", b"not the leaf hash", ())], 1)
    assert a.size() == 1
    # A writer whose tree is ahead of the storage is broken: said, after the batch.
    with pytest.raises(IntegrityError, match="held 1 entries before the batch, not 5"):
        a.append_batch_after([_item(b"w")], 5)
    assert a.read_entries(0, a.size()) == [b"x", b"w"]


def test_entries_committed_while_the_batch_waited_for_the_row_come_back_too(
    pg_dsn: str, pg_pair: tuple[PostgresLogStorage, PostgresLogStorage]
) -> None:
    # The batch's statement takes its snapshot before it waits for the index row: what
    # the holder of the row commits meanwhile is read after it, never left out.
    a, b = pg_pair
    a.append_batch([_item(b"a0")])
    holder = psycopg.connect(pg_dsn)
    holder.execute("UPDATE log_state SET next_index = next_index + 2 WHERE id = 1")
    for idx, data in ((1, b"h1"), (2, b"h2")):
        holder.execute(
            "INSERT INTO log_entries (idx, entry, leaf_hash) VALUES (%s, %s, %s)",
            (idx, data, _leaf(data)),
        )
    got: list[tuple[list[int], list[bytes]]] = []
    waiter = threading.Thread(target=lambda: got.append(b.append_batch_after([_item(b"b")], 0)))
    waiter.start()
    _until(lambda: _waiting_for_a_lock(pg_dsn), "the batch waits for the index row")
    holder.commit()
    holder.close()
    waiter.join(timeout=60)
    assert got == [([3], [_leaf(b"a0"), _leaf(b"h1"), _leaf(b"h2")])]


def _waiting_for_a_lock(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%%UPDATE log_state%%'"
        ).fetchone()
    return bool(row and row[0])


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded, generously: the machine may be loaded) until *condition* holds."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_tick_covers_every_receipt_of_every_writer_and_the_others_add_nothing(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Publication on the schedule only (no checkpoint per batch): one tick of any
    # writer's schedule publishes a checkpoint covering every receipt either writer
    # handed out; the other writer's tick finds it and signs and stores nothing.
    def storage() -> LogStorage:
        if backend == "postgres":
            return PostgresLogStorage(request.getfixturevalue("pg_dsn"))
        return SQLiteLogStorage(tmp_path / "shared.db")

    logs = [TransparencyLog(storage(), SIGNER, ORIGIN) for _ in "ab"]
    receipts: list[LogReceipt] = []
    lock = threading.Lock()

    def work(log: TransparencyLog, name: str) -> None:
        for n in range(25):
            got = log.append(b'{"w":"%s","n":%d}' % (name.encode(), n))
            with lock:
                receipts.append(got)

    threads = [
        threading.Thread(target=work, args=(log, f"{n}{t}"))
        for n, log in enumerate(logs)
        for t in range(3)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert logs[0].checkpoints() == []  # nothing published per batch
        note = logs[0].checkpoint()
        cp = verify_checkpoint(note, SIGNER.vkey)
        assert cp.size == len(receipts) == 150
        assert logs[1].root(cp.size) == cp.root_hash
        assert sorted(r.index for r in receipts) == list(range(150))
        for r in receipts:
            assert logs[1].inclusion_proof(r.index, cp.size) == logs[0].inclusion_proof(
                r.index, cp.size
            )
        assert logs[1].checkpoint() == note
        assert logs[0].checkpoint() == note
        assert logs[1].checkpoints() == [note]
        logs[1].append(b'{"late":1}')
        newer = logs[0].checkpoint()
        assert verify_checkpoint(newer, SIGNER.vkey).size == 151
        assert logs[1].checkpoint() == newer
        assert logs[0].checkpoints() == [note, newer]
    finally:
        for log in logs:
            log.close()
