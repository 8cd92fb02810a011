"""The key hierarchy: subject keys, crypto-shredding, rotation by rewrap, batched unwrap."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from _allow import logged_allow
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, Denied, IntegrityError, NotFound
from sovra.keys import LocalCustodian, open_blob, seal
from sovra.keys.custodian import MAX_BATCH
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


def header(record_id: str, subject: str) -> RecordHeader:
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
    assert sealed[2] in subjects_path(key_path).read_bytes()

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
