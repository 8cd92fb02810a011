"""The key hierarchy: subject keys, crypto-shredding, rotation by rewrap, batched calls."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from _allow import logged_allow
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovra.errors import BadRequest, Denied, IntegrityError, NotFound, SovraError
from sovra.keys import LocalCustodian, open_blob, seal
from sovra.keys.custodian import MAX_BATCH, MAX_BATCH_KEYS, MAX_BATCH_VALUES
from sovra.keys.files import write_secret
from sovra.keys.subjects import subjects_path
from sovra.model import (
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    subject_commitment,
)

NOW = 1_750_000_000_000
REQUESTER = "svc-support"
SUBJECTS = [subject_commitment(b"c" * 32, "PL", f"person-{i}") for i in range(12)]
ALICE, BOB = SUBJECTS[0], SUBJECTS[1]


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> int:
        return self.now


def header(record_id: str, subject: str = ALICE) -> RecordHeader:
    return RecordHeader(
        record_id=record_id, subject=subject, jurisdiction="PL", region="eu", kek_version=1
    )


def authorize(
    log_key: Ed25519PrivateKey, headers: list[RecordHeader], principal: str = REQUESTER
) -> ReleaseAuthorization:
    return logged_allow(log_key, headers, principal=principal, time_ms=NOW, index=7)


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "custodians" / "PL.key"


@pytest.fixture
def pl(key_path: Path, log_key: Ed25519PrivateKey) -> LocalCustodian:
    key_path.parent.mkdir()
    return LocalCustodian.create(key_path, "PL", log_key.public_key(), clock=Clock())


@dataclass
class Stored:
    header: RecordHeader
    blob: bytes
    wrapped: WrappedKey
    plaintext: bytes


def ingest(custodian: LocalCustodian, subject: str, n: int, tag: str = "") -> list[Stored]:
    out = []
    for i in range(n):
        hdr = replace(
            header(f"r-{subject[:8]}-{tag}{i}", subject),
            kek_version=custodian.current_kek_version,
        )
        plaintext = f"record {i} of {subject[:8]}".encode()
        blob, data_key = seal(hdr, plaintext)
        out.append(Stored(hdr, blob, custodian.wrap(data_key, hdr), plaintext))
    return out


def read_all(custodian: LocalCustodian, log_key: Ed25519PrivateKey, rows: list[Stored]) -> None:
    keys = custodian.unwrap_many(
        [(r.wrapped, r.header) for r in rows], authorize(log_key, [r.header for r in rows]),
        REQUESTER,
    )  # fmt: skip
    for row, key in zip(rows, keys, strict=True):
        assert open_blob(row.header, row.blob, key) == row.plaintext


# -- subject keys -----------------------------------------------------------------------------


def test_one_subject_key_per_subject(pl: LocalCustodian, log_key: Ed25519PrivateKey) -> None:
    rows = ingest(pl, ALICE, 3) + ingest(pl, BOB, 2)
    status = pl.status()
    assert (status.subjects, status.shredded, dict(status.versions)) == (2, 0, {1: 2})
    read_all(pl, log_key, rows)


def test_a_wrapped_key_moved_to_another_subject_fails(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    (alice,) = ingest(pl, ALICE, 1)
    ingest(pl, BOB, 1)
    moved = replace(alice.header, subject=BOB)
    with pytest.raises(IntegrityError, match="failed authentication"):
        pl.unwrap(alice.wrapped, moved, authorize(log_key, [moved]), REQUESTER)


def test_the_subject_store_is_private_and_holds_no_plain_key(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    ingest(pl, ALICE, 1)
    store = subjects_path(key_path)
    assert store.stat().st_mode & 0o077 == 0
    subject_key = pl._subject_key(ALICE, create=False)
    assert subject_key not in store.read_bytes()


def test_a_subject_without_a_key_cannot_be_unwrapped(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    (alice,) = ingest(pl, ALICE, 1)
    stranger = replace(alice.header, subject=SUBJECTS[5])
    with pytest.raises(IntegrityError, match="failed authentication"):
        pl.unwrap(alice.wrapped, stranger, authorize(log_key, [stranger]), REQUESTER)


# -- crypto-shredding -----------------------------------------------------------------------


def test_shredding_makes_every_record_of_the_subject_unreadable(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    alice, bob = ingest(pl, ALICE, 3), ingest(pl, BOB, 2)
    assert pl.shred(ALICE) is True
    for row in alice:
        with pytest.raises(NotFound, match="crypto-shredded"):
            pl.unwrap(row.wrapped, row.header, authorize(log_key, [row.header]), REQUESTER)
    assert pl.journal()[-1].outcome == "denied"
    read_all(pl, log_key, bob)  # others are untouched
    with pytest.raises(BadRequest, match="crypto-shredded"):
        ingest(pl, ALICE, 1, tag="again")
    assert pl.shred(ALICE) is False  # twice is harmless
    assert pl.status().shredded == 1
    assert pl.status().subjects == 1


def test_a_batch_with_a_shredded_subject_releases_nothing(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    rows = ingest(pl, BOB, 2) + ingest(pl, ALICE, 1)
    pl.shred(ALICE)
    with pytest.raises(NotFound):
        read_all(pl, log_key, rows)


def test_shredded_data_is_unrecoverable_from_everything_left_on_disk(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    rows = ingest(pl, ALICE, 4) + ingest(pl, BOB, 1)
    # What an attacker would need: the subject key, its sealed form, or any data key.
    subject_key = pl._subject_key(ALICE, create=False)
    sealed = pl._subjects.get(ALICE)
    assert sealed is not None
    data_keys = [
        pl.unwrap(r.wrapped, r.header, authorize(log_key, [r.header]), REQUESTER) for r in rows[:4]
    ]
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for r in rows:  # the ciphertext and wrapped keys stay on disk, as the gateway leaves them
        (blobs / r.header.record_id).write_bytes(r.blob + r.wrapped.blob)
    store = subjects_path(key_path)
    wal = store.with_name(store.name + "-wal")
    assert sealed[2] in store.read_bytes() + wal.read_bytes()  # in the file or its log

    pl.shred(ALICE)
    pl.close()

    everything = b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())
    for secret in (subject_key, sealed[2], *data_keys):
        assert secret not in everything
    leftovers = {p.name for p in key_path.parent.iterdir()}
    assert leftovers == {"PL.key", "PL.subjects.db"}  # no journal or WAL holding old pages

    # A custodian reopened from those files, and every KEK it holds, opens none of her keys.
    again = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=Clock())
    for r in rows[:4]:
        with pytest.raises(NotFound):
            again.unwrap(r.wrapped, r.header, authorize(log_key, [r.header]), REQUESTER)
    read_all(again, log_key, rows[4:])
    db = sqlite3.connect(subjects_path(key_path))
    assert (
        db.execute("SELECT COUNT(*) FROM subject_keys WHERE subject = ?", (ALICE,)).fetchone()[0]
        == 0
    )
    db.close()


def test_shred_refuses_a_name_that_is_not_a_commitment(pl: LocalCustodian) -> None:
    with pytest.raises(BadRequest, match="commitment"):
        pl.shred("alice@example.pl")


# -- rotation --------------------------------------------------------------------------------


def test_rotation_rewraps_subject_keys_and_destroys_the_old_version(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    rows = [r for s in SUBJECTS[:10] for r in ingest(pl, s, 2)]
    wrapped_before = [r.wrapped for r in rows]
    assert pl.rotate() == 2
    assert dict(pl.status().versions) == {1: 10, 2: 0}
    read_all(pl, log_key, rows)  # still opens mid-rotation
    assert pl.destroy_unused() == []  # v1 is still in use

    seen: list[tuple[int, int]] = []
    assert pl.rewrap(batch=3, progress=lambda done, total: seen.append((done, total))) == 10
    assert seen[-1] == (10, 10)
    assert len(seen) == 4
    assert dict(pl.status().versions) == {1: 0, 2: 10}
    assert pl.destroy_unused() == [1]
    assert [k["version"] for k in json.loads(key_path.read_text())["keks"]] == [2]
    assert [r.wrapped for r in rows] == wrapped_before  # no record or wrapped key touched
    read_all(pl, log_key, rows)

    reopened = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=Clock())
    assert dict(reopened.status().versions) == {2: 10}
    read_all(reopened, log_key, rows)
    new = ingest(reopened, SUBJECTS[11], 1)
    assert new[0].header.kek_version == 2
    read_all(reopened, log_key, new)


def test_rewrap_skips_a_subject_shredded_meanwhile(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    for s in SUBJECTS[:4]:
        ingest(pl, s, 1)
    pl.rotate()
    pl.shred(SUBJECTS[0])
    assert pl.rewrap() == 3
    assert dict(pl.status().versions) == {1: 0, 2: 3}


def test_an_unknown_kek_version_fails_and_shows_in_status(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    rows = ingest(pl, ALICE, 1)
    pl.rotate()
    # Simulate a KEK file that lost version 1 while a subject key still depends on it.
    body: dict[str, Any] = json.loads(key_path.read_text())
    body["keks"] = [k for k in body["keks"] if k["version"] != 1]
    write_secret(key_path, json.dumps(body).encode(), overwrite=True)
    broken = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=Clock())
    assert dict(broken.status().orphaned) == {1: 1}
    with pytest.raises(IntegrityError, match="failed authentication"):
        read_all(broken, log_key, rows)


def test_create_refuses_a_leftover_subject_store(
    key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    key_path.parent.mkdir()
    subjects_path(key_path).write_bytes(b"")
    with pytest.raises(Exception, match="already exists"):
        LocalCustodian.create(key_path, "PL", log_key.public_key())


# -- batched unwrap --------------------------------------------------------------------------


def test_batch_is_all_or_nothing(pl: LocalCustodian, log_key: Ed25519PrivateKey) -> None:
    rows = ingest(pl, ALICE, 3)
    partial = authorize(log_key, [r.header for r in rows[:2]])
    released = len([e for e in pl.journal() if e.outcome == "released"])
    with pytest.raises(Denied, match="does not cover this record"):
        pl.unwrap_many([(r.wrapped, r.header) for r in rows], partial, REQUESTER)
    assert len([e for e in pl.journal() if e.outcome == "released"]) == released


@pytest.mark.parametrize("size", [0, MAX_BATCH + 1])
def test_batch_size_is_bounded(pl: LocalCustodian, log_key: Ed25519PrivateKey, size: int) -> None:
    (row,) = ingest(pl, ALICE, 1)
    with pytest.raises(BadRequest, match="batch"):
        pl.unwrap_many([(row.wrapped, row.header)] * size, authorize(log_key, []), REQUESTER)


def test_a_running_custodian_follows_a_rotation_made_by_another_process(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    rows = ingest(pl, ALICE, 2)
    admin = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=Clock())
    admin.rotate()
    admin.rewrap()
    assert admin.destroy_unused() == [1]
    read_all(pl, log_key, rows)  # the serving one reloads the KEK file and still opens them
    assert pl.current_kek_version == 2
    (new,) = ingest(pl, BOB, 1)
    assert new.header.kek_version == 2
    assert dict(admin.status().versions) == {2: 2}


def test_a_shred_by_another_process_reaches_a_running_custodian_at_once(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    rows = ingest(pl, ALICE, 1)
    read_all(pl, log_key, rows)  # her key is now in the running custodian's cache
    admin = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=Clock())
    assert admin.shred(ALICE) is True
    with pytest.raises(NotFound, match="crypto-shredded"):
        read_all(pl, log_key, rows)


# -- batched calls: wrap_many, protect_many, unwrap_batches ----------------------------------
# Each call is all or none per request, every release is checked against its own logged
# allow, and the subject keys a call makes are stored in one transaction of the store.

MANY = [subject_commitment(b"c" * 32, "PL", f"many-{i}") for i in range(120)]
CAROL = subject_commitment(b"c" * 32, "PL", "carol")
PESEL = "44051401359"


def ingest_many(custodian: LocalCustodian, headers: list[RecordHeader]) -> list[Stored]:
    sealed = [seal(h, f"content of {h.record_id}".encode()) for h in headers]
    wrapped = custodian.wrap_many([(key, h) for h, (_, key) in zip(headers, sealed, strict=True)])
    return [
        Stored(h, blob, w, f"content of {h.record_id}".encode())
        for h, (blob, _), w in zip(headers, sealed, wrapped, strict=True)
    ]


def stored_subjects(key_path: Path) -> set[str]:
    with sqlite3.connect(subjects_path(key_path)) as db:
        return {row[0] for row in db.execute("SELECT subject FROM subject_keys")}


# wrap_many --------------------------------------------------------------------------------


def test_wrap_many_wraps_each_key_for_its_own_record(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    headers = [header(f"r-{i}", MANY[i % 5]) for i in range(20)]
    rows = ingest_many(pl, headers)
    assert pl.status().subjects == 5
    keys = pl.unwrap_many(
        [(r.wrapped, r.header) for r in rows], authorize(log_key, headers), REQUESTER
    )
    for row, key in zip(rows, keys, strict=True):
        assert open_blob(row.header, row.blob, key) == row.plaintext
    assert [e.outcome for e in pl.journal() if e.operation == "wrap"] == ["wrapped"] * 20
    # A key wrapped in a batch opens only for its own header, as one wrapped alone.
    with pytest.raises(IntegrityError):
        pl.unwrap(rows[0].wrapped, headers[1], authorize(log_key, [headers[1]]), REQUESTER)


def test_wrap_many_makes_its_new_subject_keys_in_one_transaction(
    pl: LocalCustodian, key_path: Path
) -> None:
    statements: list[str] = []
    pl._subjects._db.set_trace_callback(statements.append)
    ingest_many(pl, [header(f"r-{i}", MANY[i]) for i in range(100)])
    writes = [s.split()[0] for s in statements if s.split()[0] in {"BEGIN", "INSERT", "COMMIT"}]
    assert writes == ["BEGIN"] + ["INSERT"] * 100 + ["COMMIT"]
    assert stored_subjects(key_path) == set(MANY[:100])


def test_a_call_reads_and_makes_its_subject_keys_in_one_store_transaction(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    statements: list[str] = []
    pl._subjects._db.set_trace_callback(statements.append)
    headers = [header(f"r-{i}", MANY[i]) for i in range(5)]
    rows = ingest_many(pl, headers)
    # The store's version, the lookup and the new keys: all inside one transaction.
    kinds = [s.split()[0] for s in statements]
    assert (kinds[0], kinds[-1], kinds.count("BEGIN")) == ("BEGIN", "COMMIT", 1)
    # The next request finds the keys cached: the store's version is all it reads.
    statements.clear()
    pl.protect_many([(h, [("tokenize", "pl_pesel", PESEL)]) for h in headers])
    assert statements == ["PRAGMA data_version"]
    # A process that has cached nothing reads a batch's keys in one transaction too.
    other = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=Clock())
    other._subjects._db.set_trace_callback(statements.append)
    statements.clear()
    read_all(other, log_key, rows[:1])
    kinds = [s.split()[0] for s in statements]
    assert (kinds[0], kinds[-1], kinds.count("BEGIN")) == ("BEGIN", "COMMIT", 1)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("short key", r"item 3: record r-3: a data key is 32 bytes, got 31"),
        ("jurisdiction", r"item 3: record r-3 belongs to jurisdiction VN"),
        ("kek version", r"item 3: record r-3 names KEK version 2"),
        ("shredded", r"item 3: record r-3: the subject's key was destroyed \(crypto-shredded\)"),
    ],
)
def test_wrap_many_is_all_or_none(
    pl: LocalCustodian, key_path: Path, fault: str, message: str
) -> None:
    pl.shred(CAROL)
    items = [(bytes(32), header(f"r-{i}", MANY[10 + i])) for i in range(6)]
    key, hdr = items[3]
    items[3] = {
        "short key": (bytes(31), hdr),
        "jurisdiction": (key, replace(hdr, jurisdiction="VN")),
        "kek version": (key, replace(hdr, kek_version=2)),
        "shredded": (key, replace(hdr, subject=CAROL)),
    }[fault]
    with pytest.raises(BadRequest, match=message):
        pl.wrap_many(items)
    assert stored_subjects(key_path) == set()
    journal = [e for e in pl.journal() if e.operation == "wrap"]
    assert [e.outcome for e in journal] == ["refused"] * 6
    assert journal[3].record_id == "r-3"
    assert journal[0].reason == "item 3 of the batch was refused"
    assert journal[3].reason != journal[0].reason


def test_one_wrap_keeps_its_message_and_journal(pl: LocalCustodian) -> None:
    with pytest.raises(BadRequest, match=r"^record r-1: a data key is 32 bytes, got 5$"):
        pl.wrap(b"short", header("r-1"))
    (entry,) = pl.journal()
    assert (entry.outcome, entry.record_id) == ("refused", "r-1")


@pytest.mark.parametrize("count", [0, MAX_BATCH + 1])
def test_wrap_many_bounds_its_batch(pl: LocalCustodian, count: int) -> None:
    with pytest.raises(BadRequest, match=f"1..{MAX_BATCH} keys, got {count}"):
        pl.wrap_many([(bytes(32), header(f"r-{i}")) for i in range(count)])


def test_subject_keys_of_a_batch_survive_a_crash_whole_or_not_at_all(
    key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    """The process is killed inside the batch's write, after 150 of its 200 inserts: the
    store then holds none of the batch, never some of it; the batch before is whole."""
    key_path.parent.mkdir()
    LocalCustodian.create(key_path, "PL", log_key.public_key()).close()
    pem = log_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    script = textwrap.dedent(
        f"""
        import os, signal
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
        from sovra.keys import LocalCustodian
        from sovra.model import RecordHeader, subject_commitment

        pl = LocalCustodian.open({str(key_path)!r}, "PL", load_pem_public_key({pem!r}))
        def batch(tag):
            return [
                (bytes(32), RecordHeader(f"r-{{tag}}-{{i}}",
                    subject_commitment(b"c" * 32, "PL", f"{{tag}}-{{i}}"), "PL", "eu", 1))
                for i in range(200)
            ]
        pl.wrap_many(batch("first"))
        inserts = 0
        def trace(statement):
            global inserts
            if statement.startswith("INSERT"):
                inserts += 1
                if inserts == 150:
                    os.kill(os.getpid(), signal.SIGKILL)
        pl._subjects._db.set_trace_callback(trace)
        pl.wrap_many(batch("second"))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, check=False, timeout=60)
    assert done.returncode == -signal.SIGKILL
    subjects = stored_subjects(key_path)
    first = {subject_commitment(b"c" * 32, "PL", f"first-{i}") for i in range(200)}
    second = {subject_commitment(b"c" * 32, "PL", f"second-{i}") for i in range(200)}
    assert subjects == first
    assert not subjects & second
    # The store opens again and makes the second batch's keys on the next try.
    pl = LocalCustodian.open(key_path, "PL", log_key.public_key())
    pl.wrap_many([(bytes(32), header(f"r-{i}", s)) for i, s in enumerate(sorted(second))])
    assert stored_subjects(key_path) == first | second
    pl.close()


# -- protect_many -----------------------------------------------------------------------------


def test_protect_many_protects_each_record_under_its_subject(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    requests = [
        (
            header(f"r-{i}", MANY[i % 3]),
            [("tokenize", "pl_pesel", PESEL), ("seal", "iban", "X")],
        )
        for i in range(6)
    ]
    out = pl.protect_many(requests)
    assert len(out) == 6 and all(len(bodies) == 2 for bodies in out)
    # Tokens are the ones protect gives: per subject, the same across her records.
    (token,) = pl.protect(header("r-x", MANY[1]), [("tokenize", "pl_pesel", PESEL)])
    assert out[1][0] == out[4][0] == token
    assert out[0][0] != out[1][0]
    h = requests[5][0]
    allow = logged_allow(log_key, [h], principal=REQUESTER, action="reveal", time_ms=NOW)
    revealed = pl.reveal([(h, "seal", "iban", out[5][1])], allow, REQUESTER)
    assert revealed == ["X"]
    protects = [e for e in pl.journal() if e.operation == "protect"]
    assert [e.outcome for e in protects] == ["protected"] * 7


def test_protect_many_is_all_or_none(pl: LocalCustodian, key_path: Path) -> None:
    pl.shred(CAROL)
    requests = [(header(f"r-{i}", MANY[10 + i]), [("seal", "iban", "X")]) for i in range(4)]
    requests[2] = (header("r-2", CAROL), [("seal", "iban", "X")])
    with pytest.raises(BadRequest, match=r"item 2: record r-2: .*crypto-shredded"):
        pl.protect_many(requests)
    requests[2] = (header("r-2", BOB), [("shout", "iban", "X")])
    with pytest.raises(BadRequest, match=r"item 2: item 0: mode must be"):
        pl.protect_many(requests)
    assert stored_subjects(key_path) == set()
    protects = [e for e in pl.journal() if e.operation == "protect"]
    assert [e.outcome for e in protects] == ["refused"] * 8


def test_protect_many_bounds_its_call(pl: LocalCustodian) -> None:
    with pytest.raises(BadRequest, match=f"1..{MAX_BATCH} requests, got 0"):
        pl.protect_many([])
    values = [("tokenize", "pl_pesel", PESEL)] * 10_000
    with pytest.raises(BadRequest, match=f"at most {MAX_BATCH_VALUES} values"):
        pl.protect_many([(header(f"r-{i}"), values) for i in range(3)])


# -- unwrap_batches ---------------------------------------------------------------------------


def request(
    rows: list[Stored], allow: ReleaseAuthorization | None, requester: str = REQUESTER
) -> tuple[list[tuple[WrappedKey, RecordHeader]], ReleaseAuthorization | None, str]:
    return ([(r.wrapped, r.header) for r in rows], allow, requester)


def test_unwrap_batches_decides_each_request_on_its_own(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    rows = ingest_many(pl, [header(f"r-{i}", MANY[i]) for i in range(8)])
    tampered = replace(rows[5], wrapped=replace(rows[5].wrapped, blob=bytes(60)))
    pl.shred(rows[6].header.subject)
    allow = {n: authorize(log_key, [rows[n].header]) for n in range(8)}
    requests = [
        request(rows[0:1], allow[0]),
        request(rows[1:2], None),  # no allow
        request(rows[2:3], allow[0]),  # another record's allow
        request(
            rows[3:4],
            logged_allow(log_key, [rows[3].header], principal=REQUESTER, time_ms=NOW - 400_000),
        ),
        request(rows[4:5], allow[4], requester="svc-other"),  # issued to someone else
        request([tampered], allow[5]),
        request(rows[6:7], allow[6]),  # shredded
        request(rows[7:8], allow[7]),
        request(rows[0:1], allow[0], requester="has space"),
    ]
    results = pl.unwrap_batches(requests)
    kinds = [type(r).__name__ if isinstance(r, SovraError) else "keys" for r in results]
    assert kinds == [
        "keys", "Denied", "Denied", "Denied", "Denied",
        "IntegrityError", "NotFound", "keys", "BadRequest",
    ]  # fmt: skip
    for n in (0, 7):
        keys = results[n]
        assert isinstance(keys, list)
        assert open_blob(rows[n].header, rows[n].blob, keys[0]) == rows[n].plaintext
    assert isinstance(results[3], Denied) and "ms old" in results[3].message
    assert isinstance(results[6], NotFound) and "record r-6" in results[6].message
    outcomes = [(e.record_id, e.outcome) for e in pl.journal() if e.operation == "unwrap"]
    assert outcomes == [
        ("r-1", "denied"), ("r-2", "denied"), ("r-3", "denied"), ("r-4", "denied"),
        ("r-0", "refused"), ("r-0", "released"), ("r-5", "failed"), ("r-6", "denied"),
        ("r-7", "released"),
    ]  # fmt: skip


def test_unwrap_batches_releases_a_request_all_or_none(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    rows = ingest_many(pl, [header(f"r-{i}", MANY[i % 2]) for i in range(6)])
    bad = replace(rows[4], wrapped=replace(rows[4].wrapped, blob=bytes(60)))
    headers = [r.header for r in rows]
    results = pl.unwrap_batches(
        [
            request([*rows[:4], bad, rows[5]], authorize(log_key, headers)),
            request(rows, authorize(log_key, headers[:5])),  # does not cover r-5
            request(rows, authorize(log_key, headers)),
        ]
    )
    assert isinstance(results[0], IntegrityError) and "record r-4" in results[0].message
    assert isinstance(results[1], Denied) and "r-5" in results[1].message
    assert isinstance(results[2], list) and len(results[2]) == 6
    released = [e.record_id for e in pl.journal() if e.outcome == "released"]
    assert released == [h.record_id for h in headers]


def test_every_release_of_a_call_needs_its_own_allow(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    """One allow in a call does not carry over to another request of that call."""
    rows = ingest_many(pl, [header("r-0", ALICE), header("r-1", ALICE)])
    allow = authorize(log_key, [rows[0].header])
    results = pl.unwrap_batches([request(rows[:1], allow), request(rows[1:], allow)])
    assert isinstance(results[0], list)
    assert isinstance(results[1], Denied)
    assert "does not cover this record" in results[1].message


def test_unwrap_batches_checks_every_allow_before_it_opens_anything(
    pl: LocalCustodian, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = (WrappedKey("PL", 1, b"garbage"), header("r-0"))
    with caplog.at_level(logging.WARNING, logger="sovra.keys.custodian"):
        results = pl.unwrap_batches([([garbage], None, REQUESTER)] * 3)
    assert all(isinstance(r, Denied) for r in results)
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("count", "per_request", "message"),
    [
        (0, 1, f"1..{MAX_BATCH} requests, got 0"),
        (MAX_BATCH + 1, 1, f"1..{MAX_BATCH} requests, got {MAX_BATCH + 1}"),
        (11, MAX_BATCH, f"at most {MAX_BATCH_KEYS} keys, got {11 * MAX_BATCH}"),
    ],
)
def test_unwrap_batches_bounds_its_call(
    pl: LocalCustodian, count: int, per_request: int, message: str
) -> None:
    item = (WrappedKey("PL", 1, bytes(60)), header("r-0"))
    with pytest.raises(BadRequest, match=message):
        pl.unwrap_batches([([item] * per_request, None, REQUESTER)] * count)
    assert pl.journal() == ()


def test_an_empty_request_in_a_call_is_refused_in_its_slot(
    pl: LocalCustodian, log_key: Ed25519PrivateKey
) -> None:
    rows = ingest_many(pl, [header("r-0")])
    results = pl.unwrap_batches(
        [([], None, REQUESTER), request(rows, authorize(log_key, [rows[0].header]))]
    )
    assert isinstance(results[0], BadRequest)
    assert isinstance(results[1], list)


def test_two_custodians_making_one_subjects_key_at_once_agree_on_it(
    pl: LocalCustodian, key_path: Path, log_key: Ed25519PrivateKey
) -> None:
    """A second process over the same store (a second gateway worker) made her key between
    this custodian's lookup and its write: the write keeps that key and wraps under it, so
    records wrapped by either open under the one stored key."""
    other = LocalCustodian.open(key_path, "PL", log_key.public_key(), clock=Clock())
    first = ingest_many(other, [header("r-0", MANY[0])])
    lookup = pl._subjects.lookup
    pl._subjects.lookup = lambda subjects: ({}, {})  # type: ignore[method-assign]
    try:  # as if the lookup ran before the other process committed
        second = ingest_many(pl, [header("r-1", MANY[0])])
    finally:
        pl._subjects.lookup = lookup  # type: ignore[method-assign]
    assert stored_subjects(key_path) == {MANY[0]}
    for custodian in (pl, other):
        for row in first + second:
            allow = authorize(log_key, [row.header])
            key = custodian.unwrap(row.wrapped, row.header, allow, REQUESTER)
            assert open_blob(row.header, row.blob, key) == row.plaintext
    other.close()
