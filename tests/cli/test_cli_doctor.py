"""``sovra doctor DIR``: one line per problem with its fix, exit 1 when there is any."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sovra import custody
from sovra.deployment import Deployment, run_as_gateway


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "deployment"
    shutil.copytree(template, target)
    return target


def _one_record(root: Path) -> str:
    def work(dep: Deployment) -> str:
        principal = dep.store.get_principal("svc-pl")
        return dep.gateway.ingest(
            principal, subject_id="anna@example.pl", jurisdiction="PL", content="tel. 601 234 567"
        ).record_id

    return run_as_gateway(root, work)


def test_a_sound_deployment_has_no_problem(sovra, root):
    ran = sovra("doctor", root)
    assert ran.code == 0, ran.out
    assert ran.out.splitlines() == [
        f"note: {root}: every custodian is opened inside the gateway's process (in-process)",
        f"{root}: no problem found",
    ]


def test_each_problem_is_one_line_with_its_fix(sovra, root, tmp_path):
    config = root / "sovra.toml"  # every blob a file of its own (none in the small-blob file)
    config.write_text(
        config.read_text().replace("small_blob_bytes = 65536", "small_blob_bytes = 1")
    )
    record = _one_record(root)
    blob = next((root / "blobs").rglob(record))
    outside = tmp_path / "outside"
    outside.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(outside)
    (root / "keys" / "log.key").chmod(0o644)
    (root / "custodians" / "VN.subjects.db").unlink()
    (root / "custodians" / "PL.subjects.db").write_bytes(b"")  # emptied, with a PL record
    (root / "principals" / "svc-vn.key").unlink()
    (root / "principals" / "svc-vn.key").symlink_to(root / "principals" / "svc-pl.key")

    ran = sovra("doctor", root)
    assert ran.code == 1
    problems = [line for line in ran.out.splitlines() if line.startswith("problem: ")]
    log_key, vn_store, pl_store = (
        root / "keys" / "log.key",
        root / "custodians" / "VN.subjects.db",
        root / "custodians" / "PL.subjects.db",
    )
    assert problems == [
        f"problem: {log_key}: has mode 0644, open to group or others; fix: chmod 600 {log_key}",
        f"problem: {blob}: blob of record {record} is a link; fix: replace it with the blob "
        "itself, from a backup",
        f"problem: {pl_store}: holds no subject key, yet records of PL are stored: none of them "
        "would open; fix: restore the store from a backup",
        f"problem: {vn_store}: missing; fix: restore it from a backup: without it no record of "
        "VN opens",
        f"problem: {root / 'principals' / 'svc-vn.key'}: is a link; fix: replace it with the "
        "file itself",
    ]

    as_json = sovra("doctor", root, "--json")
    assert as_json.code == 1
    found = as_json.json()
    assert [p["path"] for p in found["problems"]] == [
        str(log_key),
        str(blob),
        str(pl_store),
        str(vn_store),
        str(root / "principals" / "svc-vn.key"),
    ]
    assert all(p["fix"] for p in found["problems"])


def test_no_deployment_is_one_problem(sovra, tmp_path):
    ran = sovra("doctor", tmp_path)
    assert ran.code == 1
    assert ran.out.splitlines() == [
        f"problem: {tmp_path / 'sovra.toml'}: missing; fix: create a deployment with "
        "`sovra init DIR`"
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="owners per holder exist only where root runs sovra")
def test_owners_as_root_init_leaves_them_and_what_breaks_them(sovra, walkable):
    root = walkable / "dep"
    Deployment.init(root, jurisdictions=["PL", "VN"])
    ran = sovra("doctor", root)
    assert ran.code == 0, ran.out
    assert ran.out.splitlines() == [f"{root}: no problem found"]

    gateway = custody.ensure_user(custody.GATEWAY_USER)
    folder = root / "custodians" / "PL"
    for path in (folder, *folder.iterdir()):
        os.chown(path, *gateway)
    os.chown(root / "principals", *gateway)
    (root / "authorities").chmod(0o777)
    ran = sovra("doctor", root)
    assert ran.code == 1
    assert ran.out.splitlines() == [
        f"problem: {folder}: belongs to the gateway's user, which may then read this "
        f"custodian's keys; fix: chown -R sovra-custodian-pl {folder}",
        f"problem: {root / 'principals'}: belongs to the gateway's user, which may then sign "
        f"as any principal; fix: chown -R root {root / 'principals'}",
        f"problem: {root / 'authorities'}: is writable by group or others; fix: chmod go-w "
        f"{root / 'authorities'}",
    ]
