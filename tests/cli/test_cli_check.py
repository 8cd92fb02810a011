"""``sovra check``: what it finds in a damaged deployment, what ``--repair`` settles, exit codes."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sovra.deployment import Deployment
from sovra.keys import seal
from sovra.model import LogEntry, RecordHeader, RecordMeta


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    """A deployment holding three logged records of two subjects."""
    target = tmp_path / "deployment"
    shutil.copytree(template, target)
    dep = Deployment.open(target)
    try:
        svc = dep.store.get_principal("svc-pl")
        for subject in ("anna@example.pl", "anna@example.pl", "jan@example.pl"):
            dep.gateway.ingest(svc, subject_id=subject, jurisdiction="PL", content="a note")
    finally:
        dep.close()
    return target


def _kinds(report: dict[str, object]) -> dict[str, list[bool]]:
    """Finding kind -> whether each was a problem still standing."""
    out: dict[str, list[bool]] = {}
    for f in report["findings"]:  # type: ignore[attr-defined]
        out.setdefault(f["kind"], []).append(f["problem"] and not f["repaired"])
    return out


def _pending(dep: Deployment, rid: str, *, created_ms: int, logged: bool) -> None:
    """A row as a crash leaves it: pending, with or without its ingest entry in the log."""
    header = RecordHeader(
        record_id=rid,
        subject=dep.gateway.commitment("PL", "ghost@example.pl"),
        jurisdiction="PL",
        region=dep.config.jurisdiction("PL").regions[0],
        kek_version=1,
    )
    # Sealed and wrapped as ingest does, so the subject's key exists at her custodian.
    blob, data_key = seal(header, b"a note")
    wrapped = dep.gateway.custodians["PL"].wrap(data_key, header)
    dep.store.put_record(RecordMeta(header, wrapped, len(blob), created_ms))
    dep.gateway.blobs[header.region].put(rid, blob)
    if logged:
        entry = LogEntry(
            "ingest",
            created_ms,
            "svc-pl",
            {
                "record": rid,
                "subject": header.subject,
                "jurisdiction": "PL",
                "region": header.region,
                "blob_sha256": hashlib.sha256(blob).hexdigest(),
                "kinds": {},
                "actions": {},
            },
        )
        dep.gateway.log.append(entry.to_bytes(), [header.subject])


def test_a_fresh_deployment_is_clean(sovra: Any, root: Path) -> None:
    ran = sovra("check", "-d", root, "--json")
    assert ran.code == 0, ran.out
    report = ran.json()
    assert report["clean"] is True
    assert report["counts"]["visible_rows"] == 3
    assert report["counts"]["ingest_entries"] == 3
    assert report["counts"]["blobs"] == 3
    assert report["findings"] == []
    assert report["not_checked"] == []
    text = sovra("check", "-d", root)
    assert text.code == 0 and "clean" in text.out


def test_crash_leftovers_are_reported_then_repaired(sovra: Any, root: Path) -> None:
    dep = Deployment.open(root)
    try:
        _pending(dep, "r-logged", created_ms=1_000, logged=True)
        _pending(dep, "r-unlogged", created_ms=1_000, logged=False)
        region = dep.config.jurisdiction("PL").regions[0]
        dep.gateway.blobs[region].put("r-orphan", b"left by a crash")
    finally:
        dep.close()

    ran = sovra("check", "-d", root, "--json")
    assert ran.code == 3
    assert _kinds(ran.json()) == {
        "pending-logged": [True],
        "pending-unlogged": [True],
        "orphan-blob": [True],
    }

    ran = sovra("check", "-d", root, "--json", "--repair", "--grace", "1000000000")
    assert ran.code == 0, ran.out
    assert _kinds(ran.json()) == {
        "pending-logged": [False],
        "pending-unlogged": [False],
        "orphan-blob": [False],
    }
    dep = Deployment.open(root)
    try:
        assert dep.store.get_record("r-logged").log_index == dep.gateway.log.size - 1
        assert dep.store.record_log_index("r-unlogged") == -2  # quarantined, kept
        assert not dep.gateway.blobs[region].exists("r-orphan")
    finally:
        dep.close()

    # Quarantined past the grace time: the row goes, then its blob, an orphan now.
    ran = sovra("check", "-d", root, "--json", "--repair", "--grace", "0")
    assert ran.code == 0
    assert _kinds(ran.json()) == {"quarantined": [False], "orphan-blob": [False]}
    ran = sovra("check", "-d", root, "--json")
    assert ran.code == 0 and ran.json()["findings"] == []
    assert ran.json()["counts"]["rows"] == 4


def test_a_young_unlogged_row_is_a_write_in_flight(sovra: Any, root: Path) -> None:
    import time

    dep = Deployment.open(root)
    try:
        _pending(dep, "r-young", created_ms=int(time.time() * 1000), logged=False)
    finally:
        dep.close()
    ran = sovra("check", "-d", root, "--json")
    assert ran.code == 0
    assert _kinds(ran.json()) == {"pending-unlogged": [False]}


def test_damage_that_cannot_be_repaired_stays_exit_3(sovra: Any, root: Path) -> None:
    dep = Deployment.open(root)
    try:
        first, second, third = sorted(dep.store.records_page("", 10), key=lambda m: m.log_index)
        blobs = dep.gateway.blobs[first.header.region]
        blobs.delete(first.header.record_id)  # a logged record's blob gone
        blobs.delete(second.header.record_id)
        blobs.put(second.header.record_id, b"not the logged bytes")
    finally:
        dep.close()
    # Jan's key gone from PL's custodian without a shred.
    conn = sqlite3.connect(root / "custodians" / "PL.subjects.db")
    with conn:
        conn.execute("DELETE FROM subject_keys WHERE subject = ?", (third.header.subject,))
    conn.close()

    for repair in ((), ("--repair",)):
        ran = sovra("check", "-d", root, "--json", *repair)
        assert ran.code == 3
        assert _kinds(ran.json()) == {
            "missing-blob": [True],
            "blob-mismatch": [True],
            "subject-key-missing": [True],
        }
    text = sovra("check", "-d", root)
    assert text.code == 3
    assert "3 integrity problem(s)" in text.out


def test_a_row_pointing_at_another_entry_and_a_reused_index(sovra: Any, root: Path) -> None:
    db = sqlite3.connect(root / "sovra.db")
    with db:
        (_a, ia), (b, _), _ = db.execute(
            "SELECT record_id, log_index FROM records ORDER BY log_index"
        ).fetchall()
        db.execute("UPDATE records SET log_index = ? WHERE record_id = ?", (ia, b))
    db.close()
    ran = sovra("check", "-d", root, "--json")
    assert ran.code == 3
    kinds = _kinds(ran.json())
    assert kinds == {"index-reused": [True], "entry-mismatch": [True]}


def test_shredded_subjects_are_not_missing_keys(sovra: Any, root: Path) -> None:
    dep = Deployment.open(root)
    try:
        authority = dep.store.get_principal("authority-pl")
        dep.governance.shred(authority, jurisdiction="PL", subject_id="jan@example.pl")
    finally:
        dep.close()
    ran = sovra("check", "-d", root, "--json")
    assert ran.code == 0, ran.out


def test_a_missing_deployment_is_exit_1(sovra: Any, tmp_path: Path) -> None:
    ran = sovra("check", "-d", tmp_path / "nowhere")
    assert ran.code == 1
    assert ran.message == (
        f"error config: {tmp_path / 'nowhere'}: no such folder; "
        "`sovra init DIR` creates a deployment"
    )
    (tmp_path / "empty").mkdir()
    ran = sovra("check", "-d", tmp_path / "empty")
    assert ran.code == 1
    assert "sovra.toml" in ran.message


def test_a_logged_record_whose_row_is_lost(sovra: Any, root: Path) -> None:
    db = sqlite3.connect(root / "sovra.db")
    with db:
        (rid,) = db.execute("SELECT record_id FROM records ORDER BY log_index").fetchone()
        db.execute("DELETE FROM records WHERE record_id = ?", (rid,))
    db.close()
    for repair in ((), ("--repair",)):
        ran = sovra("check", "-d", root, "--json", *repair)
        assert ran.code == 3
        assert _kinds(ran.json()) == {"logged-without-row": [True]}  # its blob is kept


def test_a_relative_deployment_path(
    sovra: Any, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sovra check -d deployment`` from the folder above it, as the README's ./run leaves it."""
    monkeypatch.chdir(root.parent)
    ran = sovra("check", "-d", root.name, "--json")
    assert ran.code == 0, ran.out
    assert ran.json()["counts"]["visible_rows"] == 3
    assert ran.json()["not_checked"] == []
