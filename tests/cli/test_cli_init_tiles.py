"""``sovra init --tiles FOLDER|s3://...``: where the log is published as static tiles,
written into sovra.toml as ``[log.tiles]``, and what is refused before anything is written.

The bucket is the throwaway SeaweedFS (scripts/with-seaweedfs); the copy a deployment made
this way publishes is checked by ``sovra-verify tiles``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.cli.conftest import Sovra

from sovra.config import Config
from sovra.deployment import LOG_VKEY
from sovra_verify.cli import main as verify

_KEYS = [
    *("--s3-access-key-env", "SOVRA_TEST_S3_ACCESS_KEY"),
    *("--s3-secret-key-env", "SOVRA_TEST_S3_SECRET_KEY"),
]
_BLOBS = ["--blobs", "us-east=s3://bucket-a"]


def _publish_and_verify(sovra: Sovra, root: Path, source: str) -> None:
    """Publish the new deployment's log (init's principal entries) and verify the copy."""
    ran = sovra("log", "publish-tiles", "-d", root, "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["size"] > 0 and ran.json()["files_written"] > 0
    vkey = (root / LOG_VKEY).read_text().strip()
    assert verify(["tiles", source, "--vkey", vkey]) == 0


def test_init_tiles_folder_is_written_and_published(sovra: Sovra, tmp_path: Path) -> None:
    root = tmp_path / "dep"
    ran = sovra("init", root, "--custodians", "in-process", "--tiles", "public/log")
    assert ran.code == 0, ran.err
    tiles = Config.load(root / "sovra.toml").log_tiles
    assert tiles is not None and tiles.location == "public/log" and not tiles.is_s3
    _publish_and_verify(sovra, root, str(root / "public" / "log"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tiles", ""], '--tiles must be a folder of the deployment or "s3://bucket/prefix"'),
        (["--tiles", "/srv/tiles"], "--tiles '/srv/tiles' must be a folder inside the deployment"),
        (["--tiles", "a/../../x"], "--tiles 'a/../../x' must be a folder inside the deployment"),
        (["--tiles", "https://cdn.example/log"], "must be a folder inside the deployment"),
        (["--tiles", "s3://Bad_Bucket/x"], "--tiles: S3 bucket name 'Bad_Bucket' is not valid"),
        (["--tiles", "tiles", "--s3-endpoint", "http://x"], "the --s3-* options describe"),
        (
            ["--tiles", "tiles", *_BLOBS, "--s3-endpoint", "log.tiles=x"],
            "--s3-endpoint 'log.tiles=x' names the tile bucket: add --tiles s3://",
        ),
        (
            ["--tiles", "s3://bucket-a/x", "--s3-endpoint", "log.tiles="],
            "--s3-endpoint log.tiles= needs a value",
        ),
        (
            ["--tiles", "s3://b-1/x", "--s3-access-key-env", "low", "--s3-secret-key-env", "S"],
            "names an environment variable (upper case)",
        ),
    ],
)
def test_init_refuses_a_bad_tiles_option_before_writing_anything(
    sovra: Sovra, tmp_path: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "dep"
    ran = sovra("init", root, "--custodians", "in-process", *args)
    assert ran.code == 1, ran.err
    assert message in ran.message
    assert not root.exists()


def test_init_refuses_a_tile_folder_that_holds_a_checkpoint(sovra: Sovra, tmp_path: Path) -> None:
    root = tmp_path / "dep"
    (root / "public").mkdir(parents=True)
    (root / "public" / "checkpoint").write_text("another log's\n")
    ran = sovra("init", root, "--custodians", "in-process", "--tiles", "public")
    assert ran.code == 1
    assert "already holds a log's checkpoint" in ran.message
    assert sorted(p.name for p in root.iterdir()) == ["public"]  # nothing of the deployment
    (root / "file").write_text("")
    ran = sovra("init", root, "--custodians", "in-process", "--tiles", "file")
    assert ran.code == 1 and "is not a folder" in ran.message
    assert not (root / "sovra.toml").exists()


def test_init_refuses_an_unreachable_tile_bucket(
    sovra: Sovra, tmp_path: Path, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVRA_TEST_S3_ACCESS_KEY", "k")
    monkeypatch.setenv("SOVRA_TEST_S3_SECRET_KEY", "s")
    root = tmp_path / "dep"
    ran = sovra(
        "init", root, "--custodians", "in-process",
        "--tiles", "s3://bucket-a/log", "--s3-endpoint", dead_url, *_KEYS,
    )  # fmt: skip
    assert ran.code == 5, ran.err
    assert "cannot be reached" in ran.message
    assert not root.exists()


@pytest.mark.s3
def test_init_tiles_bucket_is_written_published_and_not_shared(
    sovra: Sovra, tmp_path: Path, s3_bucket
) -> None:
    root = tmp_path / "dep"
    place = f"{s3_bucket.url}log"
    ran = sovra(
        "init", root, "--custodians", "in-process", "--tiles", place,
        "--s3-endpoint", "http://127.0.0.1:1", "--s3-endpoint", f"log.tiles={s3_bucket.endpoint}",
        *_KEYS,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    tiles = Config.load(root / "sovra.toml").log_tiles
    assert tiles is not None and tiles.bucket is not None
    assert (tiles.location, tiles.bucket.endpoint) == (place, s3_bucket.endpoint)
    assert tiles.bucket.access_key_env == "SOVRA_TEST_S3_ACCESS_KEY"
    ran = sovra("log", "publish-tiles", "-d", root, "--json")
    assert ran.code == 0, ran.err
    objects = s3_bucket.objects()
    assert f"{s3_bucket.prefix}log/checkpoint" in objects
    assert any(k.startswith(f"{s3_bucket.prefix}log/tile/entries/") for k in objects)
    # A second deployment may not publish into the same place; nothing of it is written.
    again = tmp_path / "again"
    ran = sovra(
        "init", again, "--custodians", "in-process", "--tiles", place,
        "--s3-endpoint", s3_bucket.endpoint, *_KEYS,
    )  # fmt: skip
    assert ran.code == 1
    assert "already holds a log's checkpoint" in ran.message
    assert not again.exists()
    # A bucket that does not exist, and a key the server does not know.
    missing = sovra(
        "init", again, "--custodians", "in-process", "--tiles", "s3://no-such-tile-bucket/x",
        "--s3-endpoint", s3_bucket.endpoint, *_KEYS,
    )  # fmt: skip
    assert missing.code == 1 and "does not exist" in missing.message
    os.environ["TILES_WRONG_SECRET"] = "not-the-secret"
    try:
        wrong = sovra(
            "init", again, "--custodians", "in-process", "--tiles", f"{s3_bucket.url}other",
            "--s3-endpoint", s3_bucket.endpoint,
            "--s3-access-key-env", "SOVRA_TEST_S3_ACCESS_KEY",
            "--s3-secret-key-env", "TILES_WRONG_SECRET",
        )  # fmt: skip
    finally:
        del os.environ["TILES_WRONG_SECRET"]
    assert wrong.code == 1, wrong.err
    assert "refused the credentials" in wrong.message, wrong.err
    assert not again.exists()
