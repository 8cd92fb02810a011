"""The subject-key store's change detection: another connection's commit is seen at once.

A running custodian drops its cache of subject keys when :meth:`SubjectKeyStore.data_version`
changes, so a shred made by ``sovra keys shred`` in another process takes effect on the
next request. The store answers from the database header when it can; these tests pin that
every commit of another connection still changes the answer, whatever it changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sovra.keys.subjects import SubjectKeyStore
from sovra.model import subject_commitment

SUBJECTS = [subject_commitment(b"c" * 32, "PL", f"person-{i}") for i in range(40)]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SubjectKeyStore, SubjectKeyStore]]:
    path = tmp_path / "PL.subjects.db"
    serving, admin = SubjectKeyStore(path), SubjectKeyStore(path)
    try:
        yield serving, admin
    finally:
        serving.close()
        admin.close()


def _pragmas(store: SubjectKeyStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(lambda sql: seen.append(sql) if "data_version" in sql else None)
    return seen


def test_every_commit_of_another_connection_changes_the_version(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    serving, admin = stores
    versions = [serving.data_version()]
    for n, subject in enumerate(SUBJECTS[:10]):
        admin.insert_many([(subject, 1, b"s" * 60)], n)
        versions.append(serving.data_version())
        assert versions[-1] != versions[-2]
        assert serving.data_version() == versions[-1]  # stable until the next commit
    # A shred changes no page count and may free nothing: still seen.
    for subject in SUBJECTS[:10]:
        admin.shred(subject, 99)
        before = versions[-1]
        versions.append(serving.data_version())
        assert versions[-1] != before
    # A rewrap rewrites rows in place.
    for subject in SUBJECTS[10:12]:
        admin.insert_many([(subject, 1, b"s" * 60)], 1)
    before = serving.data_version()
    assert admin.replace([(SUBJECTS[10], 1, 2, b"t" * 60)]) == 1
    assert serving.data_version() != before


def test_a_commit_changing_nothing_the_header_counts_is_still_seen(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    serving, admin = stores
    admin.insert_many([(SUBJECTS[0], 1, b"s" * 60)], 1)
    before = serving.data_version()
    # Same size, same row count: only the change counter moves.
    assert admin.replace([(SUBJECTS[0], 1, 1, b"u" * 60)]) == 1
    assert serving.data_version() != before


def test_own_commits_and_quiet_periods_do_not_ask_sqlite(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    serving, admin = stores
    seen = _pragmas(serving)
    version = serving.data_version()
    assert len(seen) == 1
    for _ in range(20):
        assert serving.data_version() == version
    assert len(seen) == 1  # answered from the header
    serving.insert_many([(SUBJECTS[0], 1, b"s" * 60)], 1)
    assert serving.data_version() == version  # its own commit is not another's
    assert len(seen) == 2  # the header moved, so SQLite was asked once
    admin.insert_many([(SUBJECTS[1], 1, b"s" * 60)], 1)
    assert serving.data_version() != version
    assert len(seen) == 3


def test_a_store_in_another_journal_mode_always_asks_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "PL.subjects.db"
    serving = SubjectKeyStore(path)
    try:
        other = sqlite3.connect(path, isolation_level=None)
        assert other.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
        seen = _pragmas(serving)
        version = serving.data_version()
        serving.data_version()
        assert len(seen) == 2  # no shortcut: in WAL mode the header does not move
        other.execute(
            "INSERT INTO shredded VALUES (?, ?)",
            (SUBJECTS[0], 1),
        )
        assert serving.data_version() != version
        other.close()
    finally:
        serving.close()


def test_a_key_another_process_made_meanwhile_is_kept_and_handed_back(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    """Two gateway workers make a key for the same new subject at once: the second write
    keeps the first key (no error, no second key) and returns it to be used instead."""
    serving, admin = stores
    assert admin.insert_many([(SUBJECTS[0], 1, b"a" * 60)], 1) == {}
    stored = serving.insert_many([(SUBJECTS[0], 1, b"b" * 60), (SUBJECTS[1], 1, b"b" * 60)], 2)
    assert stored == {SUBJECTS[0]: (SUBJECTS[0], 1, b"a" * 60)}
    keys, _ = admin.lookup([SUBJECTS[0], SUBJECTS[1]])
    assert keys[SUBJECTS[0]][2] == b"a" * 60
    assert keys[SUBJECTS[1]][2] == b"b" * 60
