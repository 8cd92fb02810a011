"""Fixtures shared by every test package."""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest


def _absent(backend: str, script: str, variable: str) -> NoReturn:
    """Skip a test of a backend whose server is not there; fail it under CI."""
    reason = f"{backend} not available: run the suite through {script} ({variable} unset)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the {backend} tests")
    pytest.skip(reason)


@pytest.fixture
def pg_data() -> Path:
    """The throwaway PostgreSQL cluster's data folder (for tests that read its files)."""
    data = os.environ.get("SOVRA_TEST_PG_DATA")
    if not data:
        _absent("PostgreSQL's data folder", "scripts/with-postgres", "SOVRA_TEST_PG_DATA")
    return Path(data)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN for the throwaway PostgreSQL cluster, scoped to a fresh empty schema.

    The schema is first on the connection's ``search_path``, so tables a test creates land
    in it and it sees no other test's rows; it is dropped afterwards. Outside
    ``scripts/with-postgres`` the test skips, except under CI, where it fails: a backend
    test that quietly skips in CI proves nothing.
    """
    base = os.environ.get("SOVRA_TEST_PG_DSN")
    if not base:
        _absent("PostgreSQL", "scripts/with-postgres", "SOVRA_TEST_PG_DSN")
    schema = f"test_{os.getpid()}_{secrets.token_hex(6)}"  # whose it is, for cleanup checks
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    parts = urlsplit(base)
    query = [*parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    try:
        yield urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def walkable() -> Iterator[Path]:
    """A folder other users may enter, not list (0711); pytest's own are root's alone.

    Where sovra runs as root, each custodian's and the gateway's system user must walk down
    to its part of a deployment: tests of that put the deployment here.
    """
    base = Path(tempfile.mkdtemp(prefix="sovra-walkable-"))
    base.chmod(0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base)


@dataclass(frozen=True)
class S3Bucket:
    """A fresh, empty place on the throwaway S3 server: a bucket shared by the run and a
    prefix of this test's own in it (a new bucket costs SeaweedFS a new volume)."""

    endpoint: str
    access_key: str
    secret_key: str
    name: str
    prefix: str

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` of this test's place."""
        return f"s3://{self.name}/{self.prefix}"

    def client(self, *, secret_key: str | None = None) -> Any:
        """A boto3 client for the server (another *secret_key*: a wrong credential)."""
        return _s3_client(self.endpoint, self.access_key, secret_key or self.secret_key)

    def store_args(self) -> dict[str, str]:
        """The connection keywords of :class:`sovra.store.s3.S3BlobStore`."""
        return {
            "endpoint": self.endpoint,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
        }

    def objects(self) -> dict[str, bytes]:
        """Every object under this test's prefix, by key, with its bytes."""
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.prefix
        )
        return {
            o["Key"]: client.get_object(Bucket=self.name, Key=o["Key"])["Body"].read()
            for page in pages
            for o in page.get("Contents", [])
        }


@functools.cache
def _s3_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="session")
def _s3_run_bucket() -> str | None:
    """The bucket this run's S3 tests share, made once; None without a server."""
    endpoint = os.environ.get("SOVRA_TEST_S3_ENDPOINT")
    if not endpoint:
        return None
    name = f"test-{secrets.token_hex(8)}"
    _s3_client(
        endpoint, os.environ["SOVRA_TEST_S3_ACCESS_KEY"], os.environ["SOVRA_TEST_S3_SECRET_KEY"]
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_bucket(_s3_run_bucket: str | None) -> Iterator[S3Bucket]:
    """A prefix of its own in the run's bucket on the throwaway SeaweedFS, emptied after.

    Outside ``scripts/with-seaweedfs`` the test skips, except under CI, where it fails.
    """
    endpoint = os.environ.get("SOVRA_TEST_S3_ENDPOINT")
    if not endpoint or _s3_run_bucket is None:
        _absent("S3", "scripts/with-seaweedfs", "SOVRA_TEST_S3_ENDPOINT")
    bucket = S3Bucket(
        endpoint,
        os.environ["SOVRA_TEST_S3_ACCESS_KEY"],
        os.environ["SOVRA_TEST_S3_SECRET_KEY"],
        _s3_run_bucket,
        f"t-{secrets.token_hex(6)}/",
    )
    try:
        yield bucket
    finally:
        client = bucket.client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket.name, Prefix=bucket.prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket.name, Key=obj["Key"])
