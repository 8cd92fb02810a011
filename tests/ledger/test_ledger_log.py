"""The transparency log: receipts, checkpoints, proofs, reopening and concurrency."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, ConfigError, IntegrityError, NotFound, VerificationError
from sovra.ledger import (
    LogStorage,
    MemoryLogStorage,
    NoteSigner,
    SQLiteLogStorage,
    TransparencyLog,
    audit,
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_entry_inclusion,
)
from sovra.ledger.log import MAX_READ
from sovra.model import LogEntry, LogReceipt
from sovra_verify._merkle import leaf_hash
from sovra_verify.checkpoint import Checkpoint

ORIGIN = "sovra.example/log"
KEY = Ed25519PrivateKey.generate()


class Clock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


def reference_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    left, right = reference_root(leaves[:k]), reference_root(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def open_log(storage: LogStorage, clock: Clock | None = None) -> TransparencyLog:
    return TransparencyLog(storage, NoteSigner(ORIGIN, KEY), ORIGIN, clock=clock or Clock())


def entry(n: int) -> bytes:
    return LogEntry("ingest", 1000 + n, "svc", {"record": f"r{n}"}).to_bytes()


# --- receipts ----------------------------------------------------------------------


def test_append_returns_a_signed_receipt(storage: LogStorage) -> None:
    clock = Clock()
    log = open_log(storage, clock)
    receipt = log.append(entry(0), tags=["subject-a"])
    assert isinstance(receipt, LogReceipt)
    assert (receipt.origin, receipt.index, receipt.time_ms) == (ORIGIN, 0, clock.now)
    assert receipt.leaf_hash == leaf_hash(entry(0))
    receipt.verify(log.public_key, entry(0))
    with pytest.raises(VerificationError):
        receipt.verify(log.public_key, entry(1))
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).public_key
    with pytest.raises(VerificationError):
        receipt.verify(other, entry(0))
    round_tripped = LogReceipt.from_dict(receipt.to_dict())
    round_tripped.verify(log.public_key, entry(0))


def test_append_many_is_atomic_and_ordered(storage: LogStorage) -> None:
    log = open_log(storage)
    receipts = log.append_many([(entry(i), [f"s{i % 2}"]) for i in range(5)])
    assert [r.index for r in receipts] == [0, 1, 2, 3, 4]
    assert len({r.time_ms for r in receipts}) == 1
    for i, r in enumerate(receipts):
        r.verify(log.public_key, entry(i))
    assert log.find("s0") == [0, 2, 4]
    assert log.append_many([]) == []


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([(b"ok", ()), (b"", ())], "non-empty"),
        ([(b"ok", ()), (b"x" * (64 * 1024 + 1), ())], "over"),
        ([(b"ok", ()), ("text", ())], "bytes"),
        ([(b"ok", ()), (b"fine", ["bad\ttag"])], "printable"),
        ([(b"ok", ()), (b"fine", "subject")], "sequence"),
        ([(b"ok", ()), (b"fine",)], "entry, tags"),
    ],
)
def test_bad_input_stores_nothing(
    storage: LogStorage, items: list[tuple[bytes, list[str]]], message: str
) -> None:
    log = open_log(storage)
    log.append(b"first", ["subject"])
    cp = log.checkpoint()
    root = log.root()
    with pytest.raises(BadRequest, match=message):
        log.append_many(items)
    assert (log.size, log.root(), storage.size(), log.latest_checkpoint()) == (1, root, 1, cp)
    assert log.find("subject") == [0]
    assert log.append(b"second").index == 1


def test_a_broken_clock_stores_nothing(storage: LogStorage) -> None:
    log = TransparencyLog(storage, NoteSigner(ORIGIN, KEY), ORIGIN, clock=lambda: 1.5)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="clock"):
        log.append(b"x")
    assert storage.size() == 0


# --- reads -------------------------------------------------------------------------


def test_reads(storage: LogStorage) -> None:
    log = open_log(storage)
    log.append_many([(entry(i), ()) for i in range(7)])
    assert log.size == 7
    assert log.entry(3) == entry(3)
    assert log.entries(2, 5) == [entry(2), entry(3), entry(4)]
    assert list(log.iter_entries()) == [entry(i) for i in range(7)]
    assert list(log.iter_entries(5)) == [entry(5), entry(6)]
    assert log.leaf_hashes(0, 7) == [leaf_hash(entry(i)) for i in range(7)]
    with pytest.raises(NotFound, match="no log entry 7"):
        log.entry(7)
    with pytest.raises(NotFound):
        log.entry(-1)
    with pytest.raises(BadRequest, match="not inside"):
        log.entries(5, 8)
    with pytest.raises(BadRequest, match="at most"):
        log.entries(0, MAX_READ + 1)
    with pytest.raises(BadRequest, match="at most"):
        log.leaf_hashes(0, MAX_READ + 1)
    with pytest.raises(BadRequest, match="not inside"):
        log.leaf_hashes(3, 2)
    with pytest.raises(BadRequest, match="not inside"):
        log.iter_entries(0, 8)
    with pytest.raises(BadRequest, match="tag"):
        log.find("")


# --- checkpoints and proofs --------------------------------------------------------


def test_checkpoints_and_proofs_verify(storage: LogStorage) -> None:
    log = open_log(storage)
    empty = verify_checkpoint(log.checkpoint(), log.verifier_key)
    assert (empty.origin, empty.size, empty.root_hash) == (ORIGIN, 0, reference_root([]))
    notes = []
    for batch in range(4):
        log.append_many([(entry(batch * 5 + i), ()) for i in range(batch + 1)])
        notes.append(log.checkpoint())
    assert log.checkpoints() == [log.checkpoints()[0], *notes]
    assert log.latest_checkpoint() == notes[-1]
    checkpoints = [verify_checkpoint(n, log.verifier_key) for n in notes]
    assert [c.size for c in checkpoints] == [1, 3, 6, 10]
    leaves = log.leaf_hashes(0, log.size)
    for cp in checkpoints:
        assert cp.root_hash == reference_root(leaves[: cp.size]) == log.root(cp.size)
        for index in range(cp.size):
            verify_entry_inclusion(log.entry(index), index, log.inclusion_proof(index, cp.size), cp)
    for old in checkpoints:
        for new in checkpoints:
            if old.size <= new.size:
                proof = log.consistency_proof(old.size, new.size)
                verify_checkpoint_consistency(old, new, proof)
    with pytest.raises(VerificationError):
        verify_entry_inclusion(entry(99), 0, log.inclusion_proof(0, 10), checkpoints[-1])
    with pytest.raises(BadRequest):
        log.inclusion_proof(0, 11)
    with pytest.raises(BadRequest):
        log.consistency_proof(3, 11)


def test_checkpoint_is_not_repeated_for_an_unchanged_size(storage: LogStorage) -> None:
    log = open_log(storage)
    log.append(b"a")
    first = log.checkpoint()
    assert log.checkpoint() == first
    assert log.checkpoints() == [first]
    log.append(b"b")
    second = log.checkpoint()
    assert second != first
    assert log.checkpoints() == [first, second]


def test_checkpoint_text_is_a_c2sp_checkpoint(storage: LogStorage) -> None:
    log = open_log(storage)
    log.append(b"a")
    note = log.checkpoint()
    text, sig = note.split("\n\n")
    assert Checkpoint.parse(text + "\n") == Checkpoint(ORIGIN, 1, leaf_hash(b"a"))
    assert sig.startswith(f"\u2014 {ORIGIN} ")
    assert log.verifier_key.startswith(f"{ORIGIN}+")


# --- opening -----------------------------------------------------------------------


def test_reopen_keeps_the_tree(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    storage = SQLiteLogStorage(path)
    log = open_log(storage)
    log.append_many([(entry(i), ["s"]) for i in range(9)])
    note = log.checkpoint()
    root = log.root()
    storage.close()

    storage = SQLiteLogStorage(path)
    again = open_log(storage)
    assert (again.size, again.root(), again.latest_checkpoint()) == (9, root, note)
    assert again.append(entry(9)).index == 9
    assert again.find("s") == list(range(9))
    storage.close()


def test_open_detects_altered_leaves(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    storage = SQLiteLogStorage(path)
    log = open_log(storage)
    log.append_many([(entry(i), ()) for i in range(4)])
    log.checkpoint()
    storage.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE log_entries SET leaf_hash = ? WHERE idx = 2", (leaf_hash(b"evil"),))
    db.close()
    storage = SQLiteLogStorage(path)
    with pytest.raises(IntegrityError, match="do not reproduce the published root at size 4"):
        open_log(storage)
    storage.close()


def test_reads_refuse_an_entry_altered_in_storage(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    storage = SQLiteLogStorage(path)
    log = open_log(storage)
    log.append_many([(entry(i), ()) for i in range(4)])
    note = log.checkpoint()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE log_entries SET entry = ? WHERE idx = 2", (b"forged",))
    db.close()
    assert log.entry(1) == entry(1)
    with pytest.raises(IntegrityError, match="entry 2 does not match"):
        log.entry(2)
    with pytest.raises(IntegrityError, match="entry 2 does not match"):
        log.entries(0, 4)
    raw = list(log.iter_entries())
    assert raw[2] == b"forged"
    report = audit(raw, [note], log.verifier_key, leaf_hashes=log.leaf_hashes(0, 4))
    assert report.first_bad_index == 2
    storage.close()


def test_open_detects_lost_entries() -> None:
    storage = MemoryLogStorage()
    log = open_log(storage)
    log.append_many([(entry(i), ()) for i in range(3)])
    note = log.checkpoint()
    shorter = MemoryLogStorage()
    shorter.append_batch([(entry(0), leaf_hash(entry(0)), ())])
    shorter._checkpoints.append((3, note))  # a checkpoint for entries this copy lost
    with pytest.raises(IntegrityError, match="covers 3"):
        open_log(shorter)


def test_open_refuses_another_logs_checkpoints() -> None:
    storage = MemoryLogStorage()
    open_log(storage).checkpoint()
    stranger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(ConfigError, match="not this log's"):
        TransparencyLog(storage, stranger, ORIGIN)


def test_signer_must_be_named_after_the_origin() -> None:
    with pytest.raises(ConfigError, match="not the origin"):
        TransparencyLog(MemoryLogStorage(), NoteSigner("other.example", KEY), ORIGIN)
    with pytest.raises(ConfigError, match="sovra-promise/"):
        TransparencyLog(MemoryLogStorage(), NoteSigner("sovra-promise/v1", KEY), "sovra-promise/v1")


def test_a_second_writer_is_caught_up(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    sa, sb = SQLiteLogStorage(path), SQLiteLogStorage(path)
    a, b = open_log(sa), open_log(sb)
    a.append_many([(entry(i), ()) for i in range(3)])
    assert b.append(entry(3)).index == 3
    a.append(entry(4))
    expected = reference_root([leaf_hash(entry(i)) for i in range(5)])
    assert a.root() == expected
    assert verify_checkpoint(b.checkpoint(), b.verifier_key).root_hash == expected
    sa.close()
    sb.close()


# --- concurrency -------------------------------------------------------------------


def test_append_each_queues_beside_single_appends_and_refuses_alone(
    storage: LogStorage,
) -> None:
    log = open_log(storage)
    results: dict[int, list[LogReceipt | BadRequest] | LogReceipt] = {}

    def batch(n: int) -> None:
        items: list[tuple[bytes, list[str]]] = [(entry(100 * n + i), [f"b{n}"]) for i in range(5)]
        items.insert(2, (b"", []))  # malformed: refused alone, nothing stored for it
        results[n] = log.append_each(items)  # type: ignore[assignment]

    def single(n: int) -> None:
        results[n] = log.append(entry(100 * n), [f"s{n}"])

    threads = [threading.Thread(target=batch if n % 2 else single, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = []
    for n, got in results.items():
        if isinstance(got, LogReceipt):
            stored.append((entry(100 * n), got))
            continue
        assert isinstance(got[2], BadRequest)
        receipts = [r for r in got if isinstance(r, LogReceipt)]
        assert [r.index for r in receipts] == sorted(r.index for r in receipts)  # in order
        stored += [(entry(100 * n + i), r) for i, r in enumerate(receipts)]
    assert sorted(r.index for _, r in stored) == list(range(4 + 4 * 5))
    for data, r in stored:
        r.verify(log.public_key, data)
        assert log.entry(r.index) == data
    assert log.append_each([]) == []


def test_concurrent_appends_and_checkpoints(storage: LogStorage) -> None:
    log = open_log(storage)
    receipts: list[tuple[bytes, LogReceipt]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                data = f"writer {n} entry {i}".encode()
                r = log.append(data, [f"w{n}"])
                with lock:
                    receipts.append((data, r))
                if i % 10 == 0:
                    verify_checkpoint(log.checkpoint(), log.verifier_key)
        except BaseException as exc:  # surfaced below; a thread cannot fail the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.index for _, r in receipts) == list(range(150))
    for data, r in receipts:
        r.verify(log.public_key, data)
        assert log.entry(r.index) == data
    assert log.root() == reference_root(log.leaf_hashes(0, 150))
    sizes = [verify_checkpoint(n, log.verifier_key).size for n in log.checkpoints()]
    assert sizes == sorted(sizes)


# -- rows marked in the append's transaction ---------------------------------------------------

_MARK = "UPDATE rows SET idx = ? WHERE name = ? AND idx < 0"


def _rows_beside_the_log(path: Path, names: list[str]) -> None:
    """A table of the log's database whose rows wait for an index, as pending records do."""
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE rows (name TEXT PRIMARY KEY, idx INTEGER NOT NULL)")
        db.executemany("INSERT INTO rows VALUES (?, -1)", [(n,) for n in names])
    db.close()


def _rows(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT name, idx FROM rows").fetchall())
    finally:
        db.close()


def test_marked_rows_get_their_entries_indices_in_the_appends_transaction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "one.db"
    storage = SQLiteLogStorage(path)
    _rows_beside_the_log(path, ["a", "b", "c"])
    log = open_log(storage)
    assert not log.marks_rows
    log.append(entry(0))
    storage.mark_rows_with(_MARK)
    assert log.marks_rows
    got = log.append_each([(entry(1), ()), (entry(2), ["t"]), (b"", ())], ["a", "c", "b"])
    assert [r.index if isinstance(r, LogReceipt) else None for r in got] == [1, 2, None]
    assert isinstance(got[2], BadRequest)  # a bad entry is refused alone, its row left
    assert _rows(path) == {"a": 1, "b": -1, "c": 2}
    assert log.entries(1, 3) == [entry(1), entry(2)]


def test_a_row_missing_to_mark_refuses_the_whole_batch(tmp_path: Path) -> None:
    path = tmp_path / "one.db"
    storage = SQLiteLogStorage(path)
    _rows_beside_the_log(path, ["a"])
    storage.mark_rows_with(_MARK)
    batch = [item(entry(0)), item(entry(1))]
    with pytest.raises(IntegrityError, match="1 of 2 rows to mark"):
        storage.append_marked(batch, [(0, "a"), (1, "gone")])
    assert storage.size() == 0
    assert _rows(path) == {"a": -1}
    with pytest.raises(BadRequest, match="outside the batch of 2"):
        storage.append_marked(batch, [(2, "a")])
    assert storage.append_marked(batch, [(1, "a")]) == [0, 1]
    assert _rows(path) == {"a": 1}
    # A row marked already is not marked again: the batch that would is refused.
    with pytest.raises(IntegrityError):
        storage.append_marked([item(entry(2))], [(0, "a")])
    assert storage.size() == 2


def test_marks_need_a_storage_that_marks_rows(tmp_path: Path) -> None:
    storage = SQLiteLogStorage(tmp_path / "one.db")
    with pytest.raises(ConfigError, match="marks no rows"):
        storage.append_marked([item(entry(0))], [(0, "a")])
    for log in (open_log(storage), open_log(MemoryLogStorage())):
        with pytest.raises(ConfigError, match="marks need a storage that marks rows"):
            log.append_each([(entry(0), ())], ["a"])
    assert storage.size() == 0


def item(data: bytes) -> tuple[bytes, bytes, tuple[str, ...]]:
    return (data, leaf_hash(data), ())
