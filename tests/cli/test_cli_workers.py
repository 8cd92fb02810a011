"""Several gateway processes over one deployment behave as one gateway.

``sovra serve --workers N`` forks N workers; the kernel picks which one takes a
connection, so to aim a request at a chosen process these tests start two ``sovra serve``
processes on two ports over the same deployment: each is a whole gateway over the same
files, exactly as a worker is. Every guarantee is checked across them: one bulk budget,
one review queue and one list of alerts, one active pack, one dense log. Each runs on the
embedded deployment (SQLite files) and on one whose shared state is in PostgreSQL (``sovra
init --database``), where the two processes are two replicas over one database.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.initial_log import logged_by_init
from tests.serving import client, free_port, key, serve, stop, wait_for

from sovra.auth import make_token
from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.ledger import verify_checkpoint, verify_consistency
from sovra.policy import Envelope, shipped_bundle, sign_pack


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def deployment(request: pytest.FixtureRequest, template: Path, tmp_path: Path) -> Path:
    """A new deployment: a copy of the embedded template, or one in PostgreSQL."""
    root = tmp_path / "deployment"
    if request.param == "sqlite":
        shutil.copytree(template, root)
    else:
        pg_dsn = request.getfixturevalue("pg_dsn")
        Deployment.init(root, origin="sovra.test/pg", custodians="in-process", database=pg_dsn)
    return root


@pytest.fixture
def two(deployment: Path) -> Iterator[tuple[Path, str, str]]:
    """Two gateway processes over one deployment whose window budget is 3 subjects."""
    root = deployment
    config = root / "sovra.toml"
    config.write_text(
        config.read_text().replace("window_subject_limit = 500", "window_subject_limit = 3")
    )
    ports = [free_port(), free_port()]
    first = serve(root, ports[0])
    try:
        wait_for(f"http://127.0.0.1:{ports[0]}", first)
        second = serve(root, ports[1])
        try:
            wait_for(f"http://127.0.0.1:{ports[1]}", second)
            yield root, f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
        finally:
            stop(second)
    finally:
        stop(first)


def _get(root: Path, url: str, principal: str, path: str) -> Any:
    token = make_token(key(root, principal), principal, "GET", path, b"", now_s=int(time.time()))
    answer = httpx.get(url + path, headers={"authorization": f"Sovra {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_one_bulk_budget_one_review_queue_one_alert_list_across_processes(two) -> None:
    root, first, second = two
    with client(root, first, "svc-pl") as svc_first, client(root, second, "svc-pl") as svc_2:
        records = [
            svc_first.ingest(f"budget-{n}", "PL", f"note {n}")["record_id"] for n in range(4)
        ]
        # Three distinct subjects through the first process: the whole window budget.
        for record in records[:3]:
            assert svc_first.access("customer-support", record_ids=[record])["records"]
        # A fourth through the second: over the budget the first one spent.
        with pytest.raises(Denied) as refused:
            svc_2.access("customer-support", record_ids=[records[3]])
    assert refused.value.log_index is not None
    # The refusal is logged and raised an alert, shown by both processes.
    for url in (first, second):
        alerts = _get(root, url, "auditor", "/v1/policy/alerts")["alerts"]
        assert [a["requester"] for a in alerts] == ["svc-pl"], url
    # A decision queued for review through the second is in the queue of the first.
    with client(root, second, "authority-us") as us, pytest.raises(Denied, match="review"):
        us.access(
            "provider-disclosure", record_ids=[records[0]], justification="compelled-third-party"
        )
    for url in (first, second):
        reviews = _get(root, url, "auditor", "/v1/policy/reviews")["reviews"]
        assert [(r["queue"], r["effect"]) for r in reviews] == [("legal", "deny")], url


def test_a_pack_activated_through_one_process_applies_on_the_other(two) -> None:
    root, first, second = two
    envelope = Envelope.wrap(shipped_bundle("gdpr-chapter-v"))
    dep = Deployment.open(root, recover=False)
    try:
        for j in ("PL", "DE", "VN"):
            envelope = sign_pack(envelope, j, dep.authority_key(j))
    finally:
        dep.close()
    assert _get(root, second, "auditor", "/v1/policy")["name"] == "gdsi"
    with client(root, first, "operator") as operator:
        operator.activate_policy(envelope.to_json())
    deadline = time.monotonic() + 5
    while _get(root, second, "auditor", "/v1/policy")["name"] != "gdpr-chapter-v":
        assert time.monotonic() < deadline, "the second process still has the old pack"
        time.sleep(0.1)


def test_serve_workers_shares_one_log_and_stops_every_worker(sovra, deployment):
    root = deployment
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(root, port, workers=2)
    try:
        wait_for(url, proc)
        workers = _children(proc.pid)
        assert len(workers) == 2

        def ingest(n: int) -> tuple[int, str]:
            # A connection of its own each time: the kernel picks the worker.
            with client(root, url, "svc-pl") as svc:
                return svc.ingest(f"w-{n}", "PL", "hello")["log_index"], svc.checkpoint()

        with ThreadPoolExecutor(4) as pool:
            indices, notes = zip(*pool.map(ingest, range(40)), strict=True)
    finally:
        err = stop(proc)
    first = logged_by_init(root)  # the entries of sovra init
    assert sorted(indices) == list(range(first, first + 40))
    for w in workers:  # every worker stopped with the parent
        assert not Path(f"/proc/{w}").exists() or _zombie(w)
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        checkpoints = [verify_checkpoint(n, log.verifier_key) for n in notes]
        assert max(c.size for c in checkpoints) == log.size == first + 40
        for c in checkpoints:  # every one a prefix of the same log
            proof = log.consistency_proof(c.size, log.size)
            verify_consistency(c.size, log.size, c.root_hash, log.root(), proof)
    finally:
        dep.close()
    assert "worker" not in err


def test_a_worker_killed_is_replaced_and_the_parent_killed_takes_the_workers(template, tmp_path):
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(root, port, workers=2)
    try:
        wait_for(url, proc)
        first = _children(proc.pid)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(set(_children(proc.pid)) - {first[0]}) < 2:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.05)
        wait_for(url, proc)
        workers = _children(proc.pid)
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{w}").exists() and not _zombie(w) for w in workers):
            assert time.monotonic() < deadline, "a worker outlived its parent"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
