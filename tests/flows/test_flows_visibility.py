"""Logged before visible: an ingest killed at any step leaves nothing a reader can reach,
or a complete record whose ingest entry is in the log.

Each case runs a real gateway in a child process, ingests one record whole, then kills
itself with SIGKILL at a chosen step of a second ingest (the step's function is replaced
by the kill: nothing after it runs, no ``finally`` and no cleanup). The parent then opens
the deployment as a restarted gateway would and reads every way a reader can.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sovra.deployment import Deployment
from sovra.errors import NotFound
from sovra.model import LogEntry

CHILD = r"""
import os, signal, sys
from pathlib import Path
from sovra.deployment import Deployment

root, point = Path(sys.argv[1]), sys.argv[2]
dep = Deployment.open(root)
gw = dep.gateway
svc = dep.store.get_principal("svc-pl")
kept = gw.ingest(svc, subject_id="kept@example.pl", jurisdiction="PL", content="kept")
print(kept.record_id, flush=True)


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


if point == "blob":  # the row may be written; the blob and the entry are not
    for store in gw.blobs.values():
        store.put = store.put_many = die
elif point == "append":  # the row and the blob are written; the entry never reaches the log
    gw.log.append = gw.log.append_many = gw.log.append_each = die
elif point == "index":  # the entry is in the log; the row never gets its index
    # (where the log shares the rows' SQLite file its append sets the index: told not to,
    # the gateway sets it after, as on PostgreSQL)
    gw.log._storage.mark_rows_with(None)
    dep.store.set_record_log_index = dep.store.set_record_log_indices = die
if point == "sealed":  # a record sealed on the client, killed before its entry is logged
    from fastapi.testclient import TestClient
    from sovra.client import Client
    from sovra.server import create_app

    with TestClient(create_app(dep)) as http:
        client = Client("http://testserver", "svc-pl", dep.principal_key("svc-pl"))
        client._http = http
        gw.log.append = gw.log.append_many = gw.log.append_each = die
        client.ingest_sealed("victim@example.pl", "PL", b"victim")
else:
    gw.ingest(svc, subject_id="victim@example.pl", jurisdiction="PL", content="victim")
print("not killed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _crash_at(root: Path, point: str) -> str:
    """Run the child to its kill; returns the id of the record ingested whole before it."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), point],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    return child.stdout.split()[0]


def _rows(root: Path) -> dict[str, int]:
    """Every record row and its log index, read straight from the file."""
    conn = sqlite3.connect(root / "sovra.db")
    try:
        return dict(conn.execute("SELECT record_id, log_index FROM records").fetchall())
    finally:
        conn.close()


def _ingest_entries(dep: Deployment) -> dict[str, int]:
    out = {}
    for index, data in enumerate(dep.gateway.log.iter_entries()):
        entry = LogEntry.from_bytes(data)
        if entry.kind == "ingest":
            out[entry.fields["record"]] = index
    return out


def _readable(dep: Deployment, record_ids: list[str]) -> dict[str, str]:
    """What each way of reading serves: by id, by subject, by jurisdiction."""
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    authority = dep.store.get_principal("authority-pl")
    served: dict[str, str] = {}
    for rid in record_ids:
        with contextlib.suppress(NotFound):
            served.update(gw.access(svc, purpose="customer-support", record_ids=[rid]).records)
    for subject in ("kept@example.pl", "victim@example.pl"):
        with contextlib.suppress(NotFound):
            served.update(
                gw.access(svc, purpose="customer-support", subjects=[("PL", subject)]).records
            )
    served.update(
        gw.access(
            authority,
            purpose="domestic-legal-process",
            jurisdiction="PL",
            justification="domestic-legal-process",
        ).records
    )
    return served


@pytest.mark.parametrize("point", ["blob", "append"])
def test_a_record_whose_entry_never_reached_the_log_is_never_served(root: Path, point: str) -> None:
    kept = _crash_at(root, point)
    crashed = [rid for rid in _rows(root) if rid != kept]
    dep = Deployment.open(root)
    try:
        logged = _ingest_entries(dep)
        assert all(rid not in logged for rid in crashed)
        served = _readable(dep, [kept, *crashed])
        assert served == {kept: "kept"}, "only the record whose ingest entry is logged"
        assert dep.store.count_records() == 1
        assert (
            dep.store.records_for_subject(dep.gateway.commitment("PL", "victim@example.pl")) == []
        )
    finally:
        dep.close()


def test_a_record_whose_entry_is_logged_is_completed_at_start_up(root: Path) -> None:
    kept = _crash_at(root, "index")
    before = _rows(root)
    (victim,) = [rid for rid in before if rid != kept]
    assert before[victim] == -1  # the crash left it without its index
    dep = Deployment.open(root)
    try:
        logged = _ingest_entries(dep)
        assert dep.store.get_record(victim).log_index == logged[victim]
        assert _readable(dep, [kept, victim]) == {kept: "kept", victim: "victim"}
        assert dep.recovery is not None and dep.recovery.clean
    finally:
        dep.close()


@pytest.mark.parametrize("point", ["blob", "append", "index"])
def test_after_a_crash_and_restart_the_full_check_is_clean(root: Path, point: str) -> None:
    from sovra.check import check

    _crash_at(root, point)
    dep = Deployment.open(root)
    try:
        report = check(
            dep.store, dep.gateway.log, dep.gateway.blobs, now_ms=int(time.time() * 1000)
        )
        assert report.clean, json.dumps(report.to_dict(), indent=1)
        rows = _rows(root)
        logged = _ingest_entries(dep)
        # Every row is either visible at its own ingest entry or hidden (quarantined).
        for rid, index in rows.items():
            assert index == logged[rid] if rid in logged else index < 0
    finally:
        dep.close()


def test_a_failed_blob_write_leaves_no_row(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error (not a crash) before the append takes back what was written."""
    from sovra.errors import ConfigError

    dep = Deployment.open(root)
    try:
        svc = dep.store.get_principal("svc-pl")

        def full_disk(key: str, data: bytes) -> None:
            raise ConfigError("blob store pl: no space left on device")

        def full_disk_many(items: object) -> None:
            raise ConfigError("blob store pl: no space left on device")

        for store in dep.gateway.blobs.values():
            monkeypatch.setattr(store, "put", full_disk)
            monkeypatch.setattr(store, "put_many", full_disk_many)
        size = dep.gateway.log.size
        with pytest.raises(ConfigError, match="no space"):
            dep.gateway.ingest(svc, subject_id="v@example.pl", jurisdiction="PL", content="x")
        assert _rows(root) == {}
        assert dep.gateway.log.size == size
    finally:
        dep.close()


def test_a_client_sealed_record_whose_entry_never_reached_the_log_is_hidden(root: Path) -> None:
    kept = _crash_at(root, "sealed")
    (victim,) = [rid for rid in _rows(root) if rid != kept]
    dep = Deployment.open(root)
    try:
        assert victim not in _ingest_entries(dep)
        with pytest.raises(NotFound):
            dep.store.get_record(victim)
        svc = dep.store.get_principal("svc-pl")
        recipient = X25519PrivateKey.generate().public_key().public_bytes_raw()
        with pytest.raises(NotFound):
            dep.gateway.access_sealed(
                svc, recipient=recipient, purpose="customer-support", record_ids=[victim]
            )
        assert _readable(dep, [kept]) == {kept: "kept"}
    finally:
        dep.close()


def test_start_up_reports_a_logged_record_whose_row_is_gone(root: Path) -> None:
    kept = _crash_at(root, "none")  # no kill point: both records complete, then SIGKILL
    conn = sqlite3.connect(root / "sovra.db")
    with conn:
        conn.execute("DELETE FROM records WHERE record_id = ?", (kept,))
    conn.close()
    dep = Deployment.open(root)
    try:
        assert dep.recovery is not None
        assert [(f.kind, f.at) for f in dep.recovery.problems] == [("logged-without-row", kept)]
    finally:
        dep.close()
