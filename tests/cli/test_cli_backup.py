"""``sovra backup`` and ``sovra restore``: a live deployment copied, checked and brought back.

Real deployments on disk, a real gateway on loopback written to while the backup runs;
the restored deployment's log is audited with ``sovra log verify`` and its records are
read back. A backup changed in any way is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from sovra.backup import MANIFEST
from sovra.client import Client
from sovra.deployment import Deployment
from sovra.server import create_app
from sovra.server.background import running

NOTE = "Klient prosi o kontakt: tel. +48 601 234 567, anna@example.pl"


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "deployment"
    shutil.copytree(template, copy)
    return copy


@pytest.fixture
def stored(root: Path, tmp_path: Path, sovra) -> tuple[Path, dict[str, str]]:
    """A backup taken while the gateway serves, and the records it must hold."""
    records: dict[str, str] = {}
    dep = Deployment.open(root)
    try:
        with (
            running(create_app(dep)) as url,
            Client(url, "svc-pl", dep.principal_key("svc-pl")) as svc,
        ):
            for n in range(5):
                records[svc.ingest(f"subject-{n}", "PL", f"{NOTE} #{n}")["record_id"]] = str(n)
            made = sovra("backup", tmp_path / "backup", "-d", root)
            svc.ingest("after-the-backup", "PL", NOTE)  # not in it, and no harm
    finally:
        dep.close()
    assert made.code == 0, made.err
    assert made.json()["manifest_sha256"]
    return tmp_path / "backup", records


def test_restored_deployment_verifies_its_log_and_serves_its_records(sovra, stored, tmp_path):
    backup, records = stored
    manifest = json.loads((backup / MANIFEST).read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert {"sovra.db", "sovra.toml", "keys/log.key", "keys/commitment.secret"} <= paths
    assert not any(p.endswith(("-wal", "-shm")) for p in paths)
    assert any(p.startswith("blobs/") for p in paths)
    target = tmp_path / "restored"
    ran = sovra("restore", backup, "-d", target)
    assert ran.code == 0, ran.err
    assert ran.json()["files"] == len(paths)
    dep = Deployment.open(target)
    try:
        with running(create_app(dep)) as url:
            verified = sovra("log", "verify", "--url", url, "--vkey", dep.gateway.log.verifier_key)
            assert verified.code == 0, verified.err
            with Client(url, "svc-pl", dep.principal_key("svc-pl")) as svc:
                got = svc.access("billing", record_ids=list(records))["records"]
        assert {rid: text.rsplit("#", 1)[1] for rid, text in got.items()} == records
        assert dep.store.count_records() == len(records)
    finally:
        dep.close()


def test_expected_manifest_digest_is_checked(sovra, stored, tmp_path):
    backup, _ = stored
    made_digest = sovra("restore", backup, "-d", tmp_path / "first").json()["manifest_sha256"]
    ran = sovra("restore", backup, "-d", tmp_path / "second", "--expect", "0" * 64)
    assert ran.code == 3
    assert "not the" in ran.message
    assert not (tmp_path / "second").exists()
    ran = sovra("restore", backup, "-d", tmp_path / "third", "--expect", made_digest)
    assert ran.code == 0, ran.err


def _flip_a_byte(backup: Path, rel: str) -> None:
    path = backup / "deployment" / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _tamper(backup: Path, how: str) -> None:
    manifest_path = backup / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    blob = next(f["path"] for f in manifest["files"] if f["path"].startswith("blobs/"))
    if how == "blob changed":
        _flip_a_byte(backup, blob)
    elif how == "database changed":
        _flip_a_byte(backup, "sovra.db")
    elif how == "key removed":
        (backup / "deployment" / "keys" / "log.key").unlink()
    elif how == "file added":
        (backup / "deployment" / "keys" / "extra.key").write_bytes(b"x" * 32)
    elif how == "file made a link":
        target = backup / "deployment" / "sovra.toml"
        content = target.read_bytes()
        (backup / "elsewhere.toml").write_bytes(content)
        target.unlink()
        target.symlink_to(backup / "elsewhere.toml")
    elif how == "manifest rewritten for a changed key":
        key = backup / "deployment" / "keys" / "log.key"
        key.write_bytes(os.urandom(32))
        for f in manifest["files"]:
            if f["path"] == "keys/log.key":
                f["sha256"] = hashlib.sha256(key.read_bytes()).hexdigest()
        manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("blob changed", "does not match its SHA-256"),
        ("database changed", "sovra.db does not match its SHA-256"),
        ("key removed", "log.key is in the manifest but not in the backup"),
        ("file added", "extra.key is in the backup but not in its manifest"),
        ("file made a link", "sovra.toml is not a plain file"),
    ],
)
def test_tampered_backup_is_refused_and_nothing_is_written(sovra, stored, tmp_path, how, message):
    backup, _ = stored
    _tamper(backup, how)
    target = tmp_path / "restored"
    ran = sovra("restore", backup, "-d", target)
    assert ran.code == 3, ran.err
    assert message in ran.message
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored.restore-")]


def test_a_rewritten_manifest_passes_only_without_the_digest_kept_apart(sovra, stored, tmp_path):
    backup, _ = stored
    kept = json.loads(sovra("restore", backup, "-d", tmp_path / "ok").out)["manifest_sha256"]
    _tamper(backup, "manifest rewritten for a changed key")
    ran = sovra("restore", backup, "-d", tmp_path / "restored", "--expect", kept)
    assert ran.code == 3
    assert not (tmp_path / "restored").exists()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside", "outside the deployment"),
        ("/etc/passwd", "outside the deployment"),
        ("keys/../../x", "outside the deployment"),
    ],
)
def test_manifest_naming_a_path_outside_is_refused(sovra, stored, tmp_path, path, message):
    backup, _ = stored
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest["files"][0]["path"] = path
    (backup / MANIFEST).write_text(json.dumps(manifest))
    ran = sovra("restore", backup, "-d", tmp_path / "restored")
    assert ran.code == 1
    assert message in ran.message
    assert not (tmp_path / "restored").exists()
    assert not (tmp_path / "outside").exists()


def test_non_empty_targets_are_refused(sovra, stored, root, tmp_path):
    backup, _ = stored
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("mine")
    ran = sovra("restore", backup, "-d", busy)
    assert ran.code == 1
    assert "is not empty" in ran.message
    assert [p.name for p in busy.iterdir()] == ["something"]
    ran = sovra("backup", busy, "-d", root)
    assert ran.code == 1
    assert "is not empty" in ran.message
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sovra("restore", backup, "-d", empty).code == 0
    assert (empty / "sovra.toml").exists()


def test_postgres_deployment_is_refused_with_what_to_use(sovra, root, tmp_path):
    toml = root / "sovra.toml"
    toml.write_text(
        toml.read_text().replace(
            'database = "sovra.db"', 'database = "postgresql://sovra@db.example/sovra"'
        )
    )
    ran = sovra("backup", tmp_path / "backup", "-d", root)
    assert ran.code == 1
    assert "pg_dump" in ran.message
    assert not (tmp_path / "backup").exists()


def test_owners_and_modes_come_back_as_they_were(sovra, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("owners are restored by root only")
    root = tmp_path / "separate"
    Deployment.init(root)  # each custodian and authority its own system user
    assert sovra("backup", tmp_path / "backup", "-d", root).code == 0
    target = tmp_path / "restored"
    assert sovra("restore", tmp_path / "backup", "-d", target).code == 0

    def tree(base: Path) -> dict[str, tuple[int, int, int]]:
        found = {}
        for path in [base, *base.rglob("*")]:
            if path.name.endswith(("-wal", "-shm")):
                continue
            info = path.lstat()
            found[path.relative_to(base).as_posix()] = (
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                info.st_gid,
            )
        return found

    assert tree(target) == tree(root)
