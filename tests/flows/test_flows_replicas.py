"""Two ``sovra serve`` replicas over one PostgreSQL and one S3 server serve one deployment.

Each replica is a real process on a port of its own; clients in several threads ingest
through one and read through the other at once, then the log (dense, audited, every
receipt's entry included) and every record (through either replica, its blob in its
bucket) are checked. One replica killed in the middle of the load: the other goes on
sequencing the log (ADR 0021), and nothing acknowledged is lost.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest
from tests.conftest import S3Bucket
from tests.scaleout import SERVICES, check_log_and_records, init_scaled, new_record
from tests.serving import client, free_port, serve, stop, wait_for

from sovra.client import Client
from sovra.errors import SovraError, Unavailable
from sovra.ledger import leaf_hash
from sovra.ledger.postgres import PostgresLogStorage

pytestmark = pytest.mark.postgres


@dataclass
class Replicas:
    """Replica processes over one deployment, and where each logs."""

    root: Path
    urls: list[str]
    procs: list[Popen[str]]
    outputs: list[Path]

    def start(self, n: int) -> None:
        """(Re)start replica *n* on its port and wait until it answers."""
        port = int(self.urls[n].rsplit(":", 1)[1])
        self.procs[n] = serve(self.root, port, output=self.outputs[n])
        wait_for(self.urls[n], self.procs[n])


@pytest.fixture
def replicas(tmp_path: Path, pg_dsn: str, s3_bucket: S3Bucket) -> Iterator[Replicas]:
    """Two replicas, started at once, over a new scale-out deployment."""
    root = init_scaled(tmp_path / "deployment", pg_dsn, s3_bucket, origin="sovra.test/replicas")
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    outputs = [tmp_path / f"replica-{n}.log" for n in range(2)]
    procs: list[Popen[str]] = []
    try:
        for url, output in zip(urls, outputs, strict=True):
            procs.append(serve(root, int(url.rsplit(":", 1)[1]), output=output))
        for url, proc in zip(urls, procs, strict=True):
            wait_for(url, proc)
        yield Replicas(root, urls, procs, outputs)
    finally:
        for proc, output in zip(procs, outputs, strict=True):
            if proc.poll() is None:
                stop(proc, output)


@dataclass
class Load:
    """What clients got from the replicas: acknowledged records and receipts, failures."""

    root: Path
    ingested: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, list[SovraError]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def round(self, clients: dict[str, Client], into: str, read: str, jurisdiction: str) -> None:
        """Ingest one record through replica *into*, read it back through *read*."""
        body = new_record(jurisdiction)
        got = self._call(into, lambda: clients[SERVICES[jurisdiction], into].ingest(**body))
        if got is None:
            return
        with self.lock:
            self.ingested[got["record_id"]] = got | {
                "content": body["content"],
                "via": into,
                "jurisdiction": jurisdiction,
            }
        read_by = clients[SERVICES[jurisdiction], read]
        answer = self._call(
            read, lambda: read_by.access("customer-support", record_ids=[got["record_id"]])
        )
        if answer is not None:
            assert answer["records"] == {got["record_id"]: body["content"]}
            with self.lock:
                self.receipts += [answer["decision_receipt"], answer["release_receipt"]]

    def _call(self, url: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        try:
            return call()
        except SovraError as exc:
            with self.lock:
                self.failures.setdefault(url, []).append(exc)
            time.sleep(0.05)
            return None

    def count(self, via: str) -> int:
        """Records acknowledged through *via* so far."""
        with self.lock:
            return sum(1 for a in self.ingested.values() if a["via"] == via)

    def clients(self, urls: list[str]) -> dict[Any, Client]:
        """A client per (service, replica), for one thread."""
        return {(s, url): client(self.root, url, s) for s in SERVICES.values() for url in urls}


def _read_all(root: Path, url: str, ingested: dict[str, dict[str, Any]]) -> None:
    """Every acknowledged record reads back, with its content, through the replica at *url*."""
    for jurisdiction, service in SERVICES.items():
        ids = [rid for rid, a in ingested.items() if a["jurisdiction"] == jurisdiction]
        with client(root, url, service) as reader:
            for start in range(0, len(ids), 25):  # under the per-request subject limit
                chunk = ids[start : start + 25]
                got = reader.access("customer-support", record_ids=chunk)["records"]
                assert got == {rid: ingested[rid]["content"] for rid in chunk}, url


@pytest.mark.s3
def test_two_replicas_ingest_and_read_through_both_at_once(
    replicas: Replicas, s3_bucket: S3Bucket
) -> None:
    load = Load(replicas.root)
    first, second = replicas.urls

    def worker(n: int) -> None:
        clients = load.clients(replicas.urls)
        try:
            for i in range(12):
                into, read = (first, second) if (n + i) % 2 else (second, first)
                load.round(clients, into, read, "PL" if i % 3 else "VN")
        finally:
            for c in clients.values():
                c.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert load.failures == {}
    assert len(load.ingested) == 48
    assert load.count(first) == load.count(second) == 24
    for url in replicas.urls:
        _read_all(replicas.root, url, load.ingested)
    size = check_log_and_records(replicas.root, s3_bucket, load.ingested, load.receipts)
    assert size >= 48 * 3  # an ingest entry, a decision and a release per round


@pytest.mark.s3
def test_a_replica_killed_under_load_leaves_the_other_sequencing(
    replicas: Replicas, s3_bucket: S3Bucket
) -> None:
    load = Load(replicas.root)
    doomed, survivor = replicas.urls
    stop_load = threading.Event()

    def worker(n: int) -> None:
        clients = load.clients(replicas.urls)
        into = replicas.urls[n % 2]
        try:
            for i in itertools.count():
                if stop_load.is_set():
                    return
                load.round(clients, into, survivor, "PL" if i % 3 else "VN")
        finally:
            for c in clients.values():
                c.close()

    def wait_until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 300
        while not done():
            assert time.monotonic() < deadline, "the load made no progress"
            assert not load.failures.get(survivor), load.failures[survivor]
            time.sleep(0.02)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: load.count(doomed) >= 15 and load.count(survivor) >= 15)
        replicas.procs[0].kill()  # SIGKILL: no clean-up, mid-batch more often than not
        replicas.procs[0].wait(timeout=60)
        before = load.count(survivor)
        wait_until(lambda: load.count(survivor) >= before + 30)
    finally:
        stop_load.set()
        for t in threads:
            t.join()
    # Every request to the survivor succeeded; those to the dead one failed as unreachable.
    assert survivor not in load.failures
    assert load.failures.get(doomed), "no request met the killed replica"
    assert all(isinstance(e, Unavailable) for e in load.failures[doomed])
    # A supervisor restarts the dead one; its start-up settles what the kill left pending.
    replicas.start(0)
    for url in replicas.urls:
        _read_all(replicas.root, url, load.ingested)
    check_log_and_records(replicas.root, s3_bucket, load.ingested, load.receipts)


# What a replica whose machine froze mid-batch looks like to the database: its connection
# stays open, its transaction holds the index row, and it never says another word.
_FROZEN_HOLDER = """
import os, signal, sys
from sovra.ledger.postgres import PostgresLogStorage
from sovra.store import PgTimeouts
log = PostgresLogStorage(sys.argv[1], timeouts=PgTimeouts(idle_in_transaction_s=float(sys.argv[2])))
with log._transaction() as cur:
    log._next_index(cur, lock=True)
    print("holding", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
"""


def test_a_frozen_sequencer_is_ended_and_the_other_replica_takes_the_log(pg_dsn: str) -> None:
    other = PostgresLogStorage(pg_dsn)
    frozen = subprocess.Popen(
        [sys.executable, "-c", _FROZEN_HOLDER, pg_dsn, "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert frozen.stdout is not None and frozen.stdout.readline() == "holding\n"
        got: list[list[int]] = []
        appending = threading.Thread(
            target=lambda: got.append(other.append_batch([(b"after", leaf_hash(b"after"), ())]))
        )
        appending.start()
        # Without the server ending the frozen session this waits for TCP (hours).
        appending.join(timeout=120)
        assert not appending.is_alive(), "the frozen replica still holds the log"
        assert got == [[0]]  # the frozen batch never committed: no index taken, none skipped
        assert other.size() == 1
    finally:
        frozen.kill()
        frozen.communicate(timeout=60)
        other.close()
