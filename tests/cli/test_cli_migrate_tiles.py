"""``sovra migrate --tiles FOLDER|s3://...``: the moved deployment's log published as static
tiles, audited from where it was published, and ``[log.tiles]`` written into sovra.toml;
the refusals of ``sovra init --tiles``, with nothing changed; a move that failed after
publishing carries on.

The targets are the throwaway PostgreSQL and SeaweedFS (scripts/with-postgres,
scripts/with-seaweedfs); the copies are checked by ``sovra-verify tiles`` from a folder.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from tests.cli.conftest import Sovra, s3_options

import sovra.migrate as moving
from sovra.config import Config, RegionConfig, TilesConfig, render_default_config
from sovra.deployment import LOG_VKEY
from sovra.errors import Unavailable
from sovra.targets import S3Settings, parse_blobs, parse_tiles
from sovra_verify.cli import main as verify

_KEYS = [
    *("--s3-access-key-env", "SOVRA_TEST_S3_ACCESS_KEY"),
    *("--s3-secret-key-env", "SOVRA_TEST_S3_SECRET_KEY"),
]


@pytest.fixture
def embedded(sovra: Sovra, tmp_path: Path) -> Path:
    """An embedded deployment the demo ran on, and one entry logged after its newest
    checkpoint (a principal added): the tiles go up to that checkpoint, none is signed."""
    root = tmp_path / "dep"
    assert sovra("init", root, "--custodians", "in-process").code == 0
    ran = sovra("demo", "--synthetic", "8", "--deployment", root)
    assert ran.code == 0, ran.err
    added = sovra(
        "principal", "add", "svc-late", "-j", "PL", "--role", "service",
        "--key-out", root.parent / "late.key", "-d", root,
    )  # fmt: skip
    assert added.code == 0, added.err
    return root


def _log_facts(root: Path) -> tuple[int, int, int]:
    """The embedded log's size, its newest checkpoint's size and its checkpoints' count."""
    with closing(sqlite3.connect(root / "sovra.db")) as db:
        (size,) = db.execute("SELECT count(*) FROM log_entries").fetchone()
        newest, count = db.execute("SELECT max(size), count(*) FROM log_checkpoints").fetchone()
    return size, newest, count


def _verified(root: Path, folder: Path) -> None:
    vkey = (root / LOG_VKEY).read_text().strip()
    assert verify(["tiles", str(folder), "--vkey", vkey]) == 0


def _untouched(root: Path, config: str) -> None:
    assert (root / "sovra.toml").read_text() == config
    assert not (root / "sovra.toml.embedded").exists()
    assert not (root / moving.STATE_NAME).exists()


@pytest.mark.postgres
@pytest.mark.s3
def test_migrate_tiles_to_a_folder_publishes_and_audits_the_moved_log(
    embedded: Path, pg_dsn: str, s3_bucket
) -> None:
    size, newest, checkpoints = _log_facts(embedded)
    assert newest < size  # the principal's entry came after the newest checkpoint
    regions = parse_blobs(
        [f"eu-central-pl={s3_bucket.url}pl"],
        S3Settings(endpoint=s3_bucket.endpoint, access_key_env="SOVRA_TEST_S3_ACCESS_KEY",
                   secret_key_env="SOVRA_TEST_S3_SECRET_KEY"),
    )  # fmt: skip
    seen: dict[str, tuple[int, int | None]] = {}
    report = moving.migrate(
        embedded,
        pg_dsn,
        regions,
        tiles=parse_tiles("public/log", S3Settings()),
        progress=lambda stage, done, total: seen.__setitem__(stage, (done, total)),
    )
    folder = embedded / "public" / "log"
    assert report.tiles is not None
    assert report.tiles["where"] == str(folder)
    assert report.tiles["size"] == newest and report.tiles["entries_verified"] == newest
    assert report.tiles["files_written"] > 0
    # The progress bar's two stages ran to their ends.
    assert seen["tiles"][0] == seen["tiles"][1] == report.tiles["files_written"]
    assert seen["verify tiles"][0] == seen["verify tiles"][1] == newest
    assert Config.load(embedded / "sovra.toml").log_tiles == TilesConfig("public/log")
    _verified(embedded, folder)
    # No checkpoint was signed for the move: the moved log has the embedded one's.
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT count(*), max(size) FROM log_checkpoints").fetchone()
    assert row == (checkpoints, newest)


@pytest.mark.postgres
@pytest.mark.s3
def test_migrate_tiles_to_a_bucket_and_the_moved_deployment_publishes_on(
    sovra: Sovra, embedded: Path, tmp_path: Path, pg_dsn: str, s3_bucket
) -> None:
    size, newest, _ = _log_facts(embedded)
    place = f"{s3_bucket.url}log"
    ran = sovra(
        "migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket), "--tiles", place,
        "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    tiles = ran.json()["tiles"]
    assert place in tiles["where"] and tiles["size"] == newest
    config = Config.load(embedded / "sovra.toml")
    assert config.log_tiles is not None and config.log_tiles.bucket is not None
    assert (config.log_tiles.location, config.log_tiles.bucket.endpoint) == (
        place, s3_bucket.endpoint,
    )  # fmt: skip
    assert config.log_tiles.bucket.secret_key_env == "SOVRA_TEST_S3_SECRET_KEY"

    def copy() -> Path:
        """The bucket's copy, in a folder of its own, for the verifier."""
        folder = tmp_path / f"copy-{len(list(tmp_path.glob('copy-*')))}"
        start = f"{s3_bucket.prefix}log/"
        for key, data in s3_bucket.objects().items():
            if key.startswith(start):
                path = folder / key[len(start) :]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        return folder

    _verified(embedded, copy())
    # The moved deployment carries on publishing there: past the move's checkpoint.
    ran = sovra("log", "publish-tiles", "-d", embedded, "--json")
    assert ran.code == 0, ran.err
    assert (ran.json()["previous"], ran.json()["size"]) == (newest, size)
    _verified(embedded, copy())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tiles", "/srv/tiles"], "--tiles '/srv/tiles' must be a folder inside the deployment"),
        (["--tiles", "a/../../x"], "--tiles 'a/../../x' must be a folder inside the deployment"),
        (["--tiles", "s3://Bad_Bucket/x"], "--tiles: S3 bucket name 'Bad_Bucket' is not valid"),
        (["--tiles", "tiles", "--s3-endpoint", "http://x"], "the --s3-* options describe"),
        (
            ["--tiles", "tiles", "--blobs", "us-east=s3://b-1", "--s3-endpoint", "log.tiles=x"],
            "--s3-endpoint 'log.tiles=x' names the tile bucket: add --tiles s3://",
        ),
    ],
)
def test_migrate_refuses_a_bad_tiles_option_before_anything(
    sovra: Sovra, template: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "dep"
    root.mkdir()
    (root / "sovra.toml").write_text((template / "sovra.toml").read_text())
    config = (root / "sovra.toml").read_text()
    ran = sovra("migrate", root, "--database", "postgresql://127.0.0.1:1/x", *args)
    assert ran.code == 1, ran.err
    assert message in ran.message
    _untouched(root, config)


@pytest.mark.postgres
@pytest.mark.s3
def test_migrate_refuses_a_tile_place_another_log_publishes_to(
    sovra: Sovra, embedded: Path, tmp_path: Path, pg_dsn: str, s3_bucket, dead_url: str
) -> None:
    config = (embedded / "sovra.toml").read_text()
    move = ["migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket)]
    # A folder with another log's checkpoint, and a file where the folder would be.
    (embedded / "public").mkdir()
    (embedded / "public" / "checkpoint").write_text("another log's\n")
    ran = sovra(*move, "--tiles", "public")
    assert ran.code == 1
    assert f"{embedded / 'public'} already holds a log's checkpoint" in ran.message
    (embedded / "file").write_text("")
    ran = sovra(*move, "--tiles", "file")
    assert ran.code == 1 and "is not a folder" in ran.message
    _untouched(embedded, config)
    # A bucket prefix another deployment publishes its log to.
    other = tmp_path / "other"
    place = f"{s3_bucket.url}log"
    init = sovra("init", other, "--custodians", "in-process", "--tiles", place,
                 "--s3-endpoint", s3_bucket.endpoint, *_KEYS)  # fmt: skip
    assert init.code == 0, init.err
    assert sovra("log", "publish-tiles", "-d", other).code == 0
    ran = sovra(*move, "--tiles", place)
    assert ran.code == 1
    assert "already holds a log's checkpoint" in ran.message
    _untouched(embedded, config)
    # A tile bucket that cannot be reached, and one that does not exist.
    ran = sovra(*move, "--tiles", f"{s3_bucket.url}log2", "--s3-endpoint", f"log.tiles={dead_url}")
    assert ran.code == 5, ran.err
    assert "cannot be reached" in ran.message
    ran = sovra(*move, "--tiles", "s3://no-such-tile-bucket/x")
    assert ran.code == 1 and "does not exist" in ran.message
    _untouched(embedded, config)
    assert not any("/log2/" in key for key in s3_bucket.objects())


@pytest.mark.postgres
@pytest.mark.s3
def test_migrate_with_tiles_carries_on_after_a_failure_past_the_publication(
    sovra: Sovra, embedded: Path, pg_dsn: str, s3_bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment seen to change after the tiles were published: the move stops; run
    again, the place holds this log's own checkpoint, which is no refusal, and nothing
    is written twice."""
    _, newest, _ = _log_facts(embedded)
    config = (embedded / "sovra.toml").read_text()
    move = ["migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket)]
    real = moving._require_unchanged

    def changed(parts, report):
        raise Unavailable("the deployment's database went away")

    monkeypatch.setattr(moving, "_require_unchanged", changed)
    failed = sovra(*move, "--tiles", "public")
    assert failed.code == 5
    assert (embedded / "public" / "checkpoint").is_file()
    assert (embedded / "sovra.toml").read_text() == config
    monkeypatch.setattr(moving, "_require_unchanged", real)
    elsewhere = sovra(*move, "--tiles", "elsewhere")
    assert elsewhere.code == 1
    assert "an earlier sovra migrate" in elsewhere.message
    again = sovra(*move, "--tiles", "public", "--json")
    assert again.code == 0, again.err
    report = again.json()
    assert report["resumed"] is True
    assert report["tiles"]["files_written"] == 0 and report["tiles"]["size"] == newest
    _verified(embedded, embedded / "public")


@pytest.mark.postgres
@pytest.mark.s3
def test_migrate_tiles_of_a_log_never_checkpointed_publishes_nothing_yet(
    sovra: Sovra, tmp_path: Path, pg_dsn: str, s3_bucket
) -> None:
    """A deployment that never served has signed no checkpoint: the move signs none, writes
    [log.tiles], and the moved deployment publishes there once it signs one."""
    root = tmp_path / "dep"
    assert sovra("init", root, "--custodians", "in-process").code == 0
    ran = sovra("migrate", root, "--database", pg_dsn, *s3_options(s3_bucket), "--tiles", "tiles")
    assert ran.code == 0, ran.err
    said = " ".join(ran.out.split())
    assert "nothing published to" in said and "(the log has no checkpoint)" in said
    assert not (root / "tiles" / "checkpoint").exists()
    assert Config.load(root / "sovra.toml").log_tiles == TilesConfig("tiles")
    published = sovra("log", "publish-tiles", "-d", root, "--json")
    assert published.code == 0, published.err
    _verified(root, root / "tiles")


def test_the_moved_configuration_gets_its_tiles_table_where_init_would_write_it() -> None:
    """In place of the commented table ``sovra init`` writes, of a table the deployment
    had (its comments kept), or at the end; the rest of the file as it was."""
    bucket = RegionConfig("log.tiles", blobs="s3://tile-bucket/log", endpoint="http://s3.test")
    tiles = TilesConfig("s3://tile-bucket/log", bucket=bucket)
    database = "postgresql://db.example/sovra"
    commented = render_default_config("sovra.test/m", ["PL"])
    had = render_default_config("sovra.test/m", ["PL"], tiles=TilesConfig("public", 5.0))
    last = "remove_partial_tiles = true\n"  # the table's last setting
    had = had.replace(last, last + "# served by the CDN\n", 1)
    bare = "\n".join(line for line in commented.splitlines() if "tiles" not in line) + "\n"
    expected = render_default_config("sovra.test/m", ["PL"], database=database, tiles=tiles)
    assert moving._target_config(commented, database, [], tiles) == expected
    moved = moving._target_config(had, database, [], tiles)
    assert Config.from_text(moved, "moved").log_tiles == tiles
    assert "# served by the CDN" in moved and 'location = "public"' not in moved
    moved = moving._target_config(bare, database, [], tiles)
    assert Config.from_text(moved, "moved").log_tiles == tiles
    assert moved.startswith(bare.replace('"sovra.db"', f'"{database}"'))
