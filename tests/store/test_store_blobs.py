"""One conformance suite for every BlobStore backend: a folder, an S3 bucket and memory."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import S3Bucket

from sovra.errors import BadRequest, ConfigError, IntegrityError, NotFound, PayloadTooLarge
from sovra.store import (
    SMALL_BLOBS_NAME,
    BlobStore,
    BlobStoreBase,
    FilesystemBlobStore,
    MemoryBlobStore,
)
from sovra.store.s3 import S3BlobStore, parse_s3_url

LIMIT = 1_000


# The folder with every blob in its small-blob file, every blob a file of its own, and
# the two mixed (blobs up to 100 bytes small, larger ones files).
SMALL_BLOB_BYTES = {"small": LIMIT, "files": 0, "mixed": 100}


# The buckets of the S3 stores the fixture made, so a test can list what is stored.
_BUCKETS: dict[int, S3Bucket] = {}


@pytest.fixture(params=[*SMALL_BLOB_BYTES, "memory", "s3-small", "s3-mixed"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStoreBase]:
    if request.param == "memory":
        yield MemoryBlobStore("pl-waw", max_blob_bytes=LIMIT)
        return
    if request.param.startswith("s3-"):
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        s3 = S3BlobStore(
            "pl-waw",
            parse_s3_url(bucket.url),
            max_blob_bytes=LIMIT,
            small_blob_bytes=SMALL_BLOB_BYTES[request.param[3:]],
            **bucket.store_args(),
        )
        _BUCKETS[id(s3)] = bucket
        yield s3
        s3.close()
        del _BUCKETS[id(s3)]
        return
    store = FilesystemBlobStore(
        tmp_path / "blobs",
        "pl-waw",
        max_blob_bytes=LIMIT,
        small_blob_bytes=SMALL_BLOB_BYTES[request.param],
    )
    yield store
    store.close()


def files_under(root: Path) -> list[Path]:
    """Blob files and leftovers; the small-blob file is the store's own (see stored_keys)."""
    return sorted(
        p for p in root.rglob("*") if not p.is_dir() and not p.name.startswith(SMALL_BLOBS_NAME)
    )


def footprint(store: BlobStoreBase, root: Path) -> list[str]:
    """Everything the store has written: files under *root*, or every object (and its
    size) in the store's bucket, so a refused call can be shown to have written nothing."""
    bucket = _BUCKETS.get(id(store))
    if bucket is None:
        return [str(p) for p in files_under(root)]
    return sorted(f"{key} {len(data)}" for key, data in bucket.objects().items())


def test_is_a_blob_store(blobs: BlobStoreBase) -> None:
    assert isinstance(blobs, BlobStore)
    assert blobs.region == "pl-waw"
    assert blobs.max_blob_bytes == LIMIT


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(range(256)), b"x" * LIMIT])
def test_round_trip(blobs: BlobStoreBase, data: bytes) -> None:
    assert not blobs.exists("rec-1")
    blobs.put("rec-1", data)
    assert blobs.exists("rec-1")
    assert blobs.get("rec-1") == data


def test_delete_is_durable_and_repeatable(blobs: BlobStoreBase) -> None:
    blobs.put("rec-1", b"cipher")
    blobs.put("rec-2", b"other")
    blobs.delete("rec-1")
    assert not blobs.exists("rec-1")
    with pytest.raises(NotFound, match="rec-1"):
        blobs.get("rec-1")
    blobs.delete("rec-1")  # a second delete (an interrupted shred run again) succeeds
    assert blobs.get("rec-2") == b"other"


def test_missing_blob_is_not_found(blobs: BlobStoreBase) -> None:
    with pytest.raises(NotFound, match="no blob nope in region pl-waw"):
        blobs.get("nope")


def test_existing_key_is_never_replaced(blobs: BlobStoreBase) -> None:
    blobs.put("rec-1", b"original")
    with pytest.raises(BadRequest, match="already exists"):
        blobs.put("rec-1", b"impostor")
    assert blobs.get("rec-1") == b"original"


BAD_KEYS = ["../x", "..", ".", "a/b", "/abs", "a\x00b", "", "k" * 200, ".hidden", "a\\b", None, 7]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_refused_everywhere(blobs: BlobStoreBase, tmp_path: Path, key: Any) -> None:
    blobs.put("rec-1", b"keep")
    before = footprint(blobs, tmp_path)
    with pytest.raises(BadRequest, match="blob key"):
        blobs.put(key, b"data")
    with pytest.raises(BadRequest, match="blob key"):
        blobs.get(key)
    with pytest.raises(BadRequest, match="blob key"):
        blobs.delete(key)
    with pytest.raises(BadRequest, match="blob key"):
        blobs.exists(key)
    assert footprint(blobs, tmp_path) == before
    assert blobs.get("rec-1") == b"keep"


def test_oversized_blob_refused_and_nothing_written(blobs: BlobStoreBase, tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge, match="1001 bytes"):
        blobs.put("rec-1", b"x" * (LIMIT + 1))
    assert not blobs.exists("rec-1")
    assert footprint(blobs, tmp_path) == []


@pytest.mark.parametrize("data", [bytearray(b"x"), memoryview(b"x"), "text", None])
def test_non_bytes_refused(blobs: BlobStoreBase, data: Any) -> None:
    with pytest.raises(BadRequest, match="must be bytes"):
        blobs.put("rec-1", data)
    assert not blobs.exists("rec-1")


def _put_ignoring_duplicates(blobs: BlobStoreBase, key: str, data: bytes, wins: list[str]) -> None:
    try:
        blobs.put(key, data)
        wins.append(key)
    except BadRequest:
        pass


def test_threads_putting_distinct_and_same_keys(blobs: BlobStoreBase) -> None:
    wins: list[str] = []
    pool = [
        threading.Thread(
            target=_put_ignoring_duplicates, args=(blobs, f"rec-{i}", bytes([i]) * 10, wins)
        )
        for i in range(32)
    ] + [
        threading.Thread(
            target=_put_ignoring_duplicates, args=(blobs, "contested", bytes([i]), wins)
        )
        for i in range(8)
    ]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    for i in range(32):
        assert blobs.get(f"rec-{i}") == bytes([i]) * 10
    assert wins.count("contested") == 1
    assert len(blobs.get("contested")) == 1


@pytest.mark.parametrize(
    ("region", "limit"), [("../up", 10), ("", 10), ("eu", 0), ("eu", -5), ("eu", True)]
)
def test_bad_configuration_refused(tmp_path: Path, region: str, limit: Any) -> None:
    with pytest.raises(ConfigError):
        MemoryBlobStore(region, max_blob_bytes=limit)
    with pytest.raises(ConfigError):
        FilesystemBlobStore(tmp_path, region, max_blob_bytes=limit)
    assert list(tmp_path.iterdir()) == []


# -- the template method itself ----------------------------------------------------


class EndlessBlobStore(BlobStoreBase):
    """A backend whose stored blob is 100 times the limit: the limit must stop the read."""

    def __init__(self) -> None:
        super().__init__("nowhere", max_blob_bytes=LIMIT)
        self.pulled = 0
        self.closed = False

    def _put(self, key: str, data: bytes) -> None:
        raise AssertionError("not used")

    def _get(self, key: str) -> Generator[bytes, None, None]:
        try:
            # Bounded, so a broken limit fails this test instead of exhausting memory.
            for _ in range(LIMIT):
                self.pulled += 100
                yield b"x" * 100
        finally:
            self.closed = True

    def _delete(self, key: str) -> None:
        raise PermissionError("read-only medium")

    def _exists(self, key: str) -> bool:
        raise OSError(5, "Input/output error")

    def _keys(self) -> Iterator[str]:
        raise OSError(5, "Input/output error")


def test_base_stops_reading_at_the_limit() -> None:
    store = EndlessBlobStore()
    with pytest.raises(IntegrityError, match="over the 1000-byte limit"):
        store.get("k")
    assert store.pulled == LIMIT + 100
    assert store.closed


def test_base_wraps_os_errors() -> None:
    store = EndlessBlobStore()
    with pytest.raises(ConfigError, match="cannot delete the blob of record k: read-only medium"):
        store.delete("k")
    with pytest.raises(ConfigError, match="Input/output error"):
        store.exists("k")


# -- the filesystem layout -----------------------------------------------------------


def test_filesystem_layout_and_modes(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, "vn-han", small_blob_bytes=0)
    store.put("rec-1", b"cipher")
    path = store.path_for("rec-1")
    assert path.parent.parent == tmp_path / "vn-han"
    assert len(path.parent.name) == 2
    assert path.name == "rec-1"
    assert path.read_bytes() == b"cipher"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "vn-han").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # No temporary file is left behind next to the blob.
    assert files_under(tmp_path) == [path]


def test_regions_are_separate_folders(tmp_path: Path) -> None:
    pl = FilesystemBlobStore(tmp_path, "pl-waw")
    de = FilesystemBlobStore(tmp_path, "de-fra")
    pl.put("rec-1", b"polish")
    assert not de.exists("rec-1")
    with pytest.raises(NotFound):
        de.get("rec-1")
    de.put("rec-1", b"german")
    assert pl.get("rec-1") == b"polish"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["de-fra", "pl-waw"]


def test_filesystem_reopen_keeps_blobs(tmp_path: Path) -> None:
    FilesystemBlobStore(tmp_path, "pl-waw").put("rec-1", b"kept")
    assert FilesystemBlobStore(tmp_path, "pl-waw").get("rec-1") == b"kept"


def test_changed_on_disk_within_limit_returned_as_is(tmp_path: Path) -> None:
    # The store does not authenticate content; the AEAD tag in keys/ catches this.
    store = FilesystemBlobStore(tmp_path, "pl-waw", max_blob_bytes=LIMIT, small_blob_bytes=0)
    store.put("short", b"0123456789")
    store.put("long", b"0123456789")
    store.path_for("short").write_bytes(b"0123")
    store.path_for("long").write_bytes(b"0123456789" + b"!" * (LIMIT - 10))
    assert store.get("short") == b"0123"
    assert store.get("long") == b"0123456789" + b"!" * (LIMIT - 10)


def test_grown_on_disk_beyond_limit_is_refused(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, "pl-waw", max_blob_bytes=LIMIT, small_blob_bytes=0)
    store.put("rec-1", b"small")
    path = store.path_for("rec-1")
    with path.open("ab") as f:
        f.truncate(50 * 1024 * 1024)
    with pytest.raises(IntegrityError, match="refusing to read it"):
        store.get("rec-1")
    # Refusing to read is not deleting: the evidence stays for the operator.
    assert path.stat().st_size == 50 * 1024 * 1024


def test_symlink_in_the_store_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not a blob")
    store = FilesystemBlobStore(tmp_path / "blobs", "pl-waw", small_blob_bytes=0)
    path = store.path_for("rec-1")
    path.parent.mkdir(parents=True)
    path.symlink_to(secret)
    with pytest.raises(IntegrityError, match=r"blob of record rec-1 .* is a link") as caught:
        store.get("rec-1")
    assert str(tmp_path) not in caught.value.message


def test_filesystem_root_that_is_a_file_is_config_error(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_bytes(b"")
    with pytest.raises(ConfigError, match="cannot use blob folder"):
        FilesystemBlobStore(root, "pl-waw")


def test_filesystem_write_failure_is_config_error(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, "pl-waw", small_blob_bytes=0)
    # A file where the fan-out folder should be: the write cannot happen.
    folder = store.path_for("rec-1").parent
    folder.write_bytes(b"")
    with pytest.raises(ConfigError, match="cannot write the blob of record rec-1"):
        store.put("rec-1", b"data")
    assert os.path.getsize(folder) == 0


def test_stored_keys_lists_blobs_and_nothing_else(blobs: BlobStoreBase) -> None:
    assert list(blobs.stored_keys()) == []
    for key in ("r-1", "r-2", "R-3"):
        blobs.put(key, b"x")
    assert sorted(blobs.stored_keys()) == ["R-3", "r-1", "r-2"]
    blobs.delete("r-2")
    assert sorted(blobs.stored_keys()) == ["R-3", "r-1"]
    if isinstance(blobs, FilesystemBlobStore):
        # A temporary file left by a crash mid-write is the store's own, not a blob.
        blobs.path_for("r-1").parent.mkdir(exist_ok=True)
        (blobs.path_for("r-1").parent / ".tmp-leftover").write_bytes(b"partial")
        assert sorted(blobs.stored_keys()) == ["R-3", "r-1"]


def test_stored_keys_translates_storage_failures() -> None:
    with pytest.raises(ConfigError, match="cannot list"):
        list(EndlessBlobStore().stored_keys())


# -- batches -------------------------------------------------------------------------


def test_put_many_get_many_round_trip(blobs: BlobStoreBase) -> None:
    items = [(f"rec-{i}", bytes([i]) * i) for i in range(50)] + [("big", b"x" * LIMIT)]
    blobs.put_many(items)
    keys = [k for k, _ in items]
    assert blobs.get_many(keys) == [d for _, d in items]
    # In the order asked, repeats included; single gets see the same bytes.
    assert blobs.get_many(["big", "rec-3", "rec-3"]) == [b"x" * LIMIT, b"\x03" * 3, b"\x03" * 3]
    assert blobs.get("rec-7") == b"\x07" * 7
    assert sorted(blobs.stored_keys()) == sorted(keys)
    blobs.put_many([])
    assert blobs.get_many([]) == []


def test_get_many_names_the_missing_key(blobs: BlobStoreBase) -> None:
    blobs.put_many([("rec-1", b"a"), ("rec-2", b"b")])
    with pytest.raises(NotFound, match="no blob rec-9 in region pl-waw"):
        blobs.get_many(["rec-1", "rec-9", "rec-2"])


def test_put_many_with_an_existing_key_writes_none(blobs: BlobStoreBase, tmp_path: Path) -> None:
    blobs.put("rec-5", b"original")
    before = footprint(blobs, tmp_path)
    batch = [(f"rec-{i}", b"new") for i in range(10)]
    with pytest.raises(BadRequest, match="blob rec-5 already exists in region pl-waw"):
        blobs.put_many(batch)
    assert blobs.get("rec-5") == b"original"
    assert sorted(blobs.stored_keys()) == ["rec-5"]
    assert footprint(blobs, tmp_path) == before


BAD_BATCHES: list[tuple[Any, type[Exception], str]] = [
    (None, BadRequest, "must be a sequence of .key, bytes. pairs, got NoneType"),
    ("rec-1", BadRequest, "must be a sequence of .key, bytes. pairs, got str"),
    (b"rec-1", BadRequest, "got bytes"),
    ({"rec-1": b"x"}, BadRequest, "got dict"),
    (
        [("ok", b"x"), ["rec-1", b"x"]],
        BadRequest,
        "blob 1 of the batch must be a .key, bytes. pair, got list",
    ),
    ([("ok", b"x"), ("rec-1", b"x", b"y")], BadRequest, "blob 1 of the batch"),
    ([("ok", b"x"), ("", b"x")], BadRequest, "blob key"),
    ([("ok", b"x"), ("../up", b"x")], BadRequest, "blob key"),
    ([("ok", b"x"), (7, b"x")], BadRequest, "blob key"),
    ([("ok", b"x"), ("rec-1", "text")], BadRequest, "must be bytes, got str"),
    ([("ok", b"x"), ("rec-1", bytearray(b"x"))], BadRequest, "must be bytes, got bytearray"),
    ([("ok", b"x"), ("ok", b"y")], BadRequest, "blob key ok appears twice"),
    ([("ok", b"x"), ("rec-1", b"x" * (LIMIT + 1))], PayloadTooLarge, "blob rec-1 is 1001 bytes"),
]


@pytest.mark.parametrize(("items", "error", "message"), BAD_BATCHES, ids=repr)
def test_bad_batches_refused_before_anything_is_written(
    blobs: BlobStoreBase, tmp_path: Path, items: Any, error: type[Exception], message: str
) -> None:
    blobs.put("keep", b"kept")
    before = footprint(blobs, tmp_path)
    with pytest.raises(error, match=message):
        blobs.put_many(items)
    assert sorted(blobs.stored_keys()) == ["keep"]
    assert footprint(blobs, tmp_path) == before


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (None, "got NoneType"),
        ("rec-1", "got str"),
        ({"rec-1"}, "got set"),
        (["rec-1", ""], "blob key"),
        (["rec-1", None], "blob key"),
        (["rec-1", "a/b"], "blob key"),
    ],
    ids=repr,
)
def test_bad_key_lists_refused(blobs: BlobStoreBase, keys: Any, message: str) -> None:
    blobs.put("rec-1", b"x")
    with pytest.raises(BadRequest, match=message):
        blobs.get_many(keys)


# -- the small-blob file beside the files ------------------------------------------------


def _small_rows(store: FilesystemBlobStore) -> dict[str, bytes]:
    with closing(sqlite3.connect(store.small_blobs_path)) as db:
        return {k: bytes(d) for k, d in db.execute("SELECT key, data FROM blobs")}


def test_a_blob_up_to_the_threshold_shares_the_file_a_larger_one_gets_its_own(
    tmp_path: Path,
) -> None:
    store = FilesystemBlobStore(tmp_path, "pl-waw", max_blob_bytes=LIMIT, small_blob_bytes=100)
    store.put_many([("at", b"a" * 100), ("over", b"o" * 101), ("tiny", b"")])
    store.put("single", b"s" * 101)
    assert _small_rows(store) == {"at": b"a" * 100, "tiny": b""}
    assert files_under(tmp_path) == sorted([store.path_for("over"), store.path_for("single")])
    assert store.path_for("over").read_bytes() == b"o" * 101
    assert store.small_blobs_path.parent == tmp_path / "pl-waw"  # inside the region's folder
    assert stat.S_IMODE(store.small_blobs_path.stat().st_mode) == 0o600
    assert store.get_many(["over", "at", "single", "tiny"]) == [
        b"o" * 101,
        b"a" * 100,
        b"s" * 101,
        b"",
    ]
    assert store.small_blob_count() == 2
    store.close()
    store.close()  # twice is harmless


def test_blobs_written_as_files_before_stay_readable_and_keep_their_keys(tmp_path: Path) -> None:
    old = FilesystemBlobStore(tmp_path, "pl-waw", small_blob_bytes=0)  # a file per blob
    old.put_many([("old-1", b"first"), ("old-2", b"second")])
    old.close()
    store = FilesystemBlobStore(tmp_path, "pl-waw")
    assert store.small_blob_count() == 0
    assert store.get("old-1") == b"first"
    assert not store.small_blobs_path.exists()  # made by the first small write, not on open
    store.put("new-1", b"third")
    assert store.get_many(["new-1", "old-2", "old-1"]) == [b"third", b"second", b"first"]
    assert sorted(store.stored_keys()) == ["new-1", "old-1", "old-2"]
    # A key held as a file is taken: the small-blob file does not take it a second time.
    with pytest.raises(BadRequest, match="blob old-2 already exists in region pl-waw"):
        store.put_many([("new-2", b"x"), ("old-2", b"impostor")])
    assert not store.exists("new-2")
    assert store.get("old-2") == b"second"
    store.delete("old-1")
    assert not store.path_for("old-1").exists()
    assert sorted(store.stored_keys()) == ["new-1", "old-2"]


def test_a_large_blob_is_refused_under_a_key_the_small_file_holds(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, "pl-waw", small_blob_bytes=10)
    store.put("rec-1", b"small")
    with pytest.raises(BadRequest, match="blob rec-1 already exists"):
        store.put("rec-1", b"L" * 11)
    assert files_under(tmp_path) == []
    assert store.get("rec-1") == b"small"


def test_a_refused_mixed_batch_leaves_no_file_behind(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, "pl-waw", small_blob_bytes=10)
    store.put("taken", b"original")
    batch = [(f"big-{i}", b"L" * 50) for i in range(5)] + [("taken", b"x"), ("other", b"y")]
    with pytest.raises(BadRequest, match="blob taken already exists"):
        store.put_many(batch)
    # The large blobs were written first, then the small ones' transaction was refused:
    # the files are gone again, and no small blob of the batch is visible.
    assert files_under(tmp_path) == []
    assert sorted(store.stored_keys()) == ["taken"]


def test_a_byte_changed_in_the_small_file_is_returned_as_stored(tmp_path: Path) -> None:
    # The store does not authenticate content: the AEAD tag in keys/ (and sovra check's
    # hash) catch this, as tests/flows/test_flows_small_blobs.py shows.
    store = FilesystemBlobStore(tmp_path, "pl-waw")
    sealed = bytes(range(200))
    store.put("rec-1", sealed)
    store.close()  # the last connection checkpoints the log into the file
    path = tmp_path / "pl-waw" / SMALL_BLOBS_NAME
    raw = bytearray(path.read_bytes())
    at = raw.find(sealed)
    assert at > 0
    raw[at + 100] ^= 0x01
    path.write_bytes(bytes(raw))
    again = FilesystemBlobStore(tmp_path, "pl-waw")
    got = again.get("rec-1")
    assert got != sealed
    assert len(got) == len(sealed)
    again.close()


def test_a_small_blob_grown_past_the_limit_is_refused_unread(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, "pl-waw", max_blob_bytes=LIMIT)
    store.put_many([("rec-1", b"small"), ("rec-2", b"fine")])
    with closing(sqlite3.connect(store.small_blobs_path)) as db, db:
        db.execute("UPDATE blobs SET data = zeroblob(?) WHERE key = 'rec-1'", (50 * LIMIT,))
    with pytest.raises(IntegrityError, match="blob rec-1 in region pl-waw is over the 1000-byte"):
        store.get("rec-1")
    with pytest.raises(IntegrityError, match="blob rec-1 in region pl-waw is over the 1000-byte"):
        store.get_many(["rec-2", "rec-1"])
    assert store.get("rec-2") == b"fine"
    store.close()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
@pytest.mark.parametrize("planted", ["symlink", "hardlink"])
def test_a_small_blob_file_that_is_a_link_is_refused(
    tmp_path: Path, suffix: str, planted: str
) -> None:
    FilesystemBlobStore(tmp_path, "pl-waw").close()
    path = tmp_path / "pl-waw" / f"{SMALL_BLOBS_NAME}{suffix}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(path.read_bytes() if path.exists() else b"")
    path.unlink(missing_ok=True)
    if planted == "symlink":
        path.symlink_to(elsewhere)
    else:
        os.link(elsewhere, path)
    with pytest.raises(ConfigError, match=rf"{SMALL_BLOBS_NAME}{suffix} is a link or not a plain"):
        FilesystemBlobStore(tmp_path, "pl-waw")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a database at all, just some bytes" * 200, "file is not a database"),
        (None, "schema version 7"),
    ],
    ids=["garbage", "other-schema"],
)
def test_a_small_blob_file_that_is_not_one_is_refused(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    (tmp_path / "pl-waw").mkdir(mode=0o700)
    path = tmp_path / "pl-waw" / SMALL_BLOBS_NAME
    if content is None:
        with closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA user_version=7")
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=rf"cannot use the small-blob store .*{message}.*backup"):
        FilesystemBlobStore(tmp_path, "pl-waw")
    assert path.read_bytes() == before


def test_bad_small_blob_threshold_refused(tmp_path: Path) -> None:
    for bad, message in [(-1, "at least 0"), (True, "integer"), ("64k", "integer")]:
        with pytest.raises(ConfigError, match=f"small_blob_bytes must be .*{message}"):
            FilesystemBlobStore(tmp_path, "pl-waw", small_blob_bytes=bad)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# -- a crash in the middle of put_many ------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from sovra.store import FilesystemBlobStore

store = FilesystemBlobStore(Path(sys.argv[1]), "pl-waw", small_blob_bytes=int(sys.argv[2]))
for n in range(10_000):
    size = lambda i: 2000 if i % 50 == 0 else 400
    store.put_many([(f"b{n}-{i}", bytes([n % 256]) * size(i)) for i in range(1000)])
    print(n, flush=True)
"""


def _size(key: str) -> int:
    return 2000 if int(key.split("-")[1]) % 50 == 0 else 400


@pytest.mark.parametrize("small_blob_bytes", [65536, 1000], ids=["small", "mixed"])
def test_a_batch_killed_mid_write_is_all_there_or_absent(
    tmp_path: Path, small_blob_bytes: int
) -> None:
    wal = tmp_path / "pl-waw" / f"{SMALL_BLOBS_NAME}-wal"
    probe = FilesystemBlobStore(tmp_path, "pl-waw")
    first_large = probe.path_for("b5-0")
    probe.close()
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(small_blob_bytes)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as writer:
        assert writer.stdout is not None
        done = [int(writer.stdout.readline()) for _ in range(5)]
        # Kill once batch 5 shows on disk (its first file, or the log growing), so the
        # kill lands inside a put_many; bounded, in case it never shows.
        logged = wal.stat()
        for _ in range(100_000):
            now = wal.stat()
            if first_large.exists() or (now.st_size, now.st_mtime_ns) != (
                logged.st_size,
                logged.st_mtime_ns,
            ):
                break
        writer.send_signal(signal.SIGKILL)
    store = FilesystemBlobStore(tmp_path, "pl-waw", small_blob_bytes=small_blob_bytes)
    batches: dict[int, set[str]] = {}
    for key in store.stored_keys():
        n = int(key[1:].split("-")[0])
        batches.setdefault(n, set()).add(key)
    # Every acknowledged batch is whole; of the one killed, the small blobs (one
    # transaction) are all there or none, and large ones written before the kill are
    # files no row names, which sovra check removes as orphans.
    for n in done:
        assert len(batches.pop(n)) == 1000
    for n, keys in batches.items():
        small = {k for k in keys if _size(k) <= small_blob_bytes}
        assert len(small) in (0, sum(_size(f"b-{i}") <= small_blob_bytes for i in range(1000)))
        for key in keys:
            assert store.get(key) == bytes([n % 256]) * _size(key)
    store.close()


def test_a_small_blob_file_damaged_under_the_store_is_an_integrity_error(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, "pl-waw")
    store.put_many([("rec-1", b"a"), ("rec-2", b"b")])
    store.close()  # the next call opens the file again, as a forked worker would
    store.small_blobs_path.write_bytes(b"not a database at all, just some bytes" * 200)
    with pytest.raises(IntegrityError, match=r"cannot read the blob of record rec-1: .*not a"):
        store.get("rec-1")
    with pytest.raises(IntegrityError, match=r"cannot read a batch of 2 blobs: .*not a database"):
        store.get_many(["rec-1", "rec-2"])
    with pytest.raises(ConfigError, match="cannot write the blob of record rec-3"):
        store.put("rec-3", b"c")
    assert store.small_blobs_path.read_bytes().startswith(b"not a database")
    for message in (str(tmp_path), "/tmp"):
        with pytest.raises(IntegrityError) as caught:
            store.get("rec-2")
        assert message not in caught.value.message


RIVAL = """
import sys
from pathlib import Path
from sovra.errors import BadRequest
from sovra.store import FilesystemBlobStore

store = FilesystemBlobStore(Path(sys.argv[1]), "pl-waw")
me = sys.argv[2]
won = 0
for n in range(20):
    batch = [(f"{me}-{n}-{i}", f"{me}{n}{i}".encode()) for i in range(100)]
    store.put_many(batch)
    try:
        store.put_many([(f"contested-{n}", me.encode())])
        won += 1
    except BadRequest:
        pass
print(won)
"""


def test_worker_processes_share_one_small_blob_file(tmp_path: Path) -> None:
    # As under `sovra serve --workers N`: each process its own connections to one file.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rivals = [
        subprocess.Popen(
            [sys.executable, "-c", RIVAL, str(tmp_path), name],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("a", "b", "c")
    ]
    wins = []
    for rival in rivals:
        out, _ = rival.communicate(timeout=120)
        assert rival.returncode == 0
        wins.append(int(out))
    assert sum(wins) == 20  # each contested key went to exactly one process
    store = FilesystemBlobStore(tmp_path, "pl-waw")
    keys = [f"{me}-{n}-{i}" for me in "abc" for n in range(20) for i in range(100)]
    assert store.get_many(keys) == [k.replace("-", "").encode() for k in keys]
    assert store.small_blob_count() == 3 * 20 * 100 + 20
    store.close()
