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
