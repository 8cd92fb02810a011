"""Faults of the object store under a running gateway, and the client riding them out.

``sovra serve`` runs as a real process over a scale-out deployment (PostgreSQL, every
region in a bucket of the throwaway SeaweedFS). Each fault is met with a precise answer
at the edge: 503 with Retry-After while the bucket's server is away (restarted, stopped),
a configuration error naming the bucket when it refuses writes or the credentials, an
integrity error for an object cut short; nothing is acknowledged that is not stored, and
the log holds together. The client sends a request refused with 503 and Retry-After again,
signed afresh, a bounded number of times.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import S3Bucket
from tests.scaleout import check_log, check_log_and_records, init_scaled, new_record
from tests.serving import client, free_port, key, serve, stop, wait_for

from sovra.auth import make_token
from sovra.config import Config
from sovra.deployment import Deployment
from sovra.errors import ConfigError, IntegrityError, Unavailable

# These stop and restart the one SeaweedFS (and PostgreSQL) every test shares: run alone.
pytestmark = [pytest.mark.postgres, pytest.mark.s3, pytest.mark.serial]

_MAGIC = b"sovra-segment-1\n"  # ADR 0020's segment format, read here independently


def _hook(variable: str) -> str:
    command = os.environ.get(variable)
    if not command:
        reason = f"the test servers' scripts export no {variable} here"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the fault tests")
        pytest.skip(reason)
    return command


def _s3(mode: str) -> None:
    """Restart (``term``, ``kill``), stop or start the throwaway S3 server."""
    subprocess.run([_hook("SOVRA_TEST_S3_RESTART"), mode], check=True, timeout=300)


@pytest.fixture
def scaled(tmp_path: Path, pg_dsn: str, s3_bucket: S3Bucket) -> Iterator[Path]:
    root = init_scaled(tmp_path / "deployment", pg_dsn, s3_bucket, origin="sovra.test/s3-faults")
    yield root
    _s3("start")  # a test that stopped the server and failed leaves it to the next


@contextmanager
def _serving(root: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``sovra serve`` over *root*, its environment changed by *env*; its URL."""
    port = free_port()
    output = root.parent / f"serve-{port}.log"
    proc = serve(root, port, output=output, env=env)
    try:
        wait_for(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            stop(proc, output)


def _count(root: Path, table: str) -> int:
    """Rows of *table* in the deployment's database (read directly: the buckets may be away)."""
    with psycopg.connect(Config.load(root / "sovra.toml").database) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _ingest(url: str, root: Path, n: int) -> dict[str, dict[str, Any]]:
    """*n* PL records ingested one at a time; their answers with ``content``, by id."""
    out = {}
    with client(root, url, "svc-pl") as svc:
        for _ in range(n):
            body = new_record("PL")
            got = svc.ingest(**body)
            out[got["record_id"]] = got | {"content": body["content"]}
    return out


# -- the S3 server restarted under load -------------------------------------------------


@pytest.mark.parametrize("mode", ["term", "kill"])
def test_seaweedfs_restarted_under_load_answers_503_and_loses_no_acknowledged_record(
    scaled: Path, s3_bucket: S3Bucket, mode: str
) -> None:
    _hook("SOVRA_TEST_S3_RESTART")
    ingested: dict[str, dict[str, Any]] = {}
    receipts: list[dict[str, Any]] = []
    refused: list[Unavailable] = []
    unexpected: list[BaseException] = []
    stop_load = threading.Event()

    def load(url: str) -> None:
        # No retries: every 503 the restart causes is seen here.
        with client(scaled, url, "svc-pl", retries=0) as svc:
            while not stop_load.is_set():
                body = new_record("PL")
                try:
                    got = svc.ingest(**body)
                    ingested[got["record_id"]] = got | {"content": body["content"]}
                    read = svc.access("customer-support", record_ids=[got["record_id"]])
                    assert read["records"] == {got["record_id"]: body["content"]}
                    receipts.extend([read["decision_receipt"], read["release_receipt"]])
                except Unavailable as exc:
                    refused.append(exc)
                    time.sleep(0.05)
                except BaseException as exc:
                    unexpected.append(exc)
                    return

    def wait_for_records(count: int) -> None:
        deadline = time.monotonic() + 300
        while len(ingested) < count and not unexpected:
            assert time.monotonic() < deadline, "the gateway did not serve again"
            time.sleep(0.02)

    with _serving(scaled) as url:
        threads = [threading.Thread(target=load, args=(url,)) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            wait_for_records(10)
            _s3(mode)
            before = len(ingested)
            wait_for_records(before + 10)  # it serves again once the bucket is back
        finally:
            stop_load.set()
            for t in threads:
                t.join()
    assert unexpected == []
    # Every failure said what it was: the bucket is away for now, try again in a second.
    assert refused, "no call met the restart"
    assert {(e.status, e.retry_after_s) for e in refused} == {(503, 1.0)}
    assert all("blob store eu-central-pl" in e.message for e in refused), refused[0].message
    assert all(s3_bucket.name in e.message for e in refused)
    # Every receipt's record is stored, logged and in the bucket; the log verifies. A
    # segment written while its answer was lost is an orphan the check may remove.
    check_log_and_records(scaled, s3_bucket, ingested, receipts, orphans=True)


# -- a bucket that refuses writes, credentials refused -----------------------------------


def test_a_bucket_that_refuses_writes_is_a_config_error_and_stores_nothing(
    scaled: Path, s3_bucket: S3Bucket
) -> None:
    read_only = {
        "SOVRA_TEST_S3_ACCESS_KEY": os.environ["SOVRA_TEST_S3_READONLY_ACCESS_KEY"],
        "SOVRA_TEST_S3_SECRET_KEY": os.environ["SOVRA_TEST_S3_READONLY_SECRET_KEY"],
    }
    with _serving(scaled) as url:
        ingested = _ingest(url, scaled, 3)
    # The same deployment, its buckets now allowing reads only (a policy, a read-only key).
    with _serving(scaled, env=read_only) as url, client(scaled, url, "svc-pl") as svc:
        rid = next(iter(ingested))
        read = svc.access("customer-support", record_ids=[rid])
        assert read["records"] == {rid: ingested[rid]["content"]}
        entries, records = _count(scaled, "log_entries"), _count(scaled, "records")
        with pytest.raises(ConfigError) as refused:
            svc.ingest(**new_record("PL"))
        # Not a 503: retrying cannot help, the operator must.
        assert refused.value.status == 500
        assert "blob store eu-central-pl" in refused.value.message
        assert f"bucket {s3_bucket.name}" in refused.value.message
        assert "access denied (AccessDenied)" in refused.value.message
    # Nothing stored, nothing logged for the refused record.
    assert (_count(scaled, "log_entries"), _count(scaled, "records")) == (entries, records)
    check_log_and_records(scaled, s3_bucket, ingested, [read["decision_receipt"]])


def test_wrong_credentials_stop_the_start_naming_the_bucket(
    scaled: Path, s3_bucket: S3Bucket
) -> None:
    wrong = {"SOVRA_TEST_S3_SECRET_KEY": "not-the-secret-" + "x" * 24}
    output = scaled.parent / "serve-wrong.log"
    entries = _count(scaled, "log_entries")  # what init logged
    proc = serve(scaled, free_port(), output=output, env=wrong)
    try:
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    said = " ".join(output.read_text().split())
    assert code != 0
    assert "refused the credentials" in said
    assert f"bucket {s3_bucket.name}" in said
    assert "Traceback" not in said
    assert wrong["SOVRA_TEST_S3_SECRET_KEY"] not in said
    assert s3_bucket.secret_key not in said
    assert _count(scaled, "log_entries") == entries  # the refused start logged nothing


# -- an object cut short ------------------------------------------------------------------


def _segment_keys(segment: bytes) -> list[str]:
    """The record ids a segment's header lists."""
    import json
    import struct

    assert segment.startswith(_MAGIC)
    (length,) = struct.unpack_from(">I", segment, len(_MAGIC))
    start = len(_MAGIC) + 4
    return [str(r[0]) for r in json.loads(segment[start : start + length])["records"]]


def test_a_half_written_segment_is_an_integrity_error_and_the_rest_reads(
    scaled: Path, s3_bucket: S3Bucket
) -> None:
    with _serving(scaled) as url:
        ingested = _ingest(url, scaled, 4)
        segments = {k: v for k, v in s3_bucket.objects().items() if "/eu-central-pl/segments/" in k}
        victim = next(iter(ingested))
        (name,) = [k for k, v in segments.items() if victim in _segment_keys(v)]
        cut = set(_segment_keys(segments[name]))
        # What a writer that died mid-upload would leave if the store accepted it: the
        # first half of the object.
        data = segments[name]
        s3_bucket.client().put_object(Bucket=s3_bucket.name, Key=name, Body=data[: len(data) // 2])
        with client(scaled, url, "svc-pl") as svc:
            for rid, answer in ingested.items():
                if rid in cut:
                    with pytest.raises(IntegrityError, match=r"shorter than its index") as bad:
                        svc.access("customer-support", record_ids=[rid])
                    assert bad.value.status == 500
                else:
                    got = svc.access("customer-support", record_ids=[rid])
                    assert got["records"] == {rid: answer["content"]}
    # The log is untouched by the damage: every ingest's receipt still verifies in it.
    dep = Deployment.open(scaled)
    try:
        check_log(dep, [a["receipt"] for a in ingested.values()])
    finally:
        dep.close()


# -- the client's retries --------------------------------------------------------------


def _pauses() -> tuple[list[float], Callable[[float], None]]:
    asked: list[float] = []
    return asked, asked.append


def test_the_client_retries_a_503_a_bounded_number_of_times_signing_each_afresh(
    scaled: Path,
) -> None:
    with _serving(scaled) as url:
        _ingest(url, scaled, 1)  # the segments' index is read while the bucket is there
        entries = _count(scaled, "log_entries")
        _s3("stop")
        asked, pause = _pauses()
        with (
            client(scaled, url, "svc-pl", retries=2, sleep=pause) as svc,
            pytest.raises(Unavailable) as away,
        ):
            svc.ingest(**new_record("PL"))
        # Three attempts, each refused with 503 (a token sent again would be a 401).
        assert asked == [1.0, 1.0]
        assert away.value.retry_after_s == 1.0
        assert "blob store eu-central-pl" in away.value.message
        # Why each attempt is signed afresh: the same token twice is refused as a replay.
        body = b'{"subject_id": "a@example.pl", "jurisdiction": "PL", "content": "x"}'
        token = make_token(
            key(scaled, "svc-pl"), "svc-pl", "POST", "/v1/records", body, now_s=int(time.time())
        )
        headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
        first = httpx.post(f"{url}/v1/records", content=body, headers=headers, timeout=60)
        again = httpx.post(f"{url}/v1/records", content=body, headers=headers, timeout=60)
        assert (first.status_code, first.headers["retry-after"]) == (503, "1")
        assert again.status_code == 401, again.text
        assert _count(scaled, "log_entries") == entries  # nothing logged for the refusals

        def start_then_wait(seconds: float) -> None:
            asked.append(seconds)
            if len(asked) == 1:
                _s3("start")  # the bucket comes back during the pause

        asked.clear()
        with client(scaled, url, "svc-pl", sleep=start_then_wait) as svc:
            body_ok = new_record("PL")
            got = svc.ingest(**body_ok)
            read = svc.access("customer-support", record_ids=[got["record_id"]])
        assert asked[0] == 1.0 and len(asked) <= 3
        assert read["records"] == {got["record_id"]: body_ok["content"]}


def test_the_client_rides_out_a_database_restart(scaled: Path) -> None:
    restart = _hook("SOVRA_TEST_PG_RESTART")
    with _serving(scaled) as url:
        asked, pause = _pauses()
        with client(scaled, url, "svc-pl", sleep=pause) as svc:
            first = svc.ingest(**new_record("PL"))
            subprocess.run([restart, "fast"], check=True, timeout=300)
            # The pools' connections died with the server: a call may meet that as a 503,
            # which the client waits out as told and sends again.
            body = new_record("PL")
            got = svc.ingest(**body)
            read = svc.access("customer-support", record_ids=[got["record_id"]])
    assert read["records"] == {got["record_id"]: body["content"]}
    assert got["log_index"] > first["log_index"]
    assert set(asked) <= {1.0} and len(asked) <= 2 * 3
