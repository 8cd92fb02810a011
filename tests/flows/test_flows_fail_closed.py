"""Fail closed: lost key material stops the start, a planted link is refused by name.

A custodian whose subject-key store is gone or emptied would start with no keys and every
record of its jurisdiction unreadable for ever; the deployment refuses to start instead,
naming the file and the fix. A blob replaced by a link is refused with an error that names
the record, and no response carries a path of the server's disk.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from sovra.auth import make_token
from sovra.deployment import Deployment, run_as_gateway
from sovra.errors import ConfigError
from sovra.server import create_app
from sovra.server.background import running

TEXT = "Anna, tel. +48 601 234 567"


def _ingest(dep: Deployment) -> str:
    principal = dep.store.get_principal("svc-pl")
    receipt = dep.gateway.ingest(
        principal, subject_id="anna@example.pl", jurisdiction="PL", content=TEXT
    )
    return receipt.record_id


def _ingest_one(root: Path, clock) -> str:
    dep = Deployment.open(root, clock=clock)
    try:
        return _ingest(dep)
    finally:
        dep.close()


def test_a_deleted_subject_key_store_stops_the_start(root, clock):
    _ingest_one(root, clock)
    store = root / "custodians" / "PL.subjects.db"
    store.unlink()
    with pytest.raises(ConfigError) as caught:
        Deployment.open(root, clock=clock)
    message = caught.value.message
    assert str(store) in message
    assert "Restore it from a backup" in message
    assert not store.exists(), "opening must not create an empty store in its place"


def test_an_emptied_subject_key_store_stops_the_start_while_records_exist(root, clock):
    _ingest_one(root, clock)
    store = root / "custodians" / "PL.subjects.db"
    store.unlink()
    store.touch(mode=0o600)  # an empty store, as a restore of the wrong file would leave
    with pytest.raises(ConfigError) as caught:
        Deployment.open(root, clock=clock)
    assert "custodian PL holds no subject key, yet records of PL are stored" in (
        caught.value.message
    )


def test_an_empty_store_is_fine_where_no_record_of_its_jurisdiction_exists(root, clock):
    _ingest_one(root, clock)
    store = root / "custodians" / "DE.subjects.db"
    store.unlink()
    store.touch(mode=0o600)
    Deployment.open(root, clock=clock).close()


def test_a_missing_kek_file_stops_the_start_with_the_path_and_the_fix(root, clock):
    kek = root / "custodians" / "VN.key"
    kek.unlink()
    with pytest.raises(ConfigError) as caught:
        Deployment.open(root, clock=clock)
    assert caught.value.message.startswith(f"custodian VN's key file {kek} is missing")
    assert "Restore it from a backup" in caught.value.message


@pytest.mark.parametrize("planted", ["symlink", "hardlink", "linked-folder"])
def test_a_blob_replaced_by_a_link_is_refused_by_record_never_by_path(root, tmp_path, planted):
    config = root / "sovra.toml"  # every blob a file of its own (none in the small-blob file)
    config.write_text(
        config.read_text().replace("small_blob_bytes = 65536", "small_blob_bytes = 1")
    )
    # The wall clock: the request below is signed with it, as a real client's would be.
    dep = Deployment.open(root)
    try:
        rid = _ingest(dep)
        blob = dep.gateway.blobs[dep.store.get_record(rid).header.region].path_for(rid)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        outside = elsewhere / rid
        shutil.copy2(blob, outside)  # the same bytes: only the link is wrong
        if planted == "symlink":
            blob.unlink()
            blob.symlink_to(outside)
        elif planted == "hardlink":
            blob.unlink()
            os.link(outside, blob)
        else:
            folder = blob.parent
            shutil.rmtree(folder)
            folder.symlink_to(elsewhere, target_is_directory=True)
        body = json.dumps({"purpose": "customer-support", "record_ids": [rid]}).encode()
        with running(create_app(dep)) as url:
            token = make_token(
                dep.principal_key("svc-pl"),
                "svc-pl",
                "POST",
                "/v1/access",
                body,
                now_s=int(time.time()),
            )
            response = httpx.post(
                url + "/v1/access",
                content=body,
                headers={"authorization": f"Sovra {token}", "content-type": "application/json"},
            )
    finally:
        dep.close()
    assert response.status_code == 500
    answer = response.json()
    assert answer["error"] == "integrity"
    assert f"the blob of record {rid}" in answer["message"]
    assert "refusing to read it" in answer["message"]
    for path in (str(root), str(tmp_path), "/tmp/", os.sep + "pytest"):
        assert path not in response.text


# -- the same, with each custodian in a process of its own (the default) ---------------


def _default_with_one_record(walkable: Path) -> Path:
    root = walkable / "dep"
    Deployment.init(root, jurisdictions=["PL", "VN"])
    run_as_gateway(root, _ingest)
    return root


def _delete(path: Path) -> None:
    path.unlink()


def _empty(path: Path) -> None:
    with path.open("r+b") as f:  # emptied in place: same file, same owner
        f.truncate(0)


@pytest.mark.parametrize(
    ("damaged", "damage", "refusal"),
    [
        (
            "PL/PL.subjects.db",
            _delete,
            "custodian PL did not start: config: subject-key store {path} is missing: "
            "without it no record sealed by this custodian opens again. Restore it from a backup",
        ),
        (
            "PL/PL.subjects.db",
            _empty,
            "custodian PL holds no subject key, yet records of PL are stored",
        ),
        (
            "VN/VN.key",
            _delete,
            "custodian VN did not start: config: custodian VN's key file {path} is missing",
        ),
    ],
    ids=["deleted-store", "emptied-store", "deleted-kek"],
)
def test_a_custodian_process_with_lost_keys_stops_the_start(walkable, damaged, damage, refusal):
    root = _default_with_one_record(walkable)
    path = root / "custodians" / damaged
    damage(path)
    with pytest.raises(ConfigError) as caught:
        Deployment.open(root)
    assert caught.value.message.startswith(refusal.format(path=path))
