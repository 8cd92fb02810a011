"""The S3 blob store against a real S3 server (SeaweedFS, scripts/with-seaweedfs): what the
conformance suite in test_store_blobs.py cannot show, the layout in the bucket, and the
faults: a missing bucket, refused credentials, an endpoint that is down, objects cut
short or not the record's."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from typing import Any

import pytest
from tests.conftest import S3Bucket
from tests.store.test_store_fixtures import env_without, run_pytest

from sovra.errors import BadRequest, ConfigError, IntegrityError, NotFound, Unavailable
from sovra.store.s3 import S3BlobStore, S3Location, parse_s3_url

MiB = 1 << 20


def open_store(bucket: S3Bucket, **kwargs: Any) -> S3BlobStore:
    args: dict[str, Any] = {"small_blob_bytes": 1000, **bucket.store_args(), **kwargs}
    return S3BlobStore("pl-waw", parse_s3_url(bucket.url), **args)


def segments(bucket: S3Bucket) -> dict[str, bytes]:
    return {k: v for k, v in bucket.objects().items() if "/segments/" in k}


# -- layout ------------------------------------------------------------------------------


def test_a_batch_of_small_blobs_is_one_segment_a_large_one_its_own_object(
    s3_bucket: S3Bucket,
) -> None:
    store = open_store(s3_bucket, small_blob_bytes=100)
    items = [(f"rec-{i}", bytes([i]) * 50) for i in range(200)] + [("big", b"L" * 500)]
    store.put_many(items)
    objects = s3_bucket.objects()
    assert sorted(k.split("/", 2)[1] for k in objects) == ["blobs", "segments"]
    assert objects[f"{s3_bucket.prefix}blobs/big"] == b"L" * 500
    (segment,) = segments(s3_bucket).values()
    for key, data in items[:-1]:
        assert data in segment
        assert key.encode() in segment  # the segment's own index names its blobs
    store.put_many([("rec-x", b"x"), ("rec-y", b"y")])
    assert len(segments(s3_bucket)) == 2
    # Another store on the same bucket (a restart, another replica) finds them all.
    again = open_store(s3_bucket, small_blob_bytes=100)
    assert again.get_many(["rec-7", "big", "rec-y"]) == [b"\x07" * 50, b"L" * 500, b"y"]
    assert sorted(again.stored_keys()) == sorted([k for k, _ in items] + ["rec-x", "rec-y"])


def test_a_blob_written_by_another_process_is_found(s3_bucket: S3Bucket) -> None:
    reader = open_store(s3_bucket)
    writer = open_store(s3_bucket)
    writer.put_many([("rec-1", b"one"), ("rec-2", b"two")])
    assert reader.get("rec-2") == b"two"  # not in its index: it looks at newer segments
    assert reader.exists("rec-1")
    reader.delete("rec-1")
    # The writer's index is stale: the read finds the segment replaced and looks again.
    with pytest.raises(NotFound, match="no blob rec-1"):
        writer.get("rec-1")
    assert writer.get("rec-2") == b"two"
    with pytest.raises(NotFound):
        open_store(s3_bucket).get("rec-1")


def test_a_large_blob_goes_up_in_parts_and_comes_back_whole(s3_bucket: S3Bucket) -> None:
    big = os.urandom(11 * MiB)
    store = open_store(s3_bucket, max_blob_bytes=12 * MiB, multipart_bytes=5 * MiB)
    store.put("big", big)
    assert store.get("big") == big
    with pytest.raises(BadRequest, match="blob big already exists"):
        store.put("big", b"L" * 2000)
    with pytest.raises(BadRequest, match="blob big already exists"):
        open_store(s3_bucket, max_blob_bytes=12 * MiB, multipart_bytes=5 * MiB).put("big", big)
    assert store.get("big") == big
    client = s3_bucket.client()
    uploads = client.list_multipart_uploads(Bucket=s3_bucket.name, Prefix=s3_bucket.prefix)
    assert not uploads.get("Uploads")  # the refused upload was aborted, not left behind


def test_delete_rewrites_the_segment_without_the_blob(s3_bucket: S3Bucket) -> None:
    store = open_store(s3_bucket)
    secret = b"shred-me-" * 10
    store.put_many([("keep-1", b"first" * 10), ("gone", secret), ("keep-2", b"second" * 10)])
    store.delete("gone")
    assert all(secret not in data for data in s3_bucket.objects().values())
    assert len(segments(s3_bucket)) == 1
    assert store.get_many(["keep-2", "keep-1"]) == [b"second" * 10, b"first" * 10]
    with pytest.raises(NotFound, match="no blob gone"):
        open_store(s3_bucket).get("gone")
    store.delete("keep-1")
    store.delete("keep-2")
    assert s3_bucket.objects() == {}


def test_threads_deleting_blobs_of_one_segment_each_get_theirs_deleted(
    s3_bucket: S3Bucket,
) -> None:
    store = open_store(s3_bucket)
    store.put_many([(f"rec-{i}", bytes([i]) * 30) for i in range(12)])
    pool = [threading.Thread(target=store.delete, args=(f"rec-{i}",)) for i in range(0, 12, 2)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    again = open_store(s3_bucket)
    assert sorted(again.stored_keys()) == sorted(f"rec-{i}" for i in range(1, 12, 2))
    assert again.get_many(["rec-1", "rec-11"]) == [b"\x01" * 30, b"\x0b" * 30]
    assert len(segments(s3_bucket)) == 1


def test_a_crash_between_rewrite_and_removal_does_not_bring_a_blob_back(
    s3_bucket: S3Bucket,
) -> None:
    store = open_store(s3_bucket)
    store.put_many([("keep", b"k" * 20), ("gone", b"g" * 20)])
    ((old_key, old),) = segments(s3_bucket).items()
    store.delete("gone")
    # The old segment back in place: as if the process died before deleting it.
    s3_bucket.client().put_object(Bucket=s3_bucket.name, Key=old_key, Body=old)
    reopened = open_store(s3_bucket)
    assert not reopened.exists("gone")
    assert reopened.get("keep") == b"k" * 20
    # The replaced segment is removed once a store sees it.
    assert old_key not in s3_bucket.objects()


# -- bad configuration and a server that fails -------------------------------------------


def test_a_missing_bucket_is_a_config_error(s3_bucket: S3Bucket) -> None:
    with pytest.raises(ConfigError, match=r"bucket no-such-bucket-here .* does not exist"):
        S3BlobStore("pl-waw", S3Location("no-such-bucket-here"), **s3_bucket.store_args())


def test_wrong_credentials_are_a_config_error_without_the_secret(s3_bucket: S3Bucket) -> None:
    args = {**s3_bucket.store_args(), "secret_key": "not-the-secret-at-all"}
    with pytest.raises(ConfigError, match="refused the credentials") as caught:
        S3BlobStore("pl-waw", parse_s3_url(s3_bucket.url), **args)
    assert "not-the-secret" not in caught.value.message
    assert s3_bucket.secret_key not in caught.value.message


def test_a_bucket_removed_under_a_running_store_is_a_config_error(s3_bucket: S3Bucket) -> None:
    client = s3_bucket.client()
    client.create_bucket(Bucket="short-lived-bucket")
    store = S3BlobStore(
        "pl-waw", S3Location("short-lived-bucket"), small_blob_bytes=10, **s3_bucket.store_args()
    )
    client.delete_bucket(Bucket="short-lived-bucket")
    with pytest.raises(ConfigError, match=r"short-lived-bucket .* does not exist"):
        store.put("rec-1", b"data")
    with pytest.raises(ConfigError, match="does not exist"):
        store.put("rec-2", b"L" * 100)


@pytest.mark.parametrize("listening", [False, True], ids=["nothing-listens", "never-answers"])
def test_an_endpoint_that_is_down_or_hung_is_unavailable(listening: bool) -> None:
    # No server needed: nothing listens on the port, or a socket takes the connection and
    # never answers, as a hung or restarting server does (botocore's read timeout is an
    # OSError too, and must still read as a 503).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        if listening:
            s.listen(16)
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
        if not listening:
            s.close()
        with pytest.raises(Unavailable, match="cannot be reached; try again") as caught:
            S3BlobStore(
                "pl-waw",
                S3Location("any-bucket"),
                endpoint=endpoint,
                access_key="a",
                secret_key="b",
                timeout_s=0.5,
            )
    assert caught.value.status == 503


def test_server_side_encryption_is_asked_for_on_every_write(s3_bucket: S3Bucket) -> None:
    store = open_store(s3_bucket, sse="AES256", small_blob_bytes=10)
    sent: list[str | None] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(request.headers.get("x-amz-server-side-encryption"))

    store._client.meta.events.register("before-send.s3.PutObject", record)
    # This SeaweedFS has no key service for SSE, so it fails the write (5xx): unavailable,
    # a precise error, and nothing stored.
    for data in (b"small", b"L" * 50):
        with pytest.raises(Unavailable, match="endpoint failed"):
            store.put("rec-1", data)
    assert sent
    assert {s.decode() if isinstance(s, bytes) else s for s in sent} == {"AES256"}
    assert s3_bucket.objects() == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sse": "rot13"}, "sse must be one of"),
        ({"sse_kms_key_id": "k"}, "needs sse"),
        ({"access_key": "a"}, "both an S3 access key and its secret"),
        ({"endpoint": "ftp://x"}, "endpoint must be an http"),
        ({"endpoint": "http://u:p@host"}, "endpoint must be an http"),
        ({"multipart_bytes": 1000}, "at least 5242880"),
        ({"small_blob_bytes": -1}, "at least 0"),
    ],
)
def test_bad_settings_are_refused_before_connecting(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        S3BlobStore("pl-waw", S3Location("some-bucket"), **kwargs)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://bucket/x", "s3://bucket"),
        ("s3://Upper/x", "not valid"),
        ("s3://ab", "not valid"),
        ("s3://a..b/x", "not valid"),
        ("s3://user@bucket/x", "s3://bucket"),
        ("s3://bucket/../x", "each part"),
        ("s3://bucket/a//b", "each part"),
        ("s3://bucket/x?y=1", "s3://bucket"),
        (7, "a string"),
    ],
)
def test_bad_s3_urls_are_refused(url: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_s3_url(url)


def test_s3_urls_parse_both_ways() -> None:
    for url, bucket, prefix in [
        ("s3://eu-bucket", "eu-bucket", ""),
        ("s3://eu-bucket/", "eu-bucket", ""),
        ("s3://eu.bucket-1/sovra/prod/", "eu.bucket-1", "sovra/prod/"),
    ]:
        loc = parse_s3_url(url)
        assert (loc.bucket, loc.prefix) == (bucket, prefix)
        assert parse_s3_url(str(loc)) == loc


# -- damaged or substituted objects ------------------------------------------------------


def _overwrite(bucket: S3Bucket, key: str, data: bytes) -> None:
    bucket.client().put_object(Bucket=bucket.name, Key=key, Body=data)


def test_a_segment_cut_short_is_an_integrity_error(s3_bucket: S3Bucket) -> None:
    store = open_store(s3_bucket)
    store.put_many([(f"rec-{i}", bytes([i]) * 100) for i in range(10)])
    ((key, data),) = segments(s3_bucket).items()
    _overwrite(s3_bucket, key, data[: len(data) - 150])
    # The running store (index in memory) and a new one (index read from the segment).
    with pytest.raises(IntegrityError, match=r"cut short|shorter"):
        store.get("rec-9")
    with pytest.raises(IntegrityError, match=r"cut short|shorter"):
        store.get("rec-0")
    with pytest.raises(IntegrityError, match=r"cannot read a batch|cut short"):
        store.get_many(["rec-0", "rec-1"])
    fresh = open_store(s3_bucket)
    with pytest.raises(IntegrityError, match="index says"):
        fresh.get("rec-0")
    # Nor can the store say a blob is absent while a segment is unreadable.
    with pytest.raises(IntegrityError, match="unreadable"):
        fresh.get("rec-unknown")
    with pytest.raises(ConfigError, match="unreadable"):
        list(fresh.stored_keys())
    # Restored from a backup, the segment is read again by both.
    _overwrite(s3_bucket, key, data)
    assert fresh.get("rec-0") == bytes([0]) * 100
    assert store.get("rec-9") == bytes([9]) * 100
    assert len(list(fresh.stored_keys())) == 10


def test_a_segment_that_is_not_one_is_an_integrity_error(s3_bucket: S3Bucket) -> None:
    store = open_store(s3_bucket)
    store.put("rec-1", b"data")
    ((key, _),) = segments(s3_bucket).items()
    _overwrite(s3_bucket, key, b"half a segm")
    with pytest.raises(IntegrityError, match="not a sovra segment"):
        open_store(s3_bucket).get("rec-1")


def test_bytes_of_another_record_are_never_served(s3_bucket: S3Bucket) -> None:
    store = open_store(s3_bucket, small_blob_bytes=100)
    store.put_many([("rec-a", b"A" * 40), ("rec-b", b"B" * 40), ("big-a", b"X" * 500)])
    store.put("big-b", b"Y" * 500)
    ((key, data),) = segments(s3_bucket).items()
    # The two records' bytes swapped inside the segment, lengths unchanged.
    _overwrite(s3_bucket, key, data.replace(b"A" * 40, b"#" * 40).replace(b"B" * 40, b"A" * 40))
    with pytest.raises(IntegrityError, match="not this blob's"):
        store.get("rec-b")
    # A large object copied over another, with its metadata: bound to the other key.
    client = s3_bucket.client()
    client.copy_object(
        Bucket=s3_bucket.name,
        Key=f"{s3_bucket.prefix}blobs/big-b",
        CopySource={"Bucket": s3_bucket.name, "Key": f"{s3_bucket.prefix}blobs/big-a"},
    )
    with pytest.raises(IntegrityError, match="not this record's"):
        store.get("big-b")
    assert store.get("big-a") == b"X" * 500


def test_a_large_object_cut_short_is_an_integrity_error(s3_bucket: S3Bucket) -> None:
    store = open_store(s3_bucket, small_blob_bytes=10)
    store.put("big", b"L" * 500)
    client = s3_bucket.client()
    name = f"{s3_bucket.prefix}blobs/big"
    meta = client.head_object(Bucket=s3_bucket.name, Key=name)["Metadata"]
    client.put_object(Bucket=s3_bucket.name, Key=name, Body=b"L" * 250, Metadata=meta)
    with pytest.raises(IntegrityError, match="cut short or is not this record's"):
        store.get("big")


def test_a_segment_of_another_region_is_not_this_regions(s3_bucket: S3Bucket) -> None:
    other = S3BlobStore(
        "de-fra", parse_s3_url(s3_bucket.url), small_blob_bytes=1000, **s3_bucket.store_args()
    )
    other.put("rec-1", b"german")
    with pytest.raises(IntegrityError, match="belongs to region de-fra"):
        open_store(s3_bucket).get("rec-1")


# -- the fixture itself: skipped locally, failed in CI ------------------------------------

ONE_S3_TEST = "tests/store/test_store_s3.py::test_a_blob_written_by_another_process_is_found"


def _run_without_s3(**extra: str) -> subprocess.CompletedProcess[str]:
    variables = [k for k in os.environ if k.startswith("SOVRA_TEST_S3_")]
    return run_pytest(env_without("CI", *variables, **extra), ONE_S3_TEST)


def test_without_an_endpoint_s3_tests_skip_locally() -> None:
    result = _run_without_s3()
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "scripts/with-seaweedfs" in result.stdout


def test_without_an_endpoint_s3_tests_fail_in_ci() -> None:
    result = _run_without_s3(CI="true")
    assert result.returncode == 1, result.stdout
    assert "CI must run the S3 tests" in result.stdout
