"""``sovra migrate``: an embedded deployment moved to the throwaway PostgreSQL and SeaweedFS
serves the demo's seven outcomes; bad targets are refused with nothing changed; a move
that failed half-way carries on when run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.conftest import REGIONS, Sovra, s3_options

import sovra.migrate as moving
from sovra.config import Config
from sovra.deployment import Deployment
from sovra.errors import Unavailable
from sovra.ledger import SQLiteLogStorage
from sovra.store.s3 import S3BlobStore

pytestmark = [pytest.mark.postgres, pytest.mark.s3]


@pytest.fixture
def embedded(sovra: Sovra, tmp_path: Path) -> Path:
    """An embedded deployment the demo ran on: records, grants, nonces, log, journal."""
    root = tmp_path / "dep"
    assert sovra("init", root, "--custodians", "in-process").code == 0
    ran = sovra("demo", "--synthetic", "20", "--deployment", root)
    assert ran.code == 0, ran.err
    return root


def _snapshot(root: Path) -> tuple[int, int, str, list[str]]:
    dep = Deployment.open(root)
    try:
        ids = []
        after = ""
        while page := dep.store.records_page(after, 1000):
            after = page[-1].header.record_id
            ids += [m.header.record_id for m in page]
        return dep.store.count_records(), dep.gateway.log.size, dep.gateway.log.root().hex(), ids
    finally:
        dep.close()


def test_migrate_moves_the_demo_deployment_and_the_moved_one_serves_the_demo(
    sovra: Sovra, embedded: Path, pg_dsn: str, s3_bucket
) -> None:
    records, size, root_hash, ids = _snapshot(embedded)
    before = (embedded / "sovra.toml").read_text()
    ran = sovra("migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket), "--json")
    assert ran.code == 0, ran.err
    report = ran.json()
    assert report["counts"]["records"] == records
    assert report["counts"]["blobs_moved"] == records
    assert report["counts"]["blobs_verified"] == records
    assert report["log"] == {"size": size, "root": root_hash, "checkpoint_size": size}
    # The configuration names the new stores; the old one is kept; no move is under way.
    config = Config.load(embedded / "sovra.toml")
    assert config.database == pg_dsn
    assert all(config.region(r).blobs == f"{s3_bucket.url}{r}" for r in REGIONS)
    assert (embedded / "sovra.toml.embedded").read_text() == before
    assert not (embedded / moving.STATE_NAME).exists()
    dep = Deployment.open(embedded)
    try:
        assert all(isinstance(dep.gateway.blobs[r], S3BlobStore) for r in REGIONS)
        assert dep.gateway.log.size == size and dep.gateway.log.root().hex() == root_hash
        moved = dep.store.get_records(ids)
        assert sorted(moved) == sorted(ids)
        for rid, meta in moved.items():
            blob = dep.gateway.blobs[meta.header.region].get(rid)
            assert len(blob) == meta.blob_size
        # The spent guard budget moved too: the journal is not empty.
        assert dep.gateway.decisions.guard.journal.read(0)
    finally:
        dep.close()
    # The check tests/cli/test_cli_demo.py makes: step 1 reads Anna's records, the moved
    # ones among them, and step 7 verifies the whole log, the moved part included.
    demo = sovra("demo", "--synthetic", "20", "--deployment", embedded)
    assert demo.code == 0, demo.err
    assert "all seven outcomes as expected" in demo.out
    # The embedded log was left as it was: the demo wrote to the moved one.
    log = SQLiteLogStorage(embedded / "sovra.db")
    try:
        assert log.size() == size
    finally:
        log.close()


def _unchanged(root: Path, config: str, bucket) -> None:
    assert (root / "sovra.toml").read_text() == config
    assert not (root / "sovra.toml.embedded").exists()
    assert not (root / moving.STATE_NAME).exists()
    assert bucket.objects() == {}


def test_migrate_refuses_a_database_that_holds_a_deployment(
    sovra: Sovra, embedded: Path, tmp_path: Path, pg_dsn: str, s3_bucket
) -> None:
    other = tmp_path / "other"
    assert sovra("init", other, "--custodians", "in-process", "--database", pg_dsn).code == 0
    config = (embedded / "sovra.toml").read_text()
    ran = sovra("migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket))
    assert ran.code == 1
    assert "the target database already holds a deployment" in ran.message
    _unchanged(embedded, config, s3_bucket)
    # ... and a deployment that is not an embedded one is not moved.
    again = sovra("migrate", other, "--database", pg_dsn, *s3_options(s3_bucket))
    assert again.code == 1
    assert "is not an embedded deployment: its database is PostgreSQL already" in again.message


def test_migrate_refuses_unreachable_targets_and_a_bucket_in_use(
    sovra: Sovra, embedded: Path, tmp_path: Path, pg_dsn: str, s3_bucket, dead_url: str
) -> None:
    config = (embedded / "sovra.toml").read_text()
    port = dead_url.rsplit(":", 1)[1]
    no_db = sovra(
        "migrate", embedded, "--database", f"postgresql://sovra@127.0.0.1:{port}/sovra",
        *s3_options(s3_bucket),
    )  # fmt: skip
    assert no_db.code == 5  # could not reach it
    assert "cannot connect to PostgreSQL" in no_db.message
    _unchanged(embedded, config, s3_bucket)
    no_s3 = [a if a != s3_bucket.endpoint else dead_url for a in s3_options(s3_bucket)]
    ran = sovra("migrate", embedded, "--database", pg_dsn, *no_s3)
    assert ran.code == 5
    assert dead_url in ran.message
    _unchanged(embedded, config, s3_bucket)
    for bad, message in [
        (["--blobs", "mars-1=s3://bucket-a"], "--blobs names region mars-1, which no"),
        ([], "migrate needs --database"),
    ]:
        args = ["--database", pg_dsn] if bad else []
        refused = sovra("migrate", embedded, *args, *bad)
        assert refused.code in (1, 2)
        assert message in refused.message
    _unchanged(embedded, config, s3_bucket)
    # A bucket another deployment writes to is not shared.
    first = tmp_path / "first"
    assert sovra("init", first, "--custodians", "in-process", *s3_options(s3_bucket)).code == 0
    assert sovra("demo", "--synthetic", "4", "--deployment", first).code == 0
    shared = sovra("migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket))
    assert shared.code == 1
    assert "already holds blobs" in shared.message
    assert (embedded / "sovra.toml").read_text() == config


def test_migrate_carries_on_after_a_failure_half_way(
    sovra: Sovra, embedded: Path, pg_dsn: str, s3_bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, size, root_hash, _ = _snapshot(embedded)
    config = (embedded / "sovra.toml").read_text()
    real = moving._move_rows

    def half(parts, tick, report):  # the database goes away after the first rows
        page = next(moving._pages(parts.rows))
        parts.to_rows.put_records(page[: len(page) // 2])
        raise Unavailable("cannot reach PostgreSQL: the server closed the connection")

    monkeypatch.setattr(moving, "_move_rows", half)
    failed = sovra("migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket))
    assert failed.code == 5
    assert "the server closed the connection" in failed.message
    # Half-way: blobs and the log are in the targets, the deployment still the embedded one.
    assert (embedded / "sovra.toml").read_text() == config
    assert json.loads((embedded / moving.STATE_NAME).read_text())["blobs"]
    assert s3_bucket.objects()
    # Another target is refused while the move is unfinished.
    monkeypatch.setattr(moving, "_move_rows", real)
    elsewhere = sovra("migrate", embedded, "--database", pg_dsn + "&application_name=x",
                      *s3_options(s3_bucket))  # fmt: skip
    assert elsewhere.code == 1
    assert "an earlier sovra migrate" in elsewhere.message
    again = sovra("migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket), "--json")
    assert again.code == 0, again.err
    report = again.json()
    assert report["resumed"] is True
    assert report["counts"]["blobs_moved"] == 0  # every blob was there already
    assert report["counts"]["blobs_verified"] == records
    assert report["log"]["size"] == size and report["log"]["root"] == root_hash
    demo = sovra("demo", "--synthetic", "4", "--deployment", embedded)
    assert demo.code == 0, demo.err


def test_migrate_verifies_every_blob_before_it_switches_over(
    sovra: Sovra, embedded: Path, pg_dsn: str, s3_bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment lost from a bucket after it was written: the verification reads every
    blob back, finds the loss, and the deployment stays the embedded one; run again, the
    move puts the lost blobs back and switches over."""
    config = (embedded / "sovra.toml").read_text()
    real = moving._move_state

    def losing_a_segment(parts, tick, report, *, now_ms):
        client = s3_bucket.client()
        segment = next(k for k in s3_bucket.objects() if "/segments/" in k)
        client.delete_object(Bucket=s3_bucket.name, Key=segment)
        real(parts, tick, report, now_ms=now_ms)

    monkeypatch.setattr(moving, "_move_state", losing_a_segment)
    ran = sovra("migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket))
    assert ran.code == 3
    assert "the moved deployment does not verify" in ran.message
    assert "missing-blob" in ran.message
    assert (embedded / "sovra.toml").read_text() == config
    monkeypatch.setattr(moving, "_move_state", real)
    again = sovra("migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket), "--json")
    assert again.code == 0, again.err
    assert again.json()["counts"]["blobs_moved"] > 0
    assert Config.load(embedded / "sovra.toml").database == pg_dsn


def test_the_moved_configuration_keeps_comments_and_a_region_table_it_had() -> None:
    from sovra.config import RegionConfig, render_default_config

    text = render_default_config("sovra.test/m", ["PL", "VN"]) + (
        '\n[regions.eu-central-pl]  # run by a local provider\nprovider = "local"\n'
        'provider_home = "PL"\n'
    )
    bucket = RegionConfig("eu-central-pl", blobs="s3://pl-bucket/x", endpoint="http://s3.pl")
    other = RegionConfig("ap-southeast-vn", blobs="s3://vn-bucket")
    moved = moving._target_config(text, "postgresql://db.example/sovra", [bucket, other])
    config = Config.from_text(moved, "moved")
    assert config.database == "postgresql://db.example/sovra"
    pl = config.region("eu-central-pl")
    assert (pl.blobs, pl.endpoint, pl.provider, pl.provider_home) == (
        "s3://pl-bucket/x", "http://s3.pl", "local", "PL",
    )  # fmt: skip
    assert config.region("ap-southeast-vn").blobs == "s3://vn-bucket"
    # Every line of the old file is still there, bar the database's.
    kept = set(moved.splitlines())
    assert [line for line in text.splitlines() if line not in kept] == ['database = "sovra.db"']


def test_witness_cosignatures_move_with_the_log(
    sovra: Sovra, embedded: Path, tmp_path: Path, pg_dsn: str, s3_bucket
) -> None:
    """Two witnesses cosign the embedded log's checkpoint; after the move the gateway
    serves their cosignatures from the database, and a client checks the quorum."""
    from sovra.server import create_app
    from sovra.server.background import running

    dep = Deployment.open(embedded)
    log_vkey = dep.gateway.log.verifier_key
    dep.close()
    witnesses = []
    for name in ("w1", "w2"):
        ran = sovra("witness", "init", tmp_path / name, "--name", f"witness.test/{name}",
                    "--log", log_vkey)  # fmt: skip
        assert ran.code == 0, ran.err
        witnesses.append((tmp_path / name, ran.out.strip()))
    config = embedded / "sovra.toml"
    keys = ", ".join(f'"{vkey}"' for _, vkey in witnesses)
    config.write_text(config.read_text().replace("keys = []\n", f"keys = [{keys}]\n", 1))
    trust = ["--vkey", log_vkey, "--quorum", "2"]
    for _, vkey in witnesses:
        trust += ["--witness", vkey]

    def served(*args: str | Path) -> list:
        dep = Deployment.open(embedded)
        try:
            with running(create_app(dep)) as url:
                return [sovra(*a, "--url", url) for a in args]
        finally:
            dep.close()

    cosigned = served(*[("witness", "cosign", w, "--submit") for w, _ in witnesses])
    assert all(r.code == 0 for r in cosigned), [r.err for r in cosigned]
    ran = sovra("migrate", embedded, "--database", pg_dsn, *s3_options(s3_bucket), "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["counts"]["cosignatures"] == 2
    (verified,) = served(("log", "verify", *trust))
    assert verified.code == 0, verified.err
    assert "2 trusted witnesses cosigned it, 2 required" in verified.out
