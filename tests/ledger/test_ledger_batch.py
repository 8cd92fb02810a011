"""Batched integration: batch promises, group commit, sync modes, the tag index."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.errors import BadRequest, ConfigError, VerificationError
from sovra.ledger import MemoryLogStorage, NoteSigner, SQLiteLogStorage, TransparencyLog
from sovra.ledger import storage as storage_module
from sovra.ledger.storage import BatchItem
from sovra.model import LogReceipt

ORIGIN = "batch.sovra.example/log"
KEY = Ed25519PrivateKey.generate()
SIGNER = NoteSigner(ORIGIN, KEY)


def entry(i: int) -> bytes:
    return b'{"kind":"decision","n":%d}' % i


def new_log() -> TransparencyLog:
    return TransparencyLog(MemoryLogStorage(), SIGNER, ORIGIN)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.integers(0, 20))
def test_every_receipt_of_a_batch_verifies_and_round_trips(size: int, before: int) -> None:
    log = new_log()
    if before:
        log.append_many([(entry(-i), ()) for i in range(1, before + 1)])
    receipts = log.append_many([(entry(i), ()) for i in range(size)])
    assert [r.index for r in receipts] == list(range(before, before + size))
    assert len({r.signature for r in receipts}) == 1  # one signature per batch
    for i, r in enumerate(receipts):
        assert (r.batch_start, r.batch_size) == (before, size)
        r.verify(log.public_key, entry(i))
        assert LogReceipt.from_dict(r.to_dict()) == r


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.data())
def test_every_altered_receipt_fails(size: int, data: st.DataObject) -> None:
    log = new_log()
    receipts = log.append_many([(entry(i), ()) for i in range(size)])
    n = data.draw(st.integers(0, size - 1))
    r = receipts[n]
    altered = [
        replace(r, index=r.index + 1 if n + 1 < size else r.index - 1),
        replace(r, batch_start=r.batch_start + 1),
        replace(r, batch_size=r.batch_size + 1),
        replace(r, time_ms=r.time_ms + 1),
        replace(r, batch_path=r.batch_path[:-1]),
        replace(r, batch_path=(*r.batch_path, bytes(32))),
        replace(r, batch_path=(bytes(32), *r.batch_path[1:])),
        replace(r, signature=bytes(64)),
    ]
    for bad in altered:
        with pytest.raises(VerificationError):
            bad.verify(log.public_key, entry(n))
    other = (n + 1) % size
    with pytest.raises(VerificationError, match="leaf hash differs"):
        r.verify(log.public_key, entry(other))


def test_a_single_append_is_a_batch_of_one() -> None:
    log = new_log()
    r = log.append(entry(0), ["s"])
    assert (r.index, r.batch_start, r.batch_size, r.batch_path) == (0, 0, 1, ())
    r.verify(log.public_key, entry(0))
    assert r.signed_bytes().startswith(b"sovra-promise/v2\n" + ORIGIN.encode() + b"\n0\n1\n")


def test_receipts_from_other_sources_are_refused_cleanly() -> None:
    r = new_log().append_many([(entry(i), ()) for i in range(3)])[0].to_dict()
    bad = [
        r | {"batch": {"start": 0, "size": 3}},
        r | {"batch": {"start": 0, "size": 3, "path": "ab"}},
        r | {"batch": {"start": 0, "size": 3, "path": ["zz"]}},
        r | {"batch": {"start": 0, "size": 3, "path": ["00"] * 65}},
        r | {"batch": {"start": 0, "size": 3, "path": [], "more": 1}},
    ]
    for obj in bad:
        with pytest.raises(BadRequest):
            LogReceipt.from_dict(obj)


def test_concurrent_appends_share_batches_and_every_receipt_holds() -> None:
    log = new_log()
    results: dict[int, LogReceipt] = {}
    lock = threading.Lock()

    def worker(w: int) -> None:
        for k in range(40):
            n = w * 1000 + k
            receipt = log.append(entry(n), [f"t{w}"])
            with lock:
                results[n] = receipt

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.index for r in results.values()) == list(range(320))
    for n, r in results.items():
        r.verify(log.public_key, entry(n))
        assert log.entry(r.index) == entry(n)
    assert log.find("t3") == sorted(results[3000 + k].index for k in range(40))


class FailingStorage(MemoryLogStorage):
    def append_batch(self, items: Sequence[BatchItem]) -> list[int]:
        raise ConfigError("disk full")


def test_a_failed_batch_fails_every_waiter_and_stores_nothing() -> None:
    log = TransparencyLog(FailingStorage(), SIGNER, ORIGIN)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            log.append(entry(0))
        except ConfigError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 6 and log.size == 0


def test_a_bad_entry_does_not_join_the_queue() -> None:
    log = new_log()
    with pytest.raises(BadRequest, match="tag"):
        log.append(entry(0), ["bad\ntag"])
    with pytest.raises(BadRequest, match="over 65535"):
        log.append(b"x" * 65536)
    assert log.append(entry(1)).index == 0


def test_unknown_sync_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sync mode"):
        SQLiteLogStorage(tmp_path / "x.db", sync="sometimes")


@pytest.mark.parametrize("sync", ["full", "checkpoint"])
def test_both_sync_modes_keep_everything_across_reopening(tmp_path: Path, sync: str) -> None:
    path = tmp_path / "log.db"
    log = TransparencyLog(SQLiteLogStorage(path, sync=sync), SIGNER, ORIGIN)
    log.append_many([(entry(i), [f"s{i % 3}"]) for i in range(50)])
    note = log.checkpoint()
    log.append(entry(50), ["s2"])
    log.close()
    again = TransparencyLog(SQLiteLogStorage(path, sync=sync), SIGNER, ORIGIN)
    assert again.size == 51 and again.latest_checkpoint() == note
    assert again.find("s2") == [*range(2, 50, 3), 50]


def test_tags_are_found_before_and_after_merging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "_MAX_RECENT_TAGS", 10)
    monkeypatch.setattr(storage_module, "_EPOCH_BITS", 2)  # many epochs
    s = SQLiteLogStorage(tmp_path / "tags.db")
    log = TransparencyLog(s, SIGNER, ORIGIN)
    expected = []
    for i in range(40):
        log.append(entry(i), ["a", "b"] if i % 4 == 0 else ["b"])
        if i % 4 == 0:
            expected.append(i)
        assert log.find("a") == expected
    assert log.find("b") == list(range(40))
    log.close()
    again = SQLiteLogStorage(tmp_path / "tags.db")
    assert again.find("a") == expected
    again.close()


def test_tags_indexed_before_epochs_are_still_found(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    log = TransparencyLog(SQLiteLogStorage(path), SIGNER, ORIGIN)
    log.append_many([(entry(i), ["new"] if i % 2 else []) for i in range(6)])
    log.close()
    with sqlite3.connect(path) as db:  # a row as an earlier version indexed it
        db.execute("INSERT INTO log_tags (tag, idx) VALUES ('new', 0)")
    db.close()
    again = SQLiteLogStorage(path)
    assert again.find("new") == [0, 1, 3, 5]
    again.close()


def test_a_queue_longer_than_one_batch_is_integrated_in_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sovra.ledger import log as log_module

    monkeypatch.setattr(log_module, "MAX_BATCH", 3)
    log = new_log()
    results: list[LogReceipt] = []
    lock = threading.Lock()
    gate = threading.Barrier(12)

    def worker(n: int) -> None:
        gate.wait()
        receipt = log.append(entry(n))
        with lock:
            results.append(receipt)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.index for r in results) == list(range(12))
    assert all(r.batch_size <= 3 for r in results)
