"""Small records in their region's small-blob file, end to end.

Tampering there is caught on access (the AEAD tag) and by ``sovra check`` (the ingest
entry's hash); blobs written as files before the small-blob file existed stay readable;
a small-blob file lost or emptied while records need it stops the start and shows in
``sovra doctor``, and one replaced by a link is refused.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from sovra import check
from sovra._cli.doctor import examine
from sovra._writer_lock import WRITER_SUFFIX
from sovra.deployment import Deployment
from sovra.errors import ConfigError, IntegrityError
from sovra.store import SMALL_BLOBS_NAME

TEXT = "Anna Kowalska, tel. +48 601 234 567"
PL_REGION = "eu-central-pl"


def _ingest(dep: Deployment, n: int = 1) -> list[str]:
    principal = dep.store.get_principal("svc-pl")
    return [
        dep.gateway.ingest(
            principal, subject_id=f"anna-{i}@example.pl", jurisdiction="PL", content=TEXT
        ).record_id
        for i in range(n)
    ]


def _access(dep: Deployment, rid: str) -> str:
    principal = dep.store.get_principal("svc-pl")
    return dep.gateway.access(principal, purpose="billing", record_ids=[rid]).records[rid]


def _check(dep: Deployment, clock) -> dict[str, list[str]]:
    report = check.check(dep.store, dep.gateway.log, dep.gateway.blobs, now_ms=int(clock() * 1000))
    found: dict[str, list[str]] = {}
    for f in report.findings:
        found.setdefault(f.kind, []).append(f.at)
    return found


def _small_file(root: Path) -> Path:
    return root / "blobs" / PL_REGION / SMALL_BLOBS_NAME


def _every_blob_a_file(root: Path) -> None:
    config = root / "sovra.toml"
    config.write_text(
        config.read_text().replace("small_blob_bytes = 65536", "small_blob_bytes = 1")
    )


def test_a_small_record_costs_no_file_of_its_own(root, clock):
    dep = Deployment.open(root, clock=clock)
    try:
        rids = _ingest(dep, 3)
        assert _check(dep, clock) == {}
    finally:
        dep.close()
    region = root / "blobs" / PL_REGION
    # The small-blob file and the lock its writers queue for: nothing per record.
    assert sorted(p.name for p in region.iterdir()) == [
        SMALL_BLOBS_NAME,
        SMALL_BLOBS_NAME + WRITER_SUFFIX,
    ]
    with closing(sqlite3.connect(_small_file(root))) as db:
        assert sorted(k for (k,) in db.execute("SELECT key FROM blobs")) == sorted(rids)


def test_a_byte_flipped_in_the_small_blob_file_is_caught_by_access_and_check(root, clock):
    dep = Deployment.open(root, clock=clock)
    try:
        rid, other = _ingest(dep, 2)
        sealed = dep.gateway.blobs[PL_REGION].get(rid)
        others_text = _access(dep, other)
    finally:
        dep.close()  # the log of the small-blob file is folded into it on close
    path = _small_file(root)
    raw = bytearray(path.read_bytes())
    at = raw.find(sealed)
    assert at > 0, "the sealed blob is stored as it is, in the region's file"
    raw[at + len(sealed) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    dep = Deployment.open(root, clock=clock)
    try:
        with pytest.raises(IntegrityError, match=rid):
            _access(dep, rid)
        assert _access(dep, other) == others_text  # its neighbour in the file is intact
        assert _check(dep, clock) == {"blob-mismatch": [rid]}
    finally:
        dep.close()


def test_records_stored_as_files_before_stay_readable_beside_small_ones(root, clock):
    _every_blob_a_file(root)
    dep = Deployment.open(root, clock=clock)
    try:
        [old] = _ingest(dep)
        before = _access(dep, old)
    finally:
        dep.close()
    assert not _small_file(root).exists()
    config = root / "sovra.toml"
    config.write_text(
        config.read_text().replace("small_blob_bytes = 1", "small_blob_bytes = 65536")
    )
    dep = Deployment.open(root, clock=clock)
    try:
        assert _access(dep, old) == before
        [new] = _ingest(dep)
        assert _access(dep, new) == before
        store = dep.gateway.blobs[PL_REGION]
        assert store.path_for(old).is_file()
        assert not store.path_for(new).exists()
        assert store.small_blob_count() == 1
        assert _check(dep, clock) == {}
    finally:
        dep.close()


def _delete(path: Path) -> None:
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _empty(path: Path) -> None:
    _delete(path)
    path.touch(mode=0o600)
    with closing(sqlite3.connect(path)) as db:  # a fresh store, as a wrong restore leaves
        db.execute("CREATE TABLE blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL) STRICT")
        db.execute("PRAGMA user_version=1")


@pytest.mark.parametrize(("damage", "state"), [(_delete, "is missing"), (_empty, "holds no blob")])
def test_a_lost_small_blob_file_stops_the_start_and_shows_in_doctor(root, clock, damage, state):
    dep = Deployment.open(root, clock=clock)
    try:
        [rid] = _ingest(dep)
    finally:
        dep.close()
    path = _small_file(root)
    damage(path)
    exists = path.exists()
    with pytest.raises(ConfigError) as caught:
        Deployment.open(root, clock=clock)
    assert caught.value.message.startswith(
        f"the small-blob store {path} {state}, yet record {rid} of region {PL_REGION} "
        "has its blob nowhere"
    )
    assert "Restore it from a backup" in caught.value.message
    assert path.exists() == exists, "opening must not create an empty store in its place"
    problems = [f.line() for f in examine(root) if f.problem]
    assert problems == [
        f"{path}: {state.removeprefix('is ')}, yet record {rid} of region {PL_REGION} has no "
        "blob file: its blob "
        "was in this store, and none of the region's small records would open; fix: restore "
        "the store from a backup"
    ]


def test_an_empty_small_blob_file_is_fine_where_every_blob_is_a_file(root, clock):
    _every_blob_a_file(root)
    dep = Deployment.open(root, clock=clock)
    try:
        _ingest(dep)
    finally:
        dep.close()
    root.joinpath("sovra.toml").write_text(
        root.joinpath("sovra.toml").read_text().replace("= 1\n", "= 65536\n")
    )
    Deployment.open(root, clock=clock).close()
    assert [f.line() for f in examine(root) if f.problem] == []


@pytest.mark.parametrize("planted", ["symlink", "hardlink"])
def test_a_small_blob_file_replaced_by_a_link_is_refused(root, clock, tmp_path, planted):
    dep = Deployment.open(root, clock=clock)
    try:
        _ingest(dep)
    finally:
        dep.close()
    path = _small_file(root)
    outside = tmp_path / "elsewhere.sqlite"
    outside.write_bytes(path.read_bytes())  # the same bytes: only the link is wrong
    path.unlink()
    if planted == "symlink":
        path.symlink_to(outside)
    else:
        os.link(outside, path)
    with pytest.raises(ConfigError, match=f"{SMALL_BLOBS_NAME} is a link or not a plain file"):
        Deployment.open(root, clock=clock)
    what = "is a link" if planted == "symlink" else "has a second name (a hard link)"
    assert any(f.path == str(path) and f.what.startswith(what) for f in examine(root) if f.problem)
