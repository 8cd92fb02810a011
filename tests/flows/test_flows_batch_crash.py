"""A gateway killed in the middle of a batch: no acknowledged record lost, none visible
without its ingest entry.

Each case runs a real gateway in a child process that ingests batches, either with
``ingest_many`` or as single ``ingest`` calls from eight threads (gathered into batches by
group commit), and prints each record the moment its receipt is returned. At the n-th
batch, one step of the batched write is replaced by SIGKILL (nothing after it runs, no
``finally``): the durable insert of the pending rows, the blob write, the log append or
the setting of the log indices (which, where the log shares the rows' SQLite file, the
append's own transaction does: that case runs with the log told not to); or the kill
comes just after the append returns, before any receipt of its batch. The parent then
opens the deployment as a restarted gateway does and checks every acknowledged record and
every row.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sovra.check import check
from sovra.deployment import Deployment
from sovra.model import LogEntry
from sovra.store import SQLiteMetadataStore

CHILD = r"""
import os, signal, sys, threading
from pathlib import Path
from sovra.deployment import Deployment
from sovra.gateway import IngestItem

root, mode, point, nth = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
dep = Deployment.open(root)
gw = dep.gateway
svc = dep.store.get_principal("svc-pl")
steps = {
    "rows": [(dep.store, "put_records")],
    "blobs": [(store, "put_many") for store in gw.blobs.values()],
    "append": [(gw.log, "append_each")],
    "index": [(dep.store, "set_record_log_indices")],
    "appended": [(gw.log, "append_each")],
}
calls = [0]


def kill_at_nth(obj, name, after):
    real = getattr(obj, name)

    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        done = real(*args, **kwargs)
        if calls[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return done

    setattr(obj, name, step)


if point == "index":
    # The log's append gives the rows their indices itself where it shares their SQLite
    # file; without that (as on PostgreSQL) they get them in a transaction of their own.
    gw.log._storage.mark_rows_with(None)
    assert not gw.log.marks_rows
for obj, name in steps[point]:
    kill_at_nth(obj, name, after=point == "appended")
out = threading.Lock()


def acknowledged(record_id, content):
    with out:
        print(record_id + "\t" + content, flush=True)


if mode == "many":
    for b in range(20):
        items = [IngestItem(f"b{b}-{i}@example.pl", "PL", f"batch {b} item {i}") for i in range(25)]
        for item, r in zip(items, gw.ingest_many(svc, items)):
            acknowledged(r.record_id, item.content)
else:
    def work(t):
        for n in range(400):
            content = f"thread {t} call {n}"
            r = gw.ingest(
                svc, subject_id=f"t{t}-{n}@example.pl", jurisdiction="PL", content=content
            )
            acknowledged(r.record_id, content)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print("not killed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _run_to_kill(root: Path, mode: str, point: str, nth: int) -> dict[str, str]:
    """The child's acknowledged records (id -> content) when it was killed."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), mode, point, str(nth)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "not killed" not in child.stdout, "the kill point was never reached"
    return dict(line.split("\t", 1) for line in child.stdout.splitlines())


def _rows(root: Path) -> dict[str, int]:
    """Every record row and its log index, visible or not, as the file holds them."""
    store = SQLiteMetadataStore(root / "sovra.db")
    try:
        return {m.header.record_id: m.log_index for m in store.records_page("", 100_000)}
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["many", "threads"])
@pytest.mark.parametrize("point", ["rows", "blobs", "append", "index", "appended"])
def test_a_kill_mid_batch_loses_no_acknowledged_record_and_shows_none_unlogged(
    root: Path, mode: str, point: str
) -> None:
    acked = _run_to_kill(root, mode, point, nth=3)
    assert acked, "two whole batches were acknowledged before the kill"
    left = _rows(root)
    dep = Deployment.open(root)  # the start-up check settles what the kill left
    try:
        gw = dep.gateway
        logged = {}
        for index, data in enumerate(gw.log.iter_entries()):
            entry = LogEntry.from_bytes(data)
            if entry.kind == "ingest":
                logged[str(entry.fields["record"])] = index
        rows = _rows(root)
        # Every acknowledged record: its entry logged, its row visible at that entry...
        for rid in acked:
            assert rows.get(rid) == logged.get(rid) is not None, rid
        # ...and it reads back as it was sent.
        authority = dep.store.get_principal("authority-pl")
        ids = sorted(acked)
        for start in range(0, len(ids), 20):
            chunk = ids[start : start + 20]
            got = gw.access(
                authority,
                purpose="domestic-legal-process",
                record_ids=chunk,
                justification="domestic-legal-process",
            ).records
            assert got == {rid: acked[rid] for rid in chunk}
        # No row is visible without its own ingest entry; every other row is hidden.
        for rid, index in rows.items():
            assert index == logged[rid] if rid in logged else index < 0, rid
        # The killed batch's rows (and those of a batch running beside it): completed
        # from the log when their entries made it, hidden when they did not.
        killed = [rid for rid, index in left.items() if index < 0]
        for rid in killed:
            assert rows.get(rid, -1) == logged[rid] if rid in logged else rows.get(rid, -1) < 0
        if point == "append":
            assert any(rid not in logged for rid in killed)
        if point == "index":
            assert any(rid in logged for rid in killed)
        if point == "appended":
            # The killed batch's entries are logged, its records never acknowledged, and
            # each is visible at its entry (checked above for every row).
            assert any(rid in logged and rid not in acked for rid in rows)
        report = check(dep.store, gw.log, gw.blobs, now_ms=int(time.time() * 1000))
        assert report.clean, json.dumps(report.to_dict(), indent=1)
    finally:
        dep.close()
