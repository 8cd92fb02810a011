"""The log published as static C2SP tlog-tiles files, into a folder or an S3 bucket, and
verified from there by ``sovra-verify tiles`` and by an independent tlog-tiles verifier
(aics-tlog, see test_ledger_witness_interop.py): full tiles written once, partial tiles
and the checkpoint following the log, a tampered file found, a failed upload caught up.

The bucket is a real SeaweedFS (scripts/with-seaweedfs), read back over plain HTTP
without a key, as a CDN in front of a public bucket would serve it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from tests.conftest import S3Bucket
from tests.scaleout import post_signed
from typer.testing import CliRunner

from sovra.cli import app as cli
from sovra.config import Config
from sovra.deployment import CONFIG_NAME, LOG_VKEY, Deployment
from sovra.errors import ConfigError, IntegrityError, NotFound, Unavailable
from sovra.ledger import (
    CheckpointCosignatures,
    CosignatureSigner,
    MemoryLogStorage,
    NoteSigner,
    TransparencyLog,
    Witness,
)
from sovra.ledger.tiles_publish import TilePublisher
from sovra.ledger.tiles_store import IMMUTABLE, FolderTileStore, S3TileStore, TileStore
from sovra.server import create_app
from sovra.store.s3 import parse_s3_url
from sovra_verify.cli import EXIT_UNVERIFIED, main
from sovra_verify.static import static_log
from sovra_verify.tiles import audit_tiles, entries_path, tile_path

ORIGIN = "tiles.sovra.example/published"
SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def _log() -> TransparencyLog:
    return TransparencyLog(MemoryLogStorage(), SIGNER, ORIGIN, publish_after_batch=True)


def _grow(log: TransparencyLog, count: int) -> None:
    start = log.size
    for first in range(start, start + count, 10_000):
        end = min(start + count, first + 10_000)
        log.append_many([(b'{"kind":"test","n":%d}' % n, ()) for n in range(first, end)])


def _verify(source: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``sovra-verify tiles SOURCE --vkey KEY``: its exit code and what it printed."""
    code = main(["tiles", source, "--vkey", SIGNER.vkey])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def _aics(source: str, *more: str) -> dict[str, object]:
    """aics-tlog's verify-checkpoint over the tiles at *source* (with *more* arguments):
    its JSON report."""
    pytest.importorskip("aics_tlog", reason="scripts/bootstrap installs aics-tlog")
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "aics_tlog",
            "verify-checkpoint",
            "--tiles",
            source,
            "--log-key",
            SIGNER.vkey,
            *more,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report: dict[str, object] = json.loads(ran.stdout)
    report["exit"] = ran.returncode
    return report


# -- a folder ----------------------------------------------------------------------------------


def test_a_published_folder_is_verified_by_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log()
    publisher = TilePublisher(log, FolderTileStore(tmp_path / "tiles"))
    sizes = []
    for count in (1, 255, 300, 65_536 - 556 + 3, 7):
        _grow(log, count)
        sizes.append(publisher.publish().size)
    assert sizes[-1] == log.size == 65_546  # past 65,536: a level-2 tile
    code, said = _verify(str(tmp_path / "tiles"), capsys)
    assert code == 0, said
    assert f"verified {log.size} entries" in said
    report = _aics(str(tmp_path / "tiles"))
    assert report["exit"] == 0 and report["tiles_ok"] is True, report
    assert report["size"] == log.size


def test_full_tiles_are_written_once_and_partial_tiles_follow_the_log(tmp_path: Path) -> None:
    log = _log()
    store = FolderTileStore(tmp_path / "tiles")
    publisher = TilePublisher(log, store)
    _grow(log, 300)
    first = publisher.publish()
    assert (first.previous, first.size) == (0, 300)
    # tile/0/000, tile/0/001.p/44, the two bundles, tile/1/000.p/1
    assert first.files == 5
    full = tmp_path / "tiles" / tile_path(0, 0)
    stamp = full.stat()
    assert full.read_bytes() == log.tile(0, 0)
    _grow(log, 10)
    second = publisher.publish()
    assert (second.previous, second.size, second.files) == (300, 310, 2)
    assert full.stat().st_ino == stamp.st_ino and full.stat().st_mtime_ns == stamp.st_mtime_ns
    for width in (44, 54):  # each partial tile is its own immutable file
        assert (tmp_path / "tiles" / tile_path(0, 1, width)).read_bytes() == log.tile(0, 1, width)
    assert (tmp_path / "tiles" / "checkpoint").read_text() == log.latest_checkpoint()
    # Nothing new: nothing written, and a new publisher finds where the store is.
    assert publisher.publish().files == 0
    again = TilePublisher(log, store)
    assert again.published_size() == 310 and again.publish().files == 0


def test_a_tampered_file_is_found_by_the_verifiers_and_refused_by_the_publisher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log()
    folder = tmp_path / "tiles"
    _grow(log, 600)
    TilePublisher(log, FolderTileStore(folder)).publish()
    bundle = folder / entries_path(1)
    data = bytearray(bundle.read_bytes())
    data[300] ^= 1  # inside entry 256 + (a few): the verifier names it
    bundle.write_bytes(bytes(data))
    code, said = _verify(str(folder), capsys)
    assert code == EXIT_UNVERIFIED, said
    assert "NOT VERIFIED" in said
    found = re.search(r"first bad index (\d+)", said)
    assert found is not None and 256 <= int(found.group(1)) < 512, said
    # Republishing from nothing meets the altered file and names it, unless repairing.
    with pytest.raises(IntegrityError, match=r"tile/entries/001"):
        _republish_all(log, folder)
    repaired = TilePublisher(log, FolderTileStore(folder)).publish(repair=True)
    assert repaired.files == 1  # only the altered bundle was rewritten
    code, said = _verify(str(folder), capsys)
    assert code == 0, said


def _republish_all(log: TransparencyLog, folder: Path) -> None:
    """A publisher whose store lost its checkpoint writes (and checks) every file again."""
    (folder / "checkpoint").unlink()
    TilePublisher(log, FolderTileStore(folder)).publish()


def test_a_tampered_checkpoint_is_refused_and_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log()
    folder = tmp_path / "tiles"
    _grow(log, 40)
    publisher = TilePublisher(log, FolderTileStore(folder))
    publisher.publish()
    note = (folder / "checkpoint").read_text()
    (folder / "checkpoint").write_text(note.replace("\n40\n", "\n41\n"))
    code, said = _verify(str(folder), capsys)
    assert code == EXIT_UNVERIFIED, said
    # A publisher that finds a checkpoint it did not sign starts over and replaces it.
    fresh = TilePublisher(log, FolderTileStore(folder))
    assert fresh.published_size() == 0
    assert fresh.publish().checkpoint is True
    assert _verify(str(folder), capsys)[0] == 0


def test_a_store_ahead_of_the_log_is_refused(tmp_path: Path) -> None:
    log = _log()
    _grow(log, 20)
    folder = tmp_path / "tiles"
    TilePublisher(log, FolderTileStore(folder)).publish()
    shorter = TransparencyLog(MemoryLogStorage(), SIGNER, ORIGIN)
    _grow(shorter, 5)
    with pytest.raises(ConfigError, match="holds a checkpoint of size 20, but the log holds 5"):
        TilePublisher(shorter, FolderTileStore(folder)).publish()
    assert (folder / "checkpoint").read_text() == log.latest_checkpoint()


def test_a_publisher_that_does_not_sign_publishes_the_newest_stored_checkpoint(
    tmp_path: Path,
) -> None:
    """What ``sovra migrate`` publishes: the moved log as it is, no checkpoint signed."""
    storage = MemoryLogStorage()
    log = TransparencyLog(storage, SIGNER, ORIGIN)
    witness = _witness(log, "w1.example/witness")
    cosignatures = CheckpointCosignatures(log, storage, [witness.vkey], quorum=1)
    _grow(log, 20)
    for cosigned in (None, cosignatures):  # the witness has cosigned nothing
        folder = tmp_path / f"tiles-{cosigned is None}"
        publisher = TilePublisher(log, FolderTileStore(folder), cosigned, sign=False)
        with pytest.raises(NotFound, match="the log has no checkpoint yet"):
            publisher.publish()
        assert log.checkpoints() == [] and not (folder / "checkpoint").exists()
    note = log.checkpoint()
    _grow(log, 5)
    for cosigned in (None, cosignatures):
        folder = tmp_path / f"tiles-{cosigned is None}"
        publisher = TilePublisher(log, FolderTileStore(folder), cosigned, sign=False)
        assert publisher.publish().size == 20
        assert log.checkpoints() == [note]
        assert (folder / "checkpoint").read_text() == note


def test_sovra_verify_refuses_what_is_not_a_static_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _verify(str(tmp_path / "absent"), capsys)[0] == 1
    assert _verify("ftp://example.org/log", capsys)[0] == 1
    (tmp_path / "empty").mkdir()
    code, said = _verify(str(tmp_path / "empty"), capsys)
    assert code != 0 and "checkpoint" in said


# -- sovra.toml and the command ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("every_s = 1", "[log.tiles] location must be"),
        ('location = "/var/tiles"', "must be a folder inside the deployment"),
        ('location = "../tiles"', "must be a folder inside the deployment"),
        ('location = "tiles"\nendpoint = "http://x"', 'endpoint needs location = "s3://..."'),
        ('location = "s3://Bad_Bucket/x"', "S3 bucket name 'Bad_Bucket' is not valid"),
        ('location = "tiles"\nevery_s = 0', "every_s must be seconds in (0, 3600]"),
        ('location = "s3://b-1/x"\naccess_key_env = "low"\nsecret_key_env = "S"', "(upper case)"),
        ('location = "tiles"\nbucket = "b"', "[log.tiles] has unknown"),
        (
            'location = "tiles"\nremove_partial_tiles = "no"',
            "[log.tiles] remove_partial_tiles must be true or false, got 'no'",
        ),
    ],
)
def test_bad_tile_settings_are_refused_naming_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/tiles-cfg", custodians="in-process")
    text = (root / CONFIG_NAME).read_text() + f"\n[log.tiles]\n{table}\n"
    with pytest.raises(ConfigError) as refused:
        Config.from_text(text, "sovra.toml")
    assert message in refused.value.message


def test_publish_tiles_backfills_an_existing_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/tiles-cli", custodians="in-process")
    dep = Deployment.open(root)
    try:
        svc = dep.store.get_principal("svc-pl")
        for n in range(3):
            dep.gateway.ingest(svc, subject_id=f"p{n}@example.pl", jurisdiction="PL", content="x")
        size, vkey = dep.gateway.log.size, dep.gateway.log.verifier_key
    finally:
        dep.close()
    runner = CliRunner()
    missing = runner.invoke(cli, ["log", "publish-tiles", "-d", str(root)])
    assert missing.exit_code != 0 and "has no [log.tiles] table" in missing.output
    with (root / CONFIG_NAME).open("a") as f:
        f.write('\n[log.tiles]\nlocation = "public/log"\n')
    ran = runner.invoke(cli, ["log", "publish-tiles", "-d", str(root), "--json"])
    assert ran.exit_code == 0, ran.output
    facts = json.loads(ran.output)
    assert facts["size"] >= size and facts["previous"] == 0 and facts["files_written"] > 0
    code = main(["tiles", str(root / "public" / "log"), "--vkey", vkey])
    assert code == 0, capsys.readouterr()
    again = json.loads(
        runner.invoke(cli, ["log", "publish-tiles", "-d", str(root), "--json"]).output
    )
    assert again["files_written"] == 0 and again["previous"] == facts["size"]
    # A file altered in the store: refused with exit 3 naming it, rewritten with --repair.
    folder = root / "public" / "log"
    (folder / "checkpoint").unlink()
    bundle = folder / entries_path(0, facts["size"])
    bundle.write_bytes(bundle.read_bytes()[:-1] + b"!")
    refused = runner.invoke(cli, ["log", "publish-tiles", "-d", str(root)])
    assert refused.exit_code == 3, refused.output
    assert entries_path(0, facts["size"]) in refused.output
    repaired = runner.invoke(cli, ["log", "publish-tiles", "-d", str(root), "--repair", "--json"])
    assert repaired.exit_code == 0, repaired.output
    assert json.loads(repaired.output)["partials_removed"] == 0  # the log is one partial tile
    assert main(["tiles", str(folder), "--vkey", vkey]) == 0, capsys.readouterr()


# -- an S3 bucket (SeaweedFS) ------------------------------------------------------------------


@pytest.fixture
def public_bucket(s3_bucket: S3Bucket) -> Iterator[S3Bucket]:
    """A prefix of its own in the bucket anyone may read without a key, emptied after."""
    name = os.environ.get("SOVRA_TEST_S3_PUBLIC_BUCKET")
    if not name:
        if os.environ.get("CI"):
            pytest.fail("scripts/with-seaweedfs exports no SOVRA_TEST_S3_PUBLIC_BUCKET in CI")
        pytest.skip("scripts/with-seaweedfs exports no SOVRA_TEST_S3_PUBLIC_BUCKET here")
    client = s3_bucket.client()
    try:
        client.create_bucket(Bucket=name)
    except client.exceptions.ClientError as exc:  # made by another test first
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    bucket = S3Bucket(
        s3_bucket.endpoint,
        s3_bucket.access_key,
        s3_bucket.secret_key,
        name,
        f"log-{secrets.token_hex(6)}/",
    )
    try:
        yield bucket
    finally:
        for key in bucket.objects():
            client.delete_object(Bucket=name, Key=key)


def _s3_store(bucket: S3Bucket, **changes: str) -> S3TileStore:
    args = {"endpoint": bucket.endpoint, "access_key": bucket.access_key} | {
        "secret_key": bucket.secret_key
    }
    args.update(changes)
    return S3TileStore(parse_s3_url(f"s3://{bucket.name}/{bucket.prefix}"), **args)


def _url(bucket: S3Bucket) -> str:
    return f"{bucket.endpoint}/{bucket.name}/{bucket.prefix}".rstrip("/")


@pytest.mark.s3
def test_a_published_bucket_is_verified_over_http_by_both_verifiers(
    public_bucket: S3Bucket, capsys: pytest.CaptureFixture[str]
) -> None:
    import urllib.request

    log = _log()
    publisher = TilePublisher(log, _s3_store(public_bucket))
    for count in (3, 700, 5):
        _grow(log, count)
        publisher.publish()
    url = _url(public_bucket)
    code, said = _verify(url, capsys)
    assert code == 0, said
    assert f"verified {log.size} entries" in said
    report = _aics(url)
    assert report["exit"] == 0 and report["tiles_ok"] is True, report
    with urllib.request.urlopen(f"{url}/{tile_path(0, 0)}") as answer:
        assert answer.read() == log.tile(0, 0)
        assert answer.headers["Cache-Control"] == IMMUTABLE
    with urllib.request.urlopen(f"{url}/checkpoint") as answer:
        assert answer.read().decode() == log.latest_checkpoint()
        assert answer.headers["Cache-Control"] == "no-cache"


@pytest.mark.s3
def test_a_tampered_tile_in_the_bucket_is_detected(
    public_bucket: S3Bucket, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log()
    _grow(log, 520)
    TilePublisher(log, _s3_store(public_bucket)).publish()
    # The newest leaves' tile, which every verifier needs for the root.
    client, key = public_bucket.client(), public_bucket.prefix + tile_path(0, 2, 8)
    data = bytearray(client.get_object(Bucket=public_bucket.name, Key=key)["Body"].read())
    data[32 * 5] ^= 0x80  # the leaf hash of entry 512 + 5
    client.put_object(Bucket=public_bucket.name, Key=key, Body=bytes(data))
    code, said = _verify(_url(public_bucket), capsys)
    assert code == EXIT_UNVERIFIED, said
    assert "entry 517 does not hash to its leaf hash" in said
    assert _aics(_url(public_bucket))["exit"] != 0


def test_an_endpoint_that_stops_answering_is_unavailable() -> None:
    # Taken and never answered, as by a hung server: a read timeout, retried later.
    log = _log()
    _grow(log, 10)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        store = S3TileStore(
            parse_s3_url("s3://any-bucket/"),
            endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}",
            access_key="a",
            secret_key="b",
            timeout_s=0.2,
        )
        with pytest.raises(Unavailable, match="cannot be reached"):
            TilePublisher(log, store).publish()


@pytest.mark.s3
def test_a_failed_upload_loses_nothing_and_is_caught_up(
    public_bucket: S3Bucket, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log()
    _grow(log, 100)
    good = TilePublisher(log, _s3_store(public_bucket))
    good.publish()
    _grow(log, 300)
    # The endpoint cannot be reached: a 503-like error, nothing written.
    unreachable = TilePublisher(log, _s3_store(public_bucket, endpoint="http://127.0.0.1:1"))
    with pytest.raises(Unavailable, match="cannot be reached"):
        unreachable.publish()
    # A key that may read but not write: refused, the checkpoint unmoved.
    readonly = TilePublisher(
        log,
        _s3_store(
            public_bucket,
            access_key=os.environ["SOVRA_TEST_S3_READONLY_ACCESS_KEY"],
            secret_key=os.environ["SOVRA_TEST_S3_READONLY_SECRET_KEY"],
        ),
    )
    with pytest.raises(ConfigError, match="access denied"):
        readonly.publish()
    code, said = _verify(_url(public_bucket), capsys)
    assert code == 0 and "up to size 100" in said, said
    assert log.size == 400  # the log lost nothing meanwhile
    caught = good.publish()
    assert (caught.previous, caught.size) == (100, 400)
    code, said = _verify(_url(public_bucket), capsys)
    assert code == 0 and "verified 400 entries" in said, said


@pytest.mark.s3
def test_the_server_serves_from_its_database_while_the_bucket_refuses_writes(
    tmp_path: Path,
    public_bucket: S3Bucket,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="sovra.ledger")
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/tiles-serve", custodians="in-process")
    with (root / CONFIG_NAME).open("a") as f:
        f.write(
            f'\n[log.tiles]\nlocation = "s3://{public_bucket.name}/{public_bucket.prefix}"\n'
            f'endpoint = "{public_bucket.endpoint}"\nevery_s = 0.05\n'
            'access_key_env = "TILES_TEST_ACCESS"\nsecret_key_env = "TILES_TEST_SECRET"\n'
        )
    os.environ["TILES_TEST_ACCESS"] = os.environ["SOVRA_TEST_S3_READONLY_ACCESS_KEY"]
    os.environ["TILES_TEST_SECRET"] = os.environ["SOVRA_TEST_S3_READONLY_SECRET_KEY"]
    try:
        dep = Deployment.open(root)
        try:
            with TestClient(create_app(dep)) as http:
                record = {"subject_id": "anna@example.pl", "jurisdiction": "PL", "content": "hi"}
                answer = post_signed(http, dep, "svc-pl", "/v1/records", record)
                assert answer.status_code == 201, answer.text
                # The background round met the refusal, said so, and the server went on.
                deadline = time.monotonic() + 30
                while "access denied" not in caplog.text and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert "publishing the log's tiles to tile bucket" in caplog.text
                assert "access denied" in caplog.text
                tile = http.get(f"/v1/log/{tile_path(0, 0, dep.gateway.log.size)}")
                assert tile.status_code == 200
                again = post_signed(http, dep, "svc-pl", "/v1/records", record)
                assert again.status_code == 201, again.text
                vkey = dep.gateway.log.verifier_key
            assert public_bucket.objects() == {}  # the refused writes left nothing
            # With a key that may write, the same deployment's log catches up.
            os.environ["TILES_TEST_ACCESS"] = public_bucket.access_key
            os.environ["TILES_TEST_SECRET"] = public_bucket.secret_key
            ran = CliRunner().invoke(cli, ["log", "publish-tiles", "-d", str(root), "--json"])
            assert ran.exit_code == 0, ran.output
            assert json.loads(ran.output)["size"] == dep.gateway.log.size
        finally:
            dep.close()
    finally:
        del os.environ["TILES_TEST_ACCESS"], os.environ["TILES_TEST_SECRET"]
    assert main(["tiles", _url(public_bucket), "--vkey", vkey]) == 0, capsys.readouterr()


# -- partial tiles removed once their full tile is there ----------------------------------------


@pytest.fixture(params=["folder", pytest.param("bucket", marks=pytest.mark.s3)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[TileStore, str]:
    """A tile store (a folder, or a prefix of the public bucket) and where a reader reads it."""
    if request.param == "folder":
        return FolderTileStore(tmp_path / "tiles"), str(tmp_path / "tiles")
    bucket = request.getfixturevalue("public_bucket")
    return _s3_store(bucket), _url(bucket)


def _holds(store: TileStore, *paths: str) -> list[bool]:
    return [store.get(path) is not None for path in paths]


def test_partial_tiles_go_once_their_full_tile_is_there(
    place: tuple[TileStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store, source = place
    log = _log()
    publisher = TilePublisher(log, store)
    _grow(log, 300)
    publisher.publish()
    old_note = log.latest_checkpoint()
    _grow(log, 10)
    assert publisher.publish().removed == 0
    # Tile 1 is still partial: both of its widths stay (an older checkpoint names the first).
    older = [tile_path(0, 1, 44), entries_path(1, 44), tile_path(0, 1, 54), entries_path(1, 54)]
    assert _holds(store, *older) == [True] * 4
    _grow(log, 290)  # 600: tile 1 full, tile 2 partial
    result = publisher.publish()
    assert result.removed == 4
    assert _holds(store, *older) == [False] * 4
    assert store.partials(tile_path(0, 1)) == [] and store.partials(entries_path(1)) == []
    # What the checkpoint names stays: the full tile 1, the partial tile 2 and level 1's.
    named = [tile_path(0, 1), entries_path(1), tile_path(0, 2, 88), entries_path(2, 88)]
    assert _holds(store, *named, tile_path(1, 0, 2)) == [True] * 5
    assert _holds(store, tile_path(1, 0, 1)) == [True]  # level 1's tile 0 is not full yet
    code, said = _verify(source, capsys)
    assert code == 0 and "verified 600 entries" in said, said
    report = _aics(source)
    assert report["exit"] == 0 and report["tiles_ok"] is True, report
    # A reader who read the checkpoint of 310 before this round finds its partial tiles
    # gone, and reads them from the full ones: the audit of that checkpoint still holds.
    copy = static_log(source)
    with pytest.raises(NotFound):
        copy._file(tile_path(0, 1, 54))
    audit = audit_tiles(copy.log_file, [old_note, log.latest_checkpoint()], SIGNER.vkey)
    audit.check()
    assert (audit.size, audit.checkpoints) == (600, 2)


def test_repair_removes_partial_tiles_a_round_left_behind(
    place: tuple[TileStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store, source = place
    log = _log()
    _grow(log, 512)
    TilePublisher(log, store).publish()
    # A replica wrote the files of size 600 and stopped before its checkpoint.
    _grow(log, 88)
    stray = [tile_path(0, 2, 88), entries_path(2, 88)]
    for level, path in ((0, stray[0]), (None, stray[1])):
        data = log.tile(0, 2, 88) if level == 0 else log.entry_bundle(2, 88)
        store.put_once(path, data)
    _grow(log, 200)  # 800: tile 2 full
    result = TilePublisher(log, store).publish()
    # The store's checkpoint (512) named no partial tile at level 0: the stray ones stay.
    assert (result.size, result.removed) == (800, 0)
    assert _holds(store, *stray) == [True, True]
    repaired = TilePublisher(log, store).publish(repair=True)
    assert (repaired.files, repaired.removed) == (0, 2)
    assert _holds(store, *stray) == [False, False]
    assert _holds(store, tile_path(0, 3, 32), entries_path(3, 32)) == [True, True]
    assert set(store.partials()) == {
        tile_path(0, 3, 32),
        entries_path(3, 32),
        tile_path(1, 0, 2),
        tile_path(1, 0, 3),
    }
    code, said = _verify(source, capsys)
    assert code == 0 and "verified 800 entries" in said, said


def test_a_removal_that_fails_leaves_the_copy_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.WARNING, logger="sovra.ledger")
    folder = tmp_path / "tiles"
    log = _log()
    publisher = TilePublisher(log, FolderTileStore(folder))
    _grow(log, 300)
    publisher.publish()
    # Something that is not a folder of partial tiles sits where tile 1's are.
    partials = folder / "tile" / "0" / "001.p"
    for child in partials.iterdir():
        child.unlink()
    partials.rmdir()
    partials.write_text("not a folder")
    _grow(log, 300)
    result = publisher.publish()
    assert (result.size, result.checkpoint, result.removed) == (600, True, 0)
    assert "old partial tiles could not be removed" in caplog.text
    assert str(partials) in caplog.text
    assert _verify(str(folder), capsys)[0] == 0
    with pytest.raises(ConfigError, match=r"001\.p"):
        publisher.publish(repair=True)
    partials.unlink()
    assert publisher.publish(repair=True).removed == 1  # entries/001.p/44


def _refuse_removals(folder: Path, index: int) -> None:
    """Make the removal of level-0 tile *index*'s partial tiles fail: a file where the
    folder that holds them is (the next round that fills the tile lists that folder)."""
    partials = folder / "tile" / "0" / f"{index:03d}.p"
    for child in partials.iterdir():
        child.unlink()
    partials.rmdir()
    partials.write_text("not a folder")


def _removal_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not be removed" in r.getMessage()]


def test_removals_that_keep_failing_are_warned_of_once_then_at_most_hourly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every round that fills a tile tries a removal; a store that refuses them is named
    once, then at most once an hour, with how many rounds failed meanwhile."""
    caplog.set_level(logging.WARNING, logger="sovra.ledger")
    folder = tmp_path / "tiles"
    now = [1_000.0]
    log = _log()
    publisher = TilePublisher(log, FolderTileStore(folder), clock=lambda: now[0])
    _grow(log, 300)
    publisher.publish()
    for index in (1, 2, 3):  # three rounds, each filling a tile, twenty minutes apart
        _refuse_removals(folder, index)
        _grow(log, 256)
        assert publisher.publish().removed == 0
        now[0] += 1_200
    (first,) = _removal_warnings(caplog)
    assert str(folder / "tile" / "0" / "001.p") in first
    assert "remove_partial_tiles = false in [log.tiles] stops the removals" in first
    assert "since the last warning" not in first
    _refuse_removals(folder, 4)  # an hour after the first warning
    _grow(log, 256)
    publisher.publish()
    assert len(_removal_warnings(caplog)) == 2
    assert "(in 3 rounds since the last warning)" in _removal_warnings(caplog)[1]
    # Removals work again, then fail again: named at once.
    _grow(log, 256)
    assert publisher.publish().removed == 2  # tile 5's partial tile and bundle
    _refuse_removals(folder, 6)
    _grow(log, 256)
    publisher.publish()
    assert len(_removal_warnings(caplog)) == 3
    assert "since the last warning" not in _removal_warnings(caplog)[2]
    assert _verify(str(folder), capsys)[0] == 0


def test_partial_tiles_stay_when_their_removal_is_turned_off(
    place: tuple[TileStore, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``remove_partial_tiles = false``: a store that may write but not delete keeps every
    partial tile, --repair included, and nothing is warned of."""
    caplog.set_level(logging.WARNING, logger="sovra.ledger")
    store, source = place
    log = _log()
    publisher = TilePublisher(log, store, remove_partials=False)
    _grow(log, 300)
    publisher.publish()
    _grow(log, 300)  # 600: tile 1 full, its partial tile and bundle left
    assert publisher.publish().removed == 0
    older = [tile_path(0, 1, 44), entries_path(1, 44)]
    assert _holds(store, *older, tile_path(0, 1), entries_path(1)) == [True] * 4
    assert publisher.publish(repair=True).removed == 0
    assert _holds(store, *older) == [True] * 2
    assert _removal_warnings(caplog) == []
    code, said = _verify(source, capsys)
    assert code == 0 and "verified 600 entries" in said, said


def test_publish_tiles_keeps_partial_tiles_when_the_deployment_says_so(tmp_path: Path) -> None:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/tiles-kept", custodians="in-process")
    with (root / CONFIG_NAME).open("a") as f:
        f.write('\n[log.tiles]\nlocation = "public"\nremove_partial_tiles = false\n')
    tiles = Config.load(root / CONFIG_NAME).log_tiles
    assert tiles is not None and tiles.remove_partial_tiles is False
    runner = CliRunner()
    held = []
    for count in (300, 256):
        dep = Deployment.open(root)
        try:
            _grow(dep.gateway.log, count)
            held.append(dep.gateway.log.size)
        finally:
            dep.close()
        ran = runner.invoke(cli, ["log", "publish-tiles", "-d", str(root), "--json"])
        assert ran.exit_code == 0, ran.output
        assert json.loads(ran.output)["partials_removed"] == 0
    first = held[0] % 256  # tile 1's width in the first copy: full in the second
    assert (root / "public" / tile_path(0, 1)).is_file()
    assert (root / "public" / tile_path(0, 1, first)).is_file()
    assert (root / "public" / entries_path(1, first)).is_file()


# -- the witnesses' cosignatures on the published checkpoint ------------------------------------


def _witness(log: TransparencyLog, name: str) -> Witness:
    signer = CosignatureSigner(name, Ed25519PrivateKey.generate(), clock=lambda: 1_790_000_000)
    return Witness(signer, [log.verifier_key])


def _cosign(cosignatures: CheckpointCosignatures, witness: Witness, log: TransparencyLog) -> int:
    """*witness* cosigns the log's newest checkpoint (from the size it holds); its size."""
    note = log.latest_checkpoint()
    assert note is not None
    size = int(note.split("\n")[1])
    held = witness.head(ORIGIN)
    old = 0 if held is None else held[0]
    proof = log.consistency_proof(old, size) if 0 < old < size else []
    cosignatures.submit(witness.add_checkpoint(note, old, proof))
    return size


def _verify_witnessed(
    source: str, capsys: pytest.CaptureFixture[str], *witnesses: Witness, quorum: int
) -> tuple[int, str]:
    args = ["tiles", source, "--vkey", SIGNER.vkey, "--quorum", str(quorum)]
    for witness in witnesses:
        args += ["--witness", witness.vkey]
    code = main(args)
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def _aics_witnessed(source: str, *witnesses: Witness, quorum: int) -> dict[str, object]:
    keys = [arg for w in witnesses for arg in ("--witness-key", w.vkey)]
    return _aics(source, *keys, "--quorum", str(quorum))


def test_the_copy_carries_the_checkpoint_its_witnesses_cosigned(
    place: tuple[TileStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store, source = place
    storage = MemoryLogStorage()
    log = TransparencyLog(storage, SIGNER, ORIGIN, publish_after_batch=True)
    w1, w2 = _witness(log, "w1.example/witness"), _witness(log, "w2.example/witness")
    cosignatures = CheckpointCosignatures(log, storage, [w1.vkey, w2.vkey], quorum=2)
    publisher = TilePublisher(log, store, cosignatures)
    _grow(log, 300)
    # No checkpoint has the quorum yet: the newest is published, and said to carry none.
    first = publisher.publish()
    assert (first.size, first.cosignatures) == (300, 0)
    code, said = _verify(source, capsys)
    assert code == 0 and "other keys" not in said, said
    code, said = _verify_witnessed(source, capsys, w1, w2, quorum=2)
    assert code == EXIT_UNVERIFIED, said
    assert "carries no cosignature by the 2 given witnesses" in said, said
    # w1 cosigns it: the same checkpoint, with w1's line, replaces the bare one.
    _cosign(cosignatures, w1, log)
    again = publisher.publish()
    assert (again.size, again.files, again.checkpoint, again.cosignatures) == (300, 0, True, 1)
    assert _verify_witnessed(source, capsys, w1, quorum=1)[0] == 0
    code, said = _verify(source, capsys)  # no witness key given: the line is named, unchecked
    assert code == 0 and "also carries 1 signature(s) by other keys (w1.example/witness)" in said
    code, said = _verify_witnessed(source, capsys, w1, w2, quorum=2)
    assert code == EXIT_UNVERIFIED and "1 of the 2 witness cosignatures required" in said, said
    # A publisher without witnesses never puts the bare checkpoint back.
    bare = TilePublisher(log, store).publish()
    assert (bare.size, bare.checkpoint) == (300, False)
    assert _verify_witnessed(source, capsys, w1, quorum=1)[0] == 0
    # With both lines the quorum is met, for either verifier.
    _cosign(cosignatures, w2, log)
    both = publisher.publish()
    assert (both.checkpoint, both.cosignatures) == (True, 2)
    code, said = _verify_witnessed(source, capsys, w1, w2, quorum=2)
    assert code == 0 and "cosigned checkpoint at size 300: 2 trusted witnesses" in said, said
    report = _aics_witnessed(source, w1, w2, quorum=2)
    assert report["exit"] == 0 and report["tiles_ok"] is True, report
    assert report["cosignatures"] == 2, report
    # The log grows: the copy stays at the cosigned checkpoint until the quorum cosigns
    # a newer one, then moves to it, tiles and all.
    _grow(log, 10)
    log.checkpoint()
    stay = publisher.publish()
    assert (stay.size, stay.files, stay.checkpoint) == (300, 0, False)
    assert _cosign(cosignatures, w1, log) == _cosign(cosignatures, w2, log) == 310
    moved = publisher.publish()
    assert (moved.previous, moved.size, moved.cosignatures) == (300, 310, 2)
    code, said = _verify_witnessed(source, capsys, w1, w2, quorum=2)
    assert code == 0 and "verified 310 entries" in said, said
    assert _aics_witnessed(source, w1, w2, quorum=2)["exit"] == 0


def test_a_forged_cosignature_in_the_copy_fails_and_is_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = MemoryLogStorage()
    log = TransparencyLog(storage, SIGNER, ORIGIN, publish_after_batch=True)
    w1 = _witness(log, "w1.example/witness")
    cosignatures = CheckpointCosignatures(log, storage, [w1.vkey], quorum=1)
    folder = tmp_path / "tiles"
    _grow(log, 20)
    _cosign(cosignatures, w1, log)
    TilePublisher(log, FolderTileStore(folder), cosignatures).publish()
    note = (folder / "checkpoint").read_text()
    line = note.rstrip("\n").rsplit("\n", 1)[1]
    name, blob = line[2:].split(" ")
    forged = bytearray(base64.b64decode(blob))
    forged[-1] ^= 1
    (folder / "checkpoint").write_text(
        note.replace(line, f"— {name} {base64.b64encode(bytes(forged)).decode()}")
    )
    code, said = _verify_witnessed(str(folder), capsys, w1, quorum=1)
    assert code == EXIT_UNVERIFIED, said
    # Its log signature holds, its witness line does not: a publisher puts the true one back.
    fixed = TilePublisher(log, FolderTileStore(folder), cosignatures).publish()
    assert (fixed.size, fixed.checkpoint) == (20, True)
    assert (folder / "checkpoint").read_text() == note
    assert _verify_witnessed(str(folder), capsys, w1, quorum=1)[0] == 0


def _witnessed_deployment(tmp_path: Path, name: str, tiles: str) -> tuple[Path, str, Witness]:
    """A deployment whose log names one witness (returned, with the log's vkey) and
    publishes its tiles to ``public/`` with the further ``[log.tiles]`` lines *tiles*."""
    root = tmp_path / "deployment"
    Deployment.init(root, origin=f"sovra.test/{name}", custodians="in-process")
    vkey = (root / LOG_VKEY).read_text().strip()
    witness = Witness(CosignatureSigner("w.example/w", Ed25519PrivateKey.generate()), [vkey])
    text = (root / CONFIG_NAME).read_text()
    text = text.replace("keys = []", f"keys = [{json.dumps(witness.vkey)}]", 1)
    (root / CONFIG_NAME).write_text(text + '\n[log.tiles]\nlocation = "public"\n' + tiles)
    return root, vkey, witness


def test_publish_tiles_publishes_the_deployments_cosigned_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, vkey, witness = _witnessed_deployment(tmp_path, "tiles-witnessed", "")
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        note = log.checkpoint()
        size = log.size
        assert dep.cosignatures is not None
        dep.cosignatures.submit(witness.add_checkpoint(note, 0, []))
    finally:
        dep.close()
    ran = CliRunner().invoke(cli, ["log", "publish-tiles", "-d", str(root), "--json"])
    assert ran.exit_code == 0, ran.output
    facts = json.loads(ran.output)
    assert (facts["size"], facts["cosignatures"]) == (size, 1)
    code = main(["tiles", str(root / "public"), "--vkey", vkey, "--witness", witness.vkey])
    assert code == 0, capsys.readouterr()


def test_the_server_publishes_the_checkpoint_once_its_witness_cosigned_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, vkey, witness = _witnessed_deployment(tmp_path, "tiles-served", "every_s = 0.05\n")
    copy = root / "public" / "checkpoint"
    dep = Deployment.open(root)
    try:
        with TestClient(create_app(dep)) as http:
            note = http.get("/v1/log/checkpoint").text
            deadline = time.monotonic() + 30
            while not (copy.exists() and copy.read_text() == note):
                assert time.monotonic() < deadline, "the bare checkpoint was never published"
                time.sleep(0.05)
            answer = http.post("/v1/log/cosignatures", content=witness.add_checkpoint(note, 0, []))
            assert answer.status_code == 200, answer.text
            cosigned = http.get("/v1/log/checkpoint/cosigned").text
            assert cosigned != note
            while copy.read_text() != cosigned:
                assert time.monotonic() < deadline, "the cosigned checkpoint was never published"
                time.sleep(0.05)
    finally:
        dep.close()
    args = ["tiles", str(root / "public"), "--vkey", vkey, "--witness", witness.vkey]
    assert main(args) == 0, capsys.readouterr()
