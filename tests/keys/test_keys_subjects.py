"""The subject-key store in WAL mode: another connection's commit is seen at once, and a
shredded or replaced sealed key leaves no bytes in any file while the store is open.

A running custodian drops its cache of subject keys when :meth:`SubjectKeyStore.data_version`
changes, so a shred made by ``sovra keys shred`` in another process takes effect on the
next request.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sovra.errors import ConfigError
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


def test_own_commits_do_not_change_the_version(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    serving, admin = stores
    version = serving.data_version()
    serving.insert_many([(SUBJECTS[0], 1, b"s" * 60)], 1)
    assert serving.data_version() == version  # its own commit is not another's
    admin.insert_many([(SUBJECTS[1], 1, b"s" * 60)], 1)
    assert serving.data_version() != version


def _on_disk(path: Path) -> bytes:
    """Every byte of the store's files: the database, its log and its shared index."""
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_the_store_runs_in_wal_mode_with_full_syncs(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    serving, _ = stores
    assert serving._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert serving._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert serving._db.execute("PRAGMA secure_delete").fetchone() == (1,)


def test_a_shredded_key_leaves_no_bytes_in_any_file_while_the_store_is_open(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    serving, admin = stores
    sealed = [bytes([i]) * 12 + b"sealed-key-%02d" % i + bytes(34) for i in range(20)]
    serving.insert_many([(s, 1, k) for s, k in zip(SUBJECTS[:20], sealed, strict=True)], 1)
    serving.get(SUBJECTS[0])  # the other connection holds the store open too
    assert sealed[3] in _on_disk(serving.path)  # in the log (or the file) before
    assert admin.shred(SUBJECTS[3], 5) is True
    on_disk = _on_disk(serving.path)
    assert sealed[3] not in on_disk
    assert sealed[4] in on_disk  # the neighbours' keys are kept
    assert serving.get(SUBJECTS[3]) is None
    assert serving.get(SUBJECTS[4]) == (SUBJECTS[4], 1, sealed[4])


def test_a_replaced_sealed_key_leaves_no_bytes_in_any_file(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    serving, admin = stores
    old, new = b"old-sealed-key-" + bytes(45), b"new-sealed-key-" + bytes(45)
    serving.insert_many([(SUBJECTS[0], 1, old)], 1)
    assert admin.replace([(SUBJECTS[0], 1, 2, new)]) == 1
    on_disk = _on_disk(serving.path)
    assert old not in on_disk
    assert new in on_disk


def test_a_reader_holding_the_log_fails_the_shred_until_a_retry_erases_it(
    stores: tuple[SubjectKeyStore, SubjectKeyStore],
) -> None:
    serving, admin = stores
    sealed = b"reader-kept-key-" + bytes(44)
    serving.insert_many([(SUBJECTS[0], 1, sealed)], 1)
    reader = sqlite3.connect(serving.path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM subject_keys").fetchone()  # a snapshot held
        admin._db.execute("PRAGMA busy_timeout=50")
        with pytest.raises(ConfigError, match="could not be checkpointed"):
            admin.shred(SUBJECTS[0], 5)
        assert admin.get(SUBJECTS[0]) is None  # deleted and tombstoned all the same
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert admin.shred(SUBJECTS[0], 6) is False  # the retry: nothing left to delete
    assert sealed not in _on_disk(serving.path)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make files another user owns")
def test_side_files_a_root_process_makes_belong_to_the_stores_owner(tmp_path: Path) -> None:
    path = tmp_path / "PL.subjects.db"
    SubjectKeyStore(path).close()
    os.chown(path, 4321, 4321)
    store = SubjectKeyStore(path)  # as root
    try:
        store.insert_many([(SUBJECTS[0], 1, b"s" * 60)], 1)
        for suffix in ("-wal", "-shm"):
            side = os.stat(path.with_name(path.name + suffix))
            assert (side.st_uid, side.st_gid) == (4321, 4321)
            assert stat.S_IMODE(side.st_mode) & 0o077 == 0
    finally:
        store.close()


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
