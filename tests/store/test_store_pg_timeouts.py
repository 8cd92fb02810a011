"""PostgreSQL sessions wait a bounded time (``[postgres]`` in sovra.toml): a lock another
session holds past ``lock_timeout_s``, or a statement past ``statement_timeout_s``, ends
the call with a 503 that says so, keeps nothing of it, and leaves the store usable.

The locks are held from another connection of the real server, as another replica or an
operator's open ``psql`` transaction would hold them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from tests.scaleout import post_signed

from sovra._cli.keys import pg_timeouts
from sovra.config import Config
from sovra.deployment import CONFIG_NAME, Deployment
from sovra.errors import ConfigError, Unavailable
from sovra.keys import LocalCustodian
from sovra.keys.remote import RemoteCustodian
from sovra.keys.subjects_postgres import PostgresSubjectKeyStore
from sovra.ledger import leaf_hash
from sovra.ledger.postgres import PostgresLogStorage
from sovra.model import RecordHeader, subject_commitment
from sovra.server import create_app
from sovra.server.background import running
from sovra.server.custodian import create_custodian_app
from sovra.store import PgTimeouts
from sovra.store.postgres import PostgresGuardJournal

# The guard journal's session lock (store/postgres.py): what a decision on another
# replica holds while it reads and appends its events.
_JOURNAL_SESSION_LOCK_KEY = 0x736F767261_4B


@contextmanager
def holding(dsn: str, *statements: str) -> Iterator[None]:
    """Another session runs *statements* inside a transaction and keeps it open."""
    with psycopg.connect(dsn) as other:
        for sql in statements:
            other.execute(sql)
        yield
        other.rollback()


def _item(n: int) -> tuple[bytes, bytes, tuple[str, ...]]:
    entry = f"entry {n}".encode()
    return entry, leaf_hash(entry), ()


@pytest.mark.postgres
def test_a_batch_waiting_for_the_index_row_gives_up_with_a_503(pg_dsn: str) -> None:
    log = PostgresLogStorage(pg_dsn, timeouts=PgTimeouts(lock_s=0.3))
    try:
        assert log.append_batch([_item(0)]) == [0]
        with holding(pg_dsn, "SELECT next_index FROM log_state WHERE id = 1 FOR UPDATE"):
            started = time.monotonic()
            with pytest.raises(Unavailable) as waited:
                log.append_batch([_item(1), _item(2)])
            assert time.monotonic() - started < 10  # it did not wait for the holder
            assert waited.value.retry_after_s == 1
            assert "waited longer than lock_timeout (0.3 s)" in waited.value.message
            assert "nothing was written" in waited.value.message
            assert log.size() == 1  # reads do not wait for the row
        # Nothing of the refused batch was kept, and no index was taken: the log stays
        # dense, and the same connection serves on.
        assert log.append_batch([_item(1)]) == [1]
        assert log.read_entries(0, 2) == [b"entry 0", b"entry 1"]
    finally:
        log.close()


@pytest.mark.postgres
def test_a_decision_waiting_for_the_guard_journal_gives_up_with_a_503(pg_dsn: str) -> None:
    journal = PostgresGuardJournal(pg_dsn, timeouts=PgTimeouts(lock_s=0.3))
    try:
        with holding(pg_dsn, f"SELECT pg_advisory_xact_lock({_JOURNAL_SESSION_LOCK_KEY})"):
            with pytest.raises(Unavailable) as waited, journal.session():
                pass
            assert "guard journal" in waited.value.message
            assert "lock_timeout (0.3 s)" in waited.value.message
        with journal.session() as events:  # the lock released, sessions go on
            assert events.read(0) == []
    finally:
        journal.close()


@pytest.mark.postgres
def test_a_statement_past_statement_timeout_is_cancelled_with_a_503(pg_dsn: str) -> None:
    # No lock limit: the statement limit is what ends the wait.
    log = PostgresLogStorage(pg_dsn, timeouts=PgTimeouts(lock_s=0, statement_s=0.3))
    try:
        with holding(pg_dsn, "SELECT next_index FROM log_state WHERE id = 1 FOR UPDATE"):
            with pytest.raises(Unavailable) as cancelled:
                log.append_batch([_item(0)])
            assert "ran longer than statement_timeout (0.3 s)" in cancelled.value.message
        assert log.append_batch([_item(0)]) == [0]
    finally:
        log.close()


@pytest.mark.postgres
def test_every_pooled_session_carries_the_limits(pg_dsn: str) -> None:
    journal = PostgresGuardJournal(
        pg_dsn, timeouts=PgTimeouts(lock_s=1.5, statement_s=0, idle_in_transaction_s=12)
    )
    try:
        with journal._pool.connection() as conn:
            got = {
                name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
                for name in (
                    "lock_timeout",
                    "statement_timeout",
                    "idle_in_transaction_session_timeout",
                )
            }
    finally:
        journal.close()
    assert got == {
        "lock_timeout": ("1500ms",),
        "statement_timeout": ("0",),
        "idle_in_transaction_session_timeout": ("12s",),
    }


@pytest.mark.postgres
def test_the_http_edge_answers_503_while_another_session_holds_the_sequencer(
    tmp_path: Path, pg_dsn: str
) -> None:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/locks", custodians="in-process", database=pg_dsn)
    with (root / CONFIG_NAME).open("a") as f:
        f.write("\n[postgres]\nlock_timeout_s = 0.5\n")
    dep = Deployment.open(root)
    try:
        assert dep.config.postgres.lock_s == 0.5
        with TestClient(create_app(dep)) as http:

            def ingest(content: str) -> Any:
                record = {"subject_id": "lan@example.vn", "jurisdiction": "VN", "content": content}
                return post_signed(http, dep, "svc-vn", "/v1/records", record)

            assert ingest("first").status_code == 201
            size = dep.gateway.log.size
            with holding(pg_dsn, "SELECT next_index FROM log_state WHERE id = 1 FOR UPDATE"):
                answer = ingest("second")
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "1"
                assert answer.json()["error"] == "unavailable"
                assert "lock_timeout (0.5 s)" in answer.json()["message"]
            assert dep.gateway.log.size == size  # no entry, no index taken
            # The row released, the client's retry is served at the next index.
            again = ingest("second")
            assert again.status_code == 201, again.text
            assert again.json()["log_index"] == size
    finally:
        dep.close()
    # The refused ingest left no visible record: one record of lan's, the retried one
    # counted once.
    dep = Deployment.open(root)
    try:
        assert dep.store.count_records() == 2
        assert dep.gateway.log.size == size + 1
    finally:
        dep.close()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("lock_timeout_s = -1", "[postgres] lock_timeout_s must be seconds in [0, 86400]"),
        ("statement_timeout_s = 'soon'", "[postgres] statement_timeout_s must be seconds"),
        ("idle_in_transaction_s = 0", "[postgres] idle_in_transaction_s must be seconds"),
        ("lock_timeout_s = true", "[postgres] lock_timeout_s must be seconds"),
        ("lock_wait = 3", "[postgres] has unknown key(s) lock_wait"),
    ],
)
def test_bad_postgres_settings_are_refused_naming_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/cfg", custodians="in-process")
    text = (root / CONFIG_NAME).read_text() + f"\n[postgres]\n{table}\n"
    with pytest.raises(ConfigError) as refused:
        Config.from_text(text, "sovra.toml")
    assert message in refused.value.message


def test_the_limits_default_and_read_from_the_table() -> None:
    assert PgTimeouts().settings() == {
        "lock_timeout": "10000ms",
        "statement_timeout": "60000ms",
        "idle_in_transaction_session_timeout": "30000ms",
    }
    got = PgTimeouts.from_table({"lock_timeout_s": 2, "statement_timeout_s": 0})
    assert (got.lock_s, got.statement_s, got.idle_in_transaction_s) == (2, 0, 30.0)


# -- the custodian service's own subject-key store -------------------------------------------

# The subject-key store's writers' lock (keys/subjects_postgres.py): what an insert or a
# shred of another custodian process holds for the length of its transaction.
_SUBJECT_WRITE_LOCK_KEY = 0x736F767261_54
_SUBJECT = subject_commitment(b"c" * 32, "PL", "anna@example.pl")


@pytest.mark.postgres
def test_a_subject_key_write_waiting_for_the_writers_lock_gives_up_with_a_503(
    pg_dsn: str,
) -> None:
    store = PostgresSubjectKeyStore(pg_dsn, "PL", timeouts=PgTimeouts(lock_s=0.3))
    try:
        with holding(pg_dsn, f"SELECT pg_advisory_xact_lock({_SUBJECT_WRITE_LOCK_KEY})"):
            with pytest.raises(Unavailable) as waited:
                store.insert_many([(_SUBJECT, 1, b"sealed")], 5)
            assert waited.value.retry_after_s == 1
            assert "subject keys of custodian PL" in waited.value.message
            assert "waited longer than lock_timeout (0.3 s)" in waited.value.message
            assert store.get(_SUBJECT) is None  # reads do not wait; nothing was stored
        assert store.insert_many([(_SUBJECT, 1, b"sealed")], 5) == {}
        # A shred waiting for the key's row another session holds gives up too, and the
        # key is still there to shred on the retry.
        with (
            holding(pg_dsn, "SELECT * FROM subject_keys FOR UPDATE"),
            pytest.raises(Unavailable, match=r"lock_timeout \(0\.3 s\)"),
        ):
            store.shred(_SUBJECT, 6)
        assert store.get(_SUBJECT) == (_SUBJECT, 1, b"sealed")
        assert store.shredded_count() == 0
        assert store.shred(_SUBJECT, 7) is True
    finally:
        store.close()


@pytest.mark.postgres
def test_a_subject_key_read_past_statement_timeout_is_cancelled_with_a_503(pg_dsn: str) -> None:
    store = PostgresSubjectKeyStore(pg_dsn, "PL", timeouts=PgTimeouts(lock_s=0, statement_s=0.3))
    try:
        with holding(pg_dsn, "LOCK TABLE subject_keys IN ACCESS EXCLUSIVE MODE"):
            with pytest.raises(Unavailable) as cancelled:
                store.lookup([_SUBJECT])
            assert "ran longer than statement_timeout (0.3 s)" in cancelled.value.message
        assert store.lookup([_SUBJECT]) == ({}, {})
    finally:
        store.close()


@pytest.mark.postgres
def test_the_custodian_service_answers_503_while_its_store_waits_for_a_lock(
    tmp_path: Path, pg_dsn: str
) -> None:
    """``sovra custodian serve`` with its subject keys in PostgreSQL: a shred held up by a
    lock past the deployment's limit is a 503 the gateway's client turns into Unavailable,
    and the key is still there for the retry."""
    log_key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "PL.key"
    LocalCustodian.create(key_file, "PL", log_key.public_key()).close()
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/custodian-locks", custodians="in-process")
    with (root / CONFIG_NAME).open("a") as f:
        f.write("\n[postgres]\nlock_timeout_s = 0.3\n")
    limits = pg_timeouts(root)  # what `sovra custodian serve -d ROOT` reads
    assert limits.lock_s == 0.3
    custodian = LocalCustodian.open(
        key_file, "PL", log_key.public_key(), database=pg_dsn, pg_timeouts=limits
    )
    token = b"t" * 32
    try:
        with running(create_custodian_app(custodian, token=token)) as url:
            remote = RemoteCustodian(url, "PL", token)
            try:
                header = RecordHeader("rec-anna", _SUBJECT, "PL", "eu-central-pl", 1)
                remote.wrap(os.urandom(32), header)  # her key is made
                with holding(pg_dsn, f"SELECT pg_advisory_xact_lock({_SUBJECT_WRITE_LOCK_KEY})"):
                    with pytest.raises(Unavailable) as waited:
                        remote.shred(_SUBJECT)
                    assert "lock_timeout (0.3 s)" in waited.value.message
                    assert waited.value.retry_after_s == 1
                assert remote.shred(_SUBJECT) is True  # the key was there for the retry
            finally:
                remote.close()
    finally:
        custodian.close()


def test_a_custodian_without_the_deployments_configuration_keeps_the_default_limits(
    tmp_path: Path,
) -> None:
    assert pg_timeouts(tmp_path) == PgTimeouts()
