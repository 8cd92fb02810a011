"""Every subject-key store (the SQLite file, PostgreSQL) keeps the same promises: sealed
rows stored all or none, no key ever again for a shredded subject, a shred seen by every
process at once, and the key gone from the store's data when the shred returns."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from sovra.errors import BadRequest, ConfigError
from sovra.keys.subjects import SubjectKeys, SubjectKeyStore, SubjectShredded, open_subject_keys
from sovra.keys.subjects_postgres import PostgresSubjectKeyStore
from sovra.model import subject_commitment

SUBJECTS = [subject_commitment(b"c" * 32, "PL", f"person-{i}") for i in range(8)]
SEALED = [secrets.token_bytes(60) for _ in SUBJECTS]
Opener = Callable[[], SubjectKeys]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def location(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return str(tmp_path / "PL.subjects.db")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def open_store(kind: str, location: str) -> Iterator[Opener]:
    """Opens the store at one place, each call a process's own connection(s)."""
    opened: list[SubjectKeys] = []

    def open_one() -> SubjectKeys:
        store: SubjectKeys = (
            SubjectKeyStore(location)
            if kind == "sqlite"
            else PostgresSubjectKeyStore(location, "PL")
        )
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def test_keys_round_trip_and_a_second_writer_gets_the_first_key(open_store: Opener) -> None:
    first, second = open_store(), open_store()
    assert first.insert_many([(SUBJECTS[0], 1, SEALED[0]), (SUBJECTS[1], 1, SEALED[1])], 5) == {}
    assert second.get(SUBJECTS[0]) == (SUBJECTS[0], 1, SEALED[0])
    # The other process offers another key for a subject that has one: it gets hers.
    taken = second.insert_many([(SUBJECTS[1], 1, SEALED[7]), (SUBJECTS[2], 1, SEALED[2])], 6)
    assert taken == {SUBJECTS[1]: (SUBJECTS[1], 1, SEALED[1])}
    keys, shredded = first.lookup(SUBJECTS[:4])
    assert sorted(keys) == sorted(SUBJECTS[:3]) and shredded == {}
    assert first.counts() == {1: 3}


def test_a_shredded_subject_never_gets_a_key_again(open_store: Opener) -> None:
    serving, admin = open_store(), open_store()
    serving.insert_many([(SUBJECTS[0], 1, SEALED[0])], 1)
    version = serving.data_version()
    assert admin.shred(SUBJECTS[0], 42) is True
    assert serving.data_version() != version  # the serving process drops its cache
    assert serving.get(SUBJECTS[0]) is None
    assert serving.lookup([SUBJECTS[0]]) == ({}, {SUBJECTS[0]: 42})
    with pytest.raises(SubjectShredded):
        serving.insert_many([(SUBJECTS[1], 1, SEALED[1]), (SUBJECTS[0], 1, SEALED[0])], 2)
    assert serving.get(SUBJECTS[1]) is None  # all or none
    assert admin.shred(SUBJECTS[0], 50) is False  # twice is harmless; the first time stands
    assert serving.lookup([SUBJECTS[0]])[1] == {SUBJECTS[0]: 42}
    assert serving.shredded_count() == 1


def test_racing_shred_and_insert_never_leave_a_key_beside_a_tombstone(open_store: Opener) -> None:
    stores = [open_store() for _ in range(4)]
    for round_ in range(6):
        subject = subject_commitment(b"r" * 32, "PL", f"race-{round_}")
        outcomes: list[str] = []

        def insert(
            store: SubjectKeys, subject: str = subject, outcomes: list[str] = outcomes
        ) -> None:
            try:
                store.insert_many([(subject, 1, secrets.token_bytes(60))], 1)
                outcomes.append("stored")
            except SubjectShredded:
                outcomes.append("refused")

        threads = [threading.Thread(target=insert, args=(s,)) for s in stores[:3]]
        threads.append(threading.Thread(target=lambda s=subject: stores[3].shred(s, 9)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        keys, shredded = stores[0].lookup([subject])
        assert shredded == {subject: 9}
        assert keys == {}, f"round {round_}: a key outlived the shred ({outcomes})"


def test_fetch_reads_and_makes_keys_in_one_call(open_store: Opener) -> None:
    serving, admin = open_store(), open_store()
    serving.insert_many([(SUBJECTS[0], 1, SEALED[0])], 1)
    admin.insert_many([(SUBJECTS[1], 1, SEALED[1])], 1)
    asked: list[list[str]] = []

    def make(subjects: list[str]) -> list[tuple[str, int, bytes]]:
        asked.append(subjects)
        return [(s, 2, SEALED[SUBJECTS.index(s)]) for s in subjects]

    got = serving.fetch(SUBJECTS[:4], make, 7)
    # Only the subjects without a key are made, once; all four come back.
    assert asked == [SUBJECTS[2:4]]
    assert got.keys == {
        SUBJECTS[0]: (SUBJECTS[0], 1, SEALED[0]),
        SUBJECTS[1]: (SUBJECTS[1], 1, SEALED[1]),
        SUBJECTS[2]: (SUBJECTS[2], 2, SEALED[2]),
        SUBJECTS[3]: (SUBJECTS[3], 2, SEALED[3]),
    }
    assert got.shredded == {} and got.version == serving.data_version()
    assert admin.lookup(SUBJECTS[:4])[0] == got.keys
    # Without make, nothing is stored; a shred shows in the version and the tombstones.
    assert admin.shred(SUBJECTS[3], 40) is True
    got = serving.fetch(SUBJECTS[3:6], None, 8)
    assert (got.keys, got.shredded) == ({}, {SUBJECTS[3]: 40})
    assert got.version == serving.data_version()
    # With a shredded subject in the call, nothing is made or stored.
    assert serving.fetch(SUBJECTS[3:6], make, 9).shredded == {SUBJECTS[3]: 40}
    assert len(asked) == 1 and admin.lookup(SUBJECTS[4:6]) == ({}, {})


@pytest.mark.postgres
def test_fetch_keeps_what_another_process_did_between_read_and_insert(pg_dsn: str) -> None:
    # PostgreSQL only: the SQLite store reads under the write lock, nothing comes between.
    serving, other = PostgresSubjectKeyStore(pg_dsn, "PL"), PostgresSubjectKeyStore(pg_dsn, "PL")

    def racing(subjects: list[str]) -> list[tuple[str, int, bytes]]:
        # Another custodian process keys one subject and shreds another meanwhile.
        other.insert_many([(SUBJECTS[0], 1, SEALED[7])], 1)
        return [(s, 1, SEALED[SUBJECTS.index(s)]) for s in subjects]

    got = serving.fetch(SUBJECTS[:2], racing, 2)
    assert got.keys == {
        SUBJECTS[0]: (SUBJECTS[0], 1, SEALED[7]),  # hers, not the one made here
        SUBJECTS[1]: (SUBJECTS[1], 1, SEALED[1]),
    }

    def shredding(subjects: list[str]) -> list[tuple[str, int, bytes]]:
        other.shred(SUBJECTS[3], 5)
        return [(s, 1, SEALED[SUBJECTS.index(s)]) for s in subjects]

    with pytest.raises(SubjectShredded):
        serving.fetch(SUBJECTS[2:4], shredding, 3)
    assert other.lookup(SUBJECTS[2:4]) == ({}, {SUBJECTS[3]: 5})  # all or none
    serving.close()
    other.close()


def test_rewrap_changes_only_rows_still_under_the_old_version(open_store: Opener) -> None:
    serving, admin = open_store(), open_store()
    serving.insert_many([(s, 1, k) for s, k in zip(SUBJECTS[:3], SEALED, strict=False)], 1)
    admin.shred(SUBJECTS[2], 3)
    version = serving.data_version()
    changed = admin.replace(
        [(SUBJECTS[0], 1, 2, b"n" * 60), (SUBJECTS[1], 9, 2, b"m" * 60), (SUBJECTS[2], 1, 2, b"")]
    )
    assert changed == 1
    assert serving.data_version() != version
    assert serving.sealed_below(2, 10) == [(SUBJECTS[1], 1, SEALED[1])]
    assert serving.counts() == {1: 1, 2: 1}


def test_malformed_subjects_are_refused_before_storage(open_store: Opener) -> None:
    store = open_store()
    for bad in ("", "PL-anna", "A" * 64):
        with pytest.raises(BadRequest):
            store.insert_many([(bad, 1, SEALED[0])], 1)
        with pytest.raises(BadRequest):
            store.shred(bad, 1)
    assert store.counts() == {} and store.shredded_count() == 0


# -- PostgreSQL: the custodian's own database ---------------------------------------------


@pytest.mark.postgres
def test_postgres_store_belongs_to_one_custodian(pg_dsn: str) -> None:
    PostgresSubjectKeyStore(pg_dsn, "PL").close()
    with pytest.raises(ConfigError, match="subject keys of custodian PL, not VN"):
        PostgresSubjectKeyStore(pg_dsn, "VN")


@pytest.mark.postgres
def test_postgres_store_refuses_tables_another_role_may_read(pg_dsn: str) -> None:
    PostgresSubjectKeyStore(pg_dsn, "PL").close()
    role = f"gateway_{secrets.token_hex(4)}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role}")
        admin.execute(f"GRANT SELECT ON subject_keys TO {role}")
    try:
        with pytest.raises(ConfigError, match=f"other roles may use .*{role}"):
            PostgresSubjectKeyStore(pg_dsn, "PL")
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f"REVOKE ALL ON subject_keys FROM {role}")
            admin.execute(f"DROP ROLE {role}")
    PostgresSubjectKeyStore(pg_dsn, "PL").close()


def _subject_keys_pages(pg_dsn: str, data: Path) -> bytes:
    """The bytes of the subject-key table's file, after a checkpoint wrote its pages."""
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("CHECKPOINT")
        row = admin.execute("SELECT pg_relation_filepath('subject_keys')").fetchone()
    assert row is not None
    return (data / str(row[0])).read_bytes()


@pytest.mark.postgres
def test_postgres_shred_removes_the_sealed_key_from_the_tables_pages(
    pg_dsn: str, pg_data: Path
) -> None:
    store = PostgresSubjectKeyStore(pg_dsn, "PL")
    try:
        marker = b"SEALED-KEY-" + secrets.token_hex(20).encode()
        store.insert_many([(SUBJECTS[0], 1, marker), (SUBJECTS[1], 1, SEALED[1])], 1)
        # The check can see it when it is there.
        assert marker in _subject_keys_pages(pg_dsn, pg_data)
        assert store.shred(SUBJECTS[0], 7) is True
        assert marker not in _subject_keys_pages(pg_dsn, pg_data)
        assert store.get(SUBJECTS[1]) == (SUBJECTS[1], 1, SEALED[1])
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_shred_prunes_the_row_once_an_older_snapshot_ends(
    pg_dsn: str, pg_data: Path
) -> None:
    """A session whose snapshot predates the delete keeps the row's bytes from VACUUM;
    the shred waits for it to end (bounded) and prunes the row then."""
    store = PostgresSubjectKeyStore(pg_dsn, "PL")
    reader = psycopg.connect(pg_dsn)
    try:
        marker = b"SEALED-KEY-" + secrets.token_hex(20).encode()
        store.insert_many([(SUBJECTS[2], 1, marker)], 1)
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert reader.execute("SELECT count(*) FROM subject_keys").fetchone() == (1,)
        ending = threading.Timer(0.5, reader.rollback)
        ending.start()
        assert store.shred(SUBJECTS[2], 7) is True
        ending.join()
        assert marker not in _subject_keys_pages(pg_dsn, pg_data)
    finally:
        reader.close()
        store.close()


@pytest.mark.postgres
def test_open_subject_keys_follows_the_database_file(pg_dsn: str, tmp_path: Path) -> None:
    kek = tmp_path / "PL.key"
    sqlite_store = open_subject_keys(kek, "PL", None)
    assert isinstance(sqlite_store, SubjectKeyStore)
    sqlite_store.close()
    (tmp_path / "PL.database").write_text(pg_dsn + "\n")
    pg_store = open_subject_keys(kek, "PL", None)
    try:
        assert isinstance(pg_store, PostgresSubjectKeyStore)
    finally:
        pg_store.close()
