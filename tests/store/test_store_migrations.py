"""Schema migrations: a database of the previous release opens, keeps its data and gains
the new version; a newer one is refused; concurrent openers migrate once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from store_backends import Backend

from sovra.errors import ConfigError, Unauthenticated
from sovra.model import Principal, RecordHeader, RecordMeta, Role, WrappedKey
from sovra.store._sql import SCHEMA_VERSION
from sovra.store.migrations import METADATA_STEPS

# The metadata tables exactly as the previous release created them (schema version 1),
# written out here rather than taken from the code, so a change to a released step shows.
_V1 = {
    "sqlite": ("INTEGER", "BLOB", " STRICT"),
    "postgres": ("BIGINT", "BYTEA", ""),
}


def _v1_statements(kind: str, *, with_unlogged_index: bool) -> list[str]:
    i, b, s = _V1[kind]
    statements = [
        f"CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version {i} NOT NULL){s}",
        f"""CREATE TABLE records (
            record_id TEXT PRIMARY KEY, subject TEXT NOT NULL, jurisdiction TEXT NOT NULL,
            region TEXT NOT NULL, kek_version {i} NOT NULL, content_type TEXT NOT NULL,
            format {i} NOT NULL, wrapped_jurisdiction TEXT NOT NULL,
            wrapped_kek_version {i} NOT NULL, wrapped_key {b} NOT NULL,
            blob_size {i} NOT NULL, created_ms {i} NOT NULL, findings TEXT NOT NULL,
            actions TEXT NOT NULL, log_index {i} NOT NULL){s}""",
        "CREATE INDEX records_by_subject ON records (subject, created_ms, record_id)",
        "CREATE INDEX records_by_jurisdiction ON records (jurisdiction, created_ms, record_id)",
        f"""CREATE TABLE grants (grant_id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE,
            grant_json {b} NOT NULL, revoked_ms {i}){s}""",
        f"""CREATE TABLE principals (principal_id TEXT PRIMARY KEY,
            jurisdiction TEXT NOT NULL, role TEXT NOT NULL, public_key {b} NOT NULL,
            subject TEXT NOT NULL DEFAULT ''){s}""",
        f"""CREATE TABLE token_nonces (principal_id TEXT NOT NULL, nonce_sha256 TEXT NOT NULL,
            expires_ms {i} NOT NULL, PRIMARY KEY (principal_id, nonce_sha256)){s}""",
        "CREATE INDEX token_nonces_by_expiry ON token_nonces (expires_ms)",
        "INSERT INTO schema_versions (component, version) VALUES ('metadata', 1)",
    ]
    if with_unlogged_index:
        # Added in place by the last release that called itself version 1.
        statements.append(
            "CREATE INDEX records_unlogged ON records (created_ms, record_id) WHERE log_index < 0"
        )
    return statements


SUBJECT = "ab" * 32
DIGEST = "cd" * 32
KEY = bytes(range(32))


def _v1_database(backend: Backend, *, with_unlogged_index: bool) -> None:
    for statement in _v1_statements(backend.kind, with_unlogged_index=with_unlogged_index):
        backend.sql(statement)
    row: tuple[Any, ...] = (
        "rec-old", SUBJECT, "PL", "pl-waw", 2, "text/plain", 1, "PL", 2,
        b"\x01" * 40, 123, 5_000, '{"email":1}', '{"email":"keep"}', 7,
    )  # fmt: skip
    marks = ", ".join("?" * len(row))
    backend.sql(f"INSERT INTO records VALUES ({marks})", row)
    pending = ("rec-pending", *row[1:14], -1)
    backend.sql(f"INSERT INTO records VALUES ({marks})", pending)
    backend.sql("INSERT INTO grants VALUES (?, ?, ?, ?)", ("g-old", DIGEST, b'{"g":1}', 9))
    backend.sql(
        "INSERT INTO principals VALUES (?, ?, ?, ?, ?)", ("svc-pl", "PL", "service", KEY, "")
    )
    backend.sql("INSERT INTO token_nonces VALUES (?, ?, ?)", ("svc-pl", "ef" * 32, 10_000))


def _indexes(backend: Backend) -> set[str]:
    if backend.kind == "sqlite":
        rows = backend.sql("SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        rows = backend.sql("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    return {str(r[0]) for r in rows}


@pytest.mark.parametrize("with_unlogged_index", [False, True])
def test_previous_schema_is_upgraded_and_keeps_its_data(
    backend: Backend, with_unlogged_index: bool
) -> None:
    _v1_database(backend, with_unlogged_index=with_unlogged_index)
    assert "records_unlogged" in _indexes(backend) or not with_unlogged_index

    store = backend.open()

    assert backend.sql("SELECT component, version FROM schema_versions") == [
        ("metadata", SCHEMA_VERSION)
    ]
    assert SCHEMA_VERSION == len(METADATA_STEPS) == 4
    assert "records_unlogged" in _indexes(backend)
    assert store.get_record("rec-old") == RecordMeta(
        header=RecordHeader("rec-old", SUBJECT, "PL", "pl-waw", 2, "text/plain", 1),
        wrapped_key=WrappedKey("PL", 2, b"\x01" * 40),
        blob_size=123,
        created_ms=5_000,
        findings={"email": 1},
        actions={"email": "keep"},
        log_index=7,
    )
    assert [m.header.record_id for m in store.unlogged_records(10)] == ["rec-pending"]
    assert store.grant_revoked("g-old") is True
    assert store.get_grant("g-old") == b'{"g":1}'
    assert store.get_principal("svc-pl") == Principal("svc-pl", "PL", Role.SERVICE, KEY)
    assert store.count_records() == 1
    # The upgraded database takes writes as a new one does.
    store.set_record_log_index("rec-pending", 8)
    assert store.count_records() == 2


def test_upgrade_is_applied_once(backend: Backend) -> None:
    _v1_database(backend, with_unlogged_index=False)
    backend.open().close()
    store = backend.open()  # nothing left to migrate: opens as is
    assert backend.sql("SELECT version FROM schema_versions") == [(SCHEMA_VERSION,)]
    assert store.count_records() == 1


def test_a_failed_step_leaves_the_previous_version(backend: Backend) -> None:
    _v1_database(backend, with_unlogged_index=False)
    # Step 2 indexes the records table; without it the step fails, the version stays 1.
    backend.sql("ALTER TABLE records RENAME TO records_elsewhere")
    with pytest.raises(ConfigError):
        backend.open()
    assert backend.sql("SELECT version FROM schema_versions") == [(1,)]
    backend.sql("ALTER TABLE records_elsewhere RENAME TO records")
    assert backend.open().count_records() == 1
    assert backend.sql("SELECT version FROM schema_versions") == [(SCHEMA_VERSION,)]


def test_newer_database_is_refused_naming_both_versions(backend: Backend) -> None:
    backend.open().close()
    newer = SCHEMA_VERSION + 1
    backend.sql("UPDATE schema_versions SET version = ? WHERE component = 'metadata'", (newer,))
    with pytest.raises(ConfigError) as info:
        backend.open()
    assert f"version {newer}, newer than the version {SCHEMA_VERSION}" in info.value.message
    assert backend.sql("SELECT version FROM schema_versions") == [(newer,)]


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(backend: Backend) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            backend.open()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert backend.sql("SELECT component, version FROM schema_versions") == [
        ("metadata", SCHEMA_VERSION)
    ]
    store = backend.opened[0]
    store.use_nonce("p-1", "n", expires_ms=2, now_ms=1)
    with pytest.raises(Unauthenticated):
        backend.opened[1].use_nonce("p-1", "n", expires_ms=2, now_ms=1)
