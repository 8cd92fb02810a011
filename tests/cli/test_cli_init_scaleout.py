"""``sovra init --database URL --blobs REGION=s3://...``: a scale-out deployment on the
throwaway PostgreSQL and SeaweedFS, and what it refuses before writing anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.conftest import REGIONS, Sovra, s3_options

from sovra.config import Config
from sovra.deployment import Deployment
from sovra.store.s3 import S3BlobStore

pytestmark = [pytest.mark.postgres, pytest.mark.s3]


def test_init_writes_a_scale_out_deployment_that_serves_the_demo(
    sovra: Sovra, tmp_path: Path, pg_dsn: str, s3_bucket
) -> None:
    root = tmp_path / "dep"
    ran = sovra(
        "init", root, "--custodians", "in-process", "--database", pg_dsn, *s3_options(s3_bucket)
    )
    assert ran.code == 0, ran.err
    config = Config.load(root / "sovra.toml")
    assert config.database == pg_dsn
    for region in REGIONS:
        settings = config.region(region)
        assert settings.blobs == f"{s3_bucket.url}{region}"
        assert settings.endpoint == s3_bucket.endpoint
        assert settings.access_key_env == "SOVRA_TEST_S3_ACCESS_KEY"
    # The check tests/cli/test_cli_demo.py makes of the embedded deployment.
    demo = sovra("demo", "--synthetic", "20", "--deployment", root)
    assert demo.code == 0, demo.err
    assert "all seven outcomes as expected" in demo.out
    # The records' blobs are in the buckets, none in a folder beside the configuration.
    assert not list((root / "blobs").rglob("*"))
    objects = s3_bucket.objects()
    assert any(k.startswith(f"{s3_bucket.prefix}eu-central-pl/segments/") for k in objects)
    assert any(k.startswith(f"{s3_bucket.prefix}ap-southeast-vn/segments/") for k in objects)
    dep = Deployment.open(root)
    try:
        assert all(isinstance(dep.gateway.blobs[r], S3BlobStore) for r in REGIONS)
        assert dep.store.count_records() >= 23
    finally:
        dep.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--blobs", "eu-central-pl"], "--blobs takes REGION=s3://bucket[/prefix]"),
        (["--blobs", "eu-central-pl=/srv/blobs"], "an S3 location is s3://bucket[/prefix]"),
        (["--blobs", "mars-1=s3://bucket-a"], "--blobs names region mars-1, which no jurisdiction"),
        (
            ["--blobs", "us-east=s3://bucket-a", "--blobs", "us-east=s3://bucket-b"],
            "--blobs names region us-east twice",
        ),
        (["--s3-endpoint", "http://127.0.0.1:1"], "the --s3-* options describe the buckets"),
        (
            ["--blobs", "us-east=s3://bucket-a", "--s3-access-key-env", "lower"],
            "access_key_env and secret_key_env, or neither",
        ),
    ],
)
def test_init_refuses_bad_blob_options_before_writing_anything(
    sovra: Sovra, tmp_path: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "dep"
    ran = sovra("init", root, "--custodians", "in-process", *args)
    assert ran.code == 1
    assert message in ran.message
    assert not root.exists()


def test_init_refuses_a_missing_bucket_and_one_that_holds_blobs(
    sovra: Sovra, tmp_path: Path, pg_dsn: str, s3_bucket
) -> None:
    missing = sovra(
        "init", tmp_path / "a", "--custodians", "in-process",
        "--blobs", "us-east=s3://no-such-bucket-here/x", *s3_options(s3_bucket, ())
    )  # fmt: skip
    assert missing.code == 1
    assert "bucket no-such-bucket-here" in missing.message
    assert "does not exist" in missing.message
    assert not (tmp_path / "a").exists()
    # A first deployment puts blobs under the prefix; a second one may not share it.
    first = tmp_path / "first"
    assert sovra("init", first, "--custodians", "in-process", *s3_options(s3_bucket)).code == 0
    assert sovra("demo", "--synthetic", "4", "--deployment", first).code == 0
    again = sovra(
        "init", tmp_path / "b", "--custodians", "in-process", "--database", pg_dsn,
        *s3_options(s3_bucket),
    )  # fmt: skip
    assert again.code == 1
    assert "already holds blobs" in again.message
    assert not (tmp_path / "b").exists()
    # Nothing of the refused deployment reached the database: it takes a deployment still.
    ran = sovra("init", tmp_path / "c", "--custodians", "in-process", "--database", pg_dsn)
    assert ran.code == 0, ran.err


def test_init_takes_each_regions_own_s3_settings(
    sovra: Sovra, tmp_path: Path, pg_dsn: str, s3_bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-region --s3-* values (REGION=VALUE) beside shared ones: each region's table
    gets its own endpoint, credentials' variables, encryption and provider, with no edit
    of sovra.toml; the records land in their own region's prefix."""
    import os

    # The US region reads its key pair from variables of its own (same server here).
    monkeypatch.setenv("SOVRA_TEST_US_ACCESS", os.environ["SOVRA_TEST_S3_ACCESS_KEY"])
    monkeypatch.setenv("SOVRA_TEST_US_SECRET", os.environ["SOVRA_TEST_S3_SECRET_KEY"])
    root = tmp_path / "dep"
    ran = sovra(
        "init", root, "--custodians", "in-process", "--database", pg_dsn,
        "--jurisdictions", "PL,US",
        "--blobs", f"eu-central-pl={s3_bucket.url}eu",
        "--blobs", f"us-east={s3_bucket.url}us",
        "--s3-endpoint", s3_bucket.endpoint,  # shared
        "--s3-signing-region", "eu-central-pl=eu-central-1",
        "--s3-access-key-env", "eu-central-pl=SOVRA_TEST_S3_ACCESS_KEY",
        "--s3-secret-key-env", "eu-central-pl=SOVRA_TEST_S3_SECRET_KEY",
        "--s3-access-key-env", "us-east=SOVRA_TEST_US_ACCESS",
        "--s3-secret-key-env", "us-east=SOVRA_TEST_US_SECRET",
        "--s3-sse", "us-east=aws:kms",
        "--s3-sse-kms-key-id", "us-east=arn:aws:kms:us-east-1:111122223333:key/abc",
        "--s3-provider", "eu-central-pl=example-eu-cloud",
        "--s3-provider-home", "eu-central-pl=DE",
        "--s3-provider", "us-east=example-us-cloud",
        "--s3-provider-home", "us-east=US",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    config = Config.load(root / "sovra.toml")
    eu, us = config.region("eu-central-pl"), config.region("us-east")
    assert (eu.blobs, eu.endpoint, eu.signing_region) == (
        f"{s3_bucket.url}eu",
        s3_bucket.endpoint,
        "eu-central-1",
    )
    assert (eu.access_key_env, eu.secret_key_env) == (
        "SOVRA_TEST_S3_ACCESS_KEY",
        "SOVRA_TEST_S3_SECRET_KEY",
    )
    assert (eu.provider, eu.provider_home, eu.sse) == ("example-eu-cloud", "DE", None)
    assert (us.blobs, us.endpoint, us.signing_region) == (
        f"{s3_bucket.url}us",
        s3_bucket.endpoint,
        "us-east-1",
    )
    assert (us.access_key_env, us.secret_key_env) == (
        "SOVRA_TEST_US_ACCESS",
        "SOVRA_TEST_US_SECRET",
    )
    assert (us.provider, us.provider_home) == ("example-us-cloud", "US")
    assert (us.sse, us.sse_kms_key_id) == ("aws:kms", "arn:aws:kms:us-east-1:111122223333:key/abc")
    # No credential in the file, only the variables' names.
    text = (root / "sovra.toml").read_text()
    assert os.environ["SOVRA_TEST_S3_SECRET_KEY"] not in text
    dep = Deployment.open(root)
    try:
        us_store = dep.gateway.blobs["us-east"]
        assert isinstance(us_store, S3BlobStore)
        assert us_store._sse == {  # asked on every write to the US bucket
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": "arn:aws:kms:us-east-1:111122223333:key/abc",
        }
        svc = dep.store.get_principal("svc-pl")
        receipt = dep.gateway.ingest(
            svc, subject_id="anna@example.pl", jurisdiction="PL", content="x"
        )
        assert receipt.region == "eu-central-pl"
    finally:
        dep.close()
    keys = list(s3_bucket.objects())
    assert any(k.startswith(f"{s3_bucket.prefix}eu/segments/") for k in keys)
    assert not any(k.startswith(f"{s3_bucket.prefix}us/") for k in keys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--s3-provider", "us-east=example"],
            "--s3-provider 'us-east=example' names region us-east, which --blobs does not name",
        ),
        (
            ["--s3-provider", "eu-central-pl=a", "--s3-provider", "eu-central-pl=b"],
            "--s3-provider eu-central-pl= is given twice",
        ),
        (["--s3-sse", "eu-central-pl="], "--s3-sse eu-central-pl= needs a value"),
        (["--s3-provider-home", "eu-central-pl=Germany"], "provider_home"),
        (["--s3-sse-kms-key-id", "k"], "sse_kms_key_id needs sse"),
        (
            ["--s3-access-key-env", "eu-central-pl=A_KEY"],
            "access_key_env and secret_key_env, or neither",
        ),
    ],
)
def test_init_refuses_bad_per_region_options_before_writing_anything(
    sovra: Sovra, tmp_path: Path, s3_bucket, args: list[str], message: str
) -> None:
    root = tmp_path / "dep"
    ran = sovra(
        "init", root, "--custodians", "in-process",
        "--blobs", f"eu-central-pl={s3_bucket.url}eu", "--s3-endpoint", s3_bucket.endpoint,
        *args,
    )  # fmt: skip
    assert ran.code == 1, ran.out
    assert message in ran.message
    assert not root.exists()
