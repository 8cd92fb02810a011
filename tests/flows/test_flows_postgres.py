"""A deployment whose shared state lives in PostgreSQL (``sovra init --database URL``):
the demo's seven outcomes, and two replicas over one database acting as one deployment.

Each test gets a fresh schema of the throwaway cluster (the ``pg_dsn`` fixture).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from tests.scaleout import post_signed
from typer.testing import CliRunner

from sovra.cli import app
from sovra.demo import ANNA as DEMO_ANNA
from sovra.demo import run_demo
from sovra.deployment import Deployment
from sovra.errors import ConfigError, Denied, Unavailable
from sovra.model import Role
from sovra.policy import BulkLimits, Envelope, shipped_bundle, sign_pack
from sovra.server import create_app
from sovra.store.postgres import PostgresGuardJournal

pytestmark = pytest.mark.postgres

LAN = "lan@example.vn"


@pytest.fixture
def pg_root(tmp_path: Path, pg_dsn: str) -> Path:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/pg", custodians="in-process", database=pg_dsn)
    return root


@pytest.fixture
def replicas(pg_root: Path) -> Iterator[tuple[Deployment, Deployment]]:
    """Two gateways over one database, as two replicas (or two workers) run."""
    first = Deployment.open(pg_root)
    second = Deployment.open(pg_root)
    yield first, second
    first.close()
    second.close()


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_a_postgres_deployment_serves_the_demos_seven_outcomes(pg_root: Path, pg_dsn: str) -> None:
    # Nothing of the shared state is in a file beside the configuration.
    assert not (pg_root / "sovra.db").exists()
    dep = Deployment.open(pg_root)
    try:
        assert isinstance(dep.gateway.decisions.guard.journal, PostgresGuardJournal)
        steps = run_demo(dep, synthetic=20)
        # Step.ok: the outcome is the one the demo expects (tests/flows/test_flows_demo.py
        # pins what each is on the embedded deployment).
        assert [s.number for s in steps] == [1, 2, 3, 4, 5, 6, 7]
        assert all(s.ok for s in steps), [(s.number, s.outcome, s.reason) for s in steps]
        size = dep.gateway.log.size
    finally:
        dep.close()
    assert not (pg_root / "sovra.db").exists() and not (pg_root / "guard.db").exists()
    assert {"records", "principals", "grants", "token_nonces", "log_entries", "guard_journal"} <= (
        _tables(pg_dsn)
    )
    with psycopg.connect(pg_dsn) as conn:
        entries = conn.execute("SELECT count(*) FROM log_entries").fetchone()
        principals = conn.execute("SELECT count(*) FROM principals").fetchone()
    assert entries is not None and entries[0] == size
    assert principals is not None and principals[0] >= 12  # init's, and the demo's subject


def test_init_refuses_a_database_that_holds_a_deployment(
    pg_root: Path, pg_dsn: str, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    with pytest.raises(ConfigError, match="already holds a deployment"):
        Deployment.init(other, custodians="in-process", database=pg_dsn)
    assert not other.exists()
    with pytest.raises(ConfigError, match="takes a postgresql:// URL"):
        Deployment.init(other, custodians="in-process", database=str(tmp_path / "x.db"))
    assert not other.exists()


def test_cli_init_database_writes_a_postgres_deployment(tmp_path: Path, pg_dsn: str) -> None:
    root = tmp_path / "dep"
    result = CliRunner().invoke(
        app,
        ["init", str(root), "--jurisdictions", "PL,VN", "--custodians", "in-process",
         "--database", pg_dsn],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f'database = "{pg_dsn}"' in (root / "sovra.toml").read_text()
    dep = Deployment.open(root)
    try:
        # The principals init registered are where the gateway looks for them.
        assert {p.id for p in dep.store.list_principals()} >= {"svc-pl", "operator"}
    finally:
        dep.close()
    again = CliRunner().invoke(
        app, ["init", str(tmp_path / "dep2"), "--custodians", "in-process", "--database", pg_dsn]
    )
    assert again.exit_code != 0
    assert "already holds a deployment" in again.output


def test_a_principal_registered_on_one_replica_calls_through_the_other(replicas) -> None:
    first, second = replicas
    anna = first.gateway.commitment("PL", "anna@example.pl")
    first.register("subject-anna", "PL", Role.SUBJECT, subject=anna)
    assert second.store.get_principal("subject-anna").subject == anna


def test_two_replicas_spend_one_bulk_budget(replicas) -> None:
    first, second = replicas
    for dep in replicas:
        dep.gateway.decisions.guard.limits = BulkLimits(50, 3, 3600)
    svc = first.store.get_principal("svc-vn")
    ids = [
        first.gateway.ingest(
            svc, subject_id=f"p{n}@example.vn", jurisdiction="VN", content="x"
        ).record_id
        for n in range(5)
    ]
    first.gateway.access(svc, purpose="customer-support", record_ids=ids[:2])
    second.gateway.access(svc, purpose="customer-support", record_ids=ids[2:3])
    # The window's budget of 3 subjects is spent across both: the fourth is refused on
    # either replica, though neither alone has seen more than 2.
    for dep in (second, first):
        with pytest.raises(Denied, match="sliding-window budget"):
            dep.gateway.access(svc, purpose="customer-support", record_ids=ids[3:4])
    reviews_or_alerts = [a.requester for a in second.gateway.decisions.guard.alerts()]
    assert reviews_or_alerts == [a.requester for a in first.gateway.decisions.guard.alerts()]


def test_a_pack_activated_on_one_replica_applies_on_the_other(replicas) -> None:
    first, second = replicas
    envelope = Envelope.wrap(shipped_bundle("gdpr-chapter-v"))
    for j in ("PL", "DE", "VN"):
        envelope = sign_pack(envelope, j, first.authority_key(j))
    first.governance.activate_policy(first.store.get_principal("operator"), envelope)
    assert second.gateway.decisions.pack.name == "gdsi"
    # What the server's follower thread calls twice a second.
    second.governance.follow_policy()
    assert second.gateway.decisions.pack.name == "gdpr-chapter-v"


def test_sqlite_deployment_keeps_its_files(tmp_path: Path) -> None:
    root = tmp_path / "embedded"
    Deployment.init(root, custodians="in-process", jurisdictions=["PL"])
    assert 'database = "sovra.db"' in (root / "sovra.toml").read_text()
    with sqlite3.connect(root / "sovra.db") as db:
        assert db.execute("SELECT count(*) FROM principals").fetchone()[0] == 4


# -- faults: the database restarted under load -----------------------------------------


def _restart_command() -> str:
    command = os.environ.get("SOVRA_TEST_PG_RESTART")
    if not command:
        reason = "scripts/with-postgres exports no SOVRA_TEST_PG_RESTART here"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the fault tests")
        pytest.skip(reason)
    return command


def _restart(command: str, mode: str) -> None:
    subprocess.run([command, mode], check=True, timeout=120)


@pytest.mark.serial  # restarts the cluster every test shares
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_restart_under_load_fails_calls_precisely_and_loses_no_acknowledged_record(
    pg_root: Path, mode: str
) -> None:
    restart = _restart_command()
    dep = Deployment.open(pg_root)
    svc = dep.store.get_principal("svc-vn")
    acknowledged: list[str] = []
    refused: list[Unavailable] = []
    unexpected: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                receipt = dep.gateway.ingest(
                    svc, subject_id=f"s{n % 7}@example.vn", jurisdiction="VN", content=f"r{n}"
                )
            except Unavailable as exc:
                refused.append(exc)
                time.sleep(0.05)
            except BaseException as exc:
                unexpected.append(exc)
                return
            else:
                acknowledged.append(receipt.record_id)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(acknowledged) < count and not unexpected and time.monotonic() < deadline:
            time.sleep(0.01)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_for(10)
        _restart(restart, mode)
        before = len(acknowledged)
        wait_for(before + 10)  # it serves again once the server is back
    finally:
        stop.set()
        worker.join()
    dep.close()
    assert unexpected == []
    assert len(acknowledged) >= before + 10
    # Every failure said what it was: the database is unavailable, try again shortly.
    assert refused, "no call met the restart"
    assert {(e.status, e.retry_after_s is not None) for e in refused} == {(503, True)}
    assert all("PostgreSQL" in e.message for e in refused)
    # Nothing acknowledged is lost: reopened (and reconciled), every receipt's record is
    # there and logged, and the log verifies.
    again = Deployment.open(pg_root)
    try:
        stored = again.store.get_records(acknowledged)
        assert sorted(stored) == sorted(acknowledged)
        assert all(m.log_index >= 0 for m in stored.values())
        assert again.recovery is not None
        again.gateway.log.checkpoint()
    finally:
        again.close()


@pytest.mark.serial  # restarts the cluster every test shares
def test_the_http_edge_answers_503_with_retry_after_when_the_database_restarted(
    pg_root: Path,
) -> None:
    restart = _restart_command()
    dep = Deployment.open(pg_root)
    try:
        with TestClient(create_app(dep)) as http:

            def ingest() -> Any:
                record = {"subject_id": "lan@example.vn", "jurisdiction": "VN", "content": "x"}
                return post_signed(http, dep, "svc-vn", "/v1/records", record)

            assert ingest().status_code == 201
            _restart(restart, "fast")
            answer = ingest()
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["error"] == "unavailable"
            assert "PostgreSQL" in answer.json()["message"]
            # The client retries after the pause; by then the pools have reconnected.
            statuses = [ingest().status_code for _ in range(3)]
            assert 201 in statuses and set(statuses) <= {201, 503}
    finally:
        dep.close()


# -- the custodians' subject keys in databases of their own ------------------------------


@pytest.fixture
def custodian_databases(pg_dsn: str) -> Iterator[dict[str, str]]:
    """A schema of its own per custodian (in production: a database and a role of its own)."""
    base = os.environ["SOVRA_TEST_PG_DSN"]
    dsns = {}
    with psycopg.connect(base, autocommit=True) as admin:
        for j in ("PL", "VN", "DE", "US", "CN"):
            schema = f"custodian_{j.lower()}_{os.urandom(4).hex()}"
            admin.execute(f"CREATE SCHEMA {schema}")
            dsns[j] = _with_search_path(base, schema)
    try:
        yield dsns
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            for dsn in dsns.values():
                schema = dsn.rsplit("search_path%3D", 1)[1]
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _with_search_path(base: str, schema: str) -> str:
    parts = urllib.parse.urlsplit(base)
    query = [*urllib.parse.parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    return urllib.parse.urlunsplit(parts._replace(query=encoded))


def test_custodians_keep_subject_keys_in_their_own_databases_and_shred_there(
    pg_root: Path, custodian_databases: dict[str, str]
) -> None:
    for j, dsn in custodian_databases.items():
        (pg_root / "custodians" / f"{j}.database").write_text(dsn + "\n")
    dep = Deployment.open(pg_root)
    try:
        steps = run_demo(dep, synthetic=20)
        assert all(s.ok for s in steps), [(s.number, s.outcome, s.reason) for s in steps]
        anna = dep.gateway.commitment(*DEMO_ANNA)
        with psycopg.connect(custodian_databases["PL"]) as pl:
            held = pl.execute("SELECT count(*) FROM subject_keys WHERE subject = %s", (anna,))
            assert held.fetchone() == (1,)
        # Not a key in the SQLite stores beside the key files.
        with sqlite3.connect(pg_root / "custodians" / "PL.subjects.db") as db:
            assert db.execute("SELECT count(*) FROM subject_keys").fetchone() == (0,)
        dep.governance.shred(
            dep.store.get_principal("authority-pl"), jurisdiction="PL", subject_id=DEMO_ANNA[1]
        )
        with psycopg.connect(custodian_databases["PL"]) as pl:
            assert pl.execute(
                "SELECT count(*) FROM subject_keys WHERE subject = %s", (anna,)
            ).fetchone() == (0,)
            assert pl.execute(
                "SELECT count(*) FROM shredded WHERE subject = %s", (anna,)
            ).fetchone() == (1,)
    finally:
        dep.close()
