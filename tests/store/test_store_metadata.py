"""One conformance suite for every MetadataStore backend: SQLite (a temp file) and PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from store_backends import Backend

from sovra.errors import (
    BadRequest,
    ConfigError,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
)
from sovra.model import SPLIT_KEY_FORMAT, Principal, RecordHeader, RecordMeta, Role, WrappedKey
from sovra.store import (
    GrantStore,
    MetadataStore,
    NonceStore,
    PrincipalStore,
    RecordStore,
    SQLiteMetadataStore,
    open_metadata_store,
)
from sovra.store._sql import MAX_GRANT_BYTES, MAX_WRAPPED_KEY_BYTES, NONCE_SWEEP_MS
from sovra.store.postgres import PostgresMetadataStore


def commitment(n: int) -> str:
    return hashlib.sha256(f"subject-{n}".encode()).hexdigest()


def make_meta(
    record_id: str = "rec-1",
    *,
    subject: int = 1,
    jurisdiction: str = "PL",
    created_ms: int = 1_000,
    **changes: Any,
) -> RecordMeta:
    meta = RecordMeta(
        header=RecordHeader(
            record_id=record_id,
            subject=commitment(subject),
            jurisdiction=jurisdiction,
            region="pl-waw",
            kek_version=3,
            content_type="text/plain; charset=utf-8; lang=pl-Zażółć",
        ),
        wrapped_key=WrappedKey(jurisdiction=jurisdiction, kek_version=3, blob=bytes(range(256))),
        blob_size=4_096,
        created_ms=created_ms,
        findings={"pl.pesel": 2, "phone": 1},
        actions={"pl.pesel": "tokenize", "phone": "redact"},
        log_index=1,  # logged, so readers see it; pending rows are tested on their own
    )
    return dataclasses.replace(meta, **changes)


def make_principal(pid: str = "svc-1", *, role: Role = Role.SERVICE, key: int = 1) -> Principal:
    return Principal(id=pid, jurisdiction="VN", role=role, public_key=bytes([key]) * 32)


@pytest.fixture
def store(backend: Backend) -> MetadataStore:
    return backend.open()


def test_is_a_metadata_store_made_of_the_small_protocols(store: MetadataStore) -> None:
    assert isinstance(store, MetadataStore)
    for part in (RecordStore, GrantStore, PrincipalStore, NonceStore):
        assert isinstance(store, part)
        assert issubclass(MetadataStore, part)
    # Each concern is its own: no method is in two of them.
    names = [
        {n for n in vars(p) if not n.startswith("_")}
        for p in (RecordStore, GrantStore, PrincipalStore, NonceStore)
    ]
    assert sum(len(n) for n in names) == len(set().union(*names))


# -- records -------------------------------------------------------------------------


def test_record_round_trip_is_exact(store: MetadataStore) -> None:
    meta = make_meta()
    store.put_record(meta)
    got = store.get_record("rec-1")
    assert got == meta
    assert got.wrapped_key.blob == bytes(range(256))
    assert got.header.to_bytes() == meta.header.to_bytes()
    assert store.count_records() == 1


def test_record_with_defaults_round_trips(store: MetadataStore) -> None:
    meta = RecordMeta(
        header=RecordHeader(
            record_id="r", subject=commitment(9), jurisdiction="DE", region="de-fra", kek_version=1
        ),
        wrapped_key=WrappedKey(jurisdiction="DE", kek_version=1, blob=b"\x00"),
        blob_size=0,
        created_ms=0,
    )
    store.put_record(meta)
    assert meta.log_index == -1
    with pytest.raises(NotFound):
        store.get_record("r")  # pending until its ingest entry is logged
    store.set_record_log_index("r", 0)
    got = store.get_record("r")
    assert got == dataclasses.replace(meta, log_index=0)
    assert dict(got.findings) == {}


def test_duplicate_record_refused_and_original_kept(store: MetadataStore) -> None:
    original = make_meta()
    store.put_record(original)
    impostor = make_meta(blob_size=1, created_ms=99, findings={})
    with pytest.raises(BadRequest, match="rec-1 already exists"):
        store.put_record(impostor)
    assert store.get_record("rec-1") == original
    assert store.count_records() == 1


def test_missing_record_is_not_found(store: MetadataStore) -> None:
    with pytest.raises(NotFound):
        store.get_record("nope")


@pytest.mark.parametrize("bad_id", ["", "../etc", "a/b", "a\x00b", "x" * 200, None])
def test_bad_record_id_on_read_is_bad_request(store: MetadataStore, bad_id: Any) -> None:
    with pytest.raises(BadRequest):
        store.get_record(bad_id)


def _bad_header(**changes: Any) -> RecordHeader:
    # Builds a header its constructor accepts but whose types are wrong.
    return dataclasses.replace(make_meta().header, **changes)


BAD_RECORDS: dict[str, Callable[[], RecordMeta]] = {
    "float kek_version": lambda: make_meta(header=_bad_header(kek_version=1.5)),
    "bool record format": lambda: make_meta(header=_bad_header(format=True)),
    "NUL in content type": lambda: make_meta(header=_bad_header(content_type="a\x00b")),
    "empty content type": lambda: make_meta(header=_bad_header(content_type="")),
    "lowercase wrapped jurisdiction": lambda: make_meta(
        wrapped_key=WrappedKey(jurisdiction="pl", kek_version=1, blob=b"k")
    ),
    "wrapped kek_version 0": lambda: make_meta(
        wrapped_key=WrappedKey(jurisdiction="PL", kek_version=0, blob=b"k")
    ),
    "empty wrapped key": lambda: make_meta(
        wrapped_key=WrappedKey(jurisdiction="PL", kek_version=1, blob=b"")
    ),
    "oversized wrapped key": lambda: make_meta(
        wrapped_key=WrappedKey(
            jurisdiction="PL", kek_version=1, blob=b"k" * (MAX_WRAPPED_KEY_BYTES + 1)
        )
    ),
    "str wrapped key": lambda: make_meta(
        wrapped_key=WrappedKey(jurisdiction="PL", kek_version=1, blob="k")  # type: ignore[arg-type]
    ),
    "negative blob_size": lambda: make_meta(blob_size=-1),
    "created_ms over int64": lambda: make_meta(created_ms=2**63),
    "log_index -2": lambda: make_meta(log_index=-2),
    "negative finding count": lambda: make_meta(findings={"phone": -1}),
    "bool finding count": lambda: make_meta(findings={"phone": True}),
    "non-str action": lambda: make_meta(actions={"phone": 3}),
    "NUL in finding kind": lambda: make_meta(findings={"ph\x00one": 1}),
    "lone surrogate in action": lambda: make_meta(actions={"phone": "\ud800"}),
    "findings not a mapping": lambda: make_meta(findings=[("phone", 1)]),
    "too many findings": lambda: make_meta(findings={f"k{i}": 1 for i in range(257)}),
    "not a RecordMeta": lambda: make_meta().header,  # type: ignore[dict-item, return-value]
}


@pytest.mark.parametrize("case", BAD_RECORDS.keys())
def test_malformed_record_refused_and_nothing_stored(store: MetadataStore, case: str) -> None:
    store.put_record(make_meta("keep-me"))
    with pytest.raises(BadRequest):
        store.put_record(BAD_RECORDS[case]())
    assert store.count_records() == 1
    with pytest.raises(NotFound):
        store.get_record("rec-1")
    assert store.get_record("keep-me") == make_meta("keep-me")


def test_labels_checked_once_are_still_checked_for_another_use(store: MetadataStore) -> None:
    """Label mappings found good are remembered by their text and what they are: the same
    text as actions (a count where a label belongs) is still refused."""
    store.put_record(make_meta("counts", findings={"phone": 3}))
    store.put_record(make_meta("again", findings={"phone": 3}))  # the remembered check
    with pytest.raises(BadRequest):
        store.put_record(make_meta("as-actions", actions={"phone": 3}))  # type: ignore[dict-item]
    with pytest.raises(BadRequest):
        store.put_record(make_meta("as-bool", findings={"phone": True}))
    assert store.count_records() == 2


def test_log_index_is_set_once(store: MetadataStore) -> None:
    store.put_record(make_meta(log_index=-1))
    store.set_record_log_index("rec-1", 5)
    assert store.get_record("rec-1").log_index == 5
    store.set_record_log_index("rec-1", 5)  # a retry of the same write is harmless
    with pytest.raises(BadRequest, match="already at log index 5"):
        store.set_record_log_index("rec-1", 6)
    assert store.get_record("rec-1") == make_meta(log_index=5)


def test_log_index_refusals(store: MetadataStore) -> None:
    store.put_record(make_meta(log_index=-1))
    with pytest.raises(NotFound):
        store.set_record_log_index("other", 1)
    for bad in (-1, True, 1.0, 2**63):
        with pytest.raises(BadRequest):
            store.set_record_log_index("rec-1", bad)  # type: ignore[arg-type]
    assert store.record_log_index("rec-1") == -1


def test_pending_rows_are_seen_by_no_reader(store: MetadataStore) -> None:
    store.put_record(make_meta("logged", log_index=3))
    store.put_record(make_meta("pending", log_index=-1))
    with pytest.raises(NotFound):
        store.get_record("pending")
    assert [m.header.record_id for m in store.records_for_subject(commitment(1))] == ["logged"]
    assert store.record_ids_for_jurisdiction("PL", 10) == ["logged"]
    assert store.count_records() == 1
    # Only the reconciling methods see it.
    assert [m.header.record_id for m in store.unlogged_records(10)] == ["pending"]
    assert [m.header.record_id for m in store.records_page("", 10)] == ["logged", "pending"]
    assert store.record_log_index("pending") == -1
    assert store.record_log_index("absent") is None
    store.set_record_log_index("pending", 4)
    assert store.get_record("pending") == make_meta("pending", log_index=4)
    assert store.record_ids_for_jurisdiction("PL", 10) == ["logged", "pending"]
    assert store.count_records() == 2
    assert store.unlogged_records(10) == []


def test_quarantine_hides_and_the_logging_writer_still_completes(store: MetadataStore) -> None:
    store.put_record(make_meta("a", log_index=-1))
    store.put_record(make_meta("b", log_index=2))
    assert store.quarantine_record("a") is True
    assert store.quarantine_record("a") is False  # quarantined already
    assert store.quarantine_record("b") is False  # a visible row is never hidden
    assert store.record_log_index("a") == -2
    assert store.count_records() == 1
    assert [m.log_index for m in store.unlogged_records(10)] == [-2]
    store.set_record_log_index("a", 7)
    assert store.get_record("a").log_index == 7


def test_only_unlogged_rows_are_deleted(store: MetadataStore) -> None:
    store.put_record(make_meta("a", log_index=-1))
    store.put_record(make_meta("b", log_index=2))
    assert store.delete_unlogged_record("b") is False
    assert store.delete_unlogged_record("a") is True
    assert store.delete_unlogged_record("a") is False
    assert store.record_log_index("a") is None
    assert store.get_record("b") == make_meta("b", log_index=2)
    with pytest.raises(BadRequest):
        store.put_record(make_meta("c", log_index=-2))  # quarantine is check's verdict only


def test_put_records_stores_a_batch_all_or_none(store: MetadataStore, backend: Backend) -> None:
    batch = [make_meta(f"b{n:04}", log_index=-1, created_ms=n) for n in range(1200)]
    store.put_records(batch)
    assert backend.count("records") == 1200
    assert [m.header.record_id for m in store.unlogged_records(2000)] == [
        m.header.record_id for m in batch
    ]
    # A batch holding one stored id, a repeated id or a malformed row stores nothing.
    for bad in (
        [make_meta("new-1", log_index=-1), make_meta("b0007", log_index=-1)],
        [make_meta("new-1", log_index=-1), make_meta("new-1", log_index=-1)],
        [make_meta("new-1", log_index=-1), make_meta("new-2", log_index=-2)],
        [make_meta("new-1", log_index=-1), make_meta("new-2", blob_size=-1)],
    ):
        with pytest.raises(BadRequest):
            store.put_records(bad)
        assert store.record_log_index("new-1") is None
    assert backend.count("records") == 1200
    store.put_records([])


def test_a_batch_keeps_what_array_quoting_must_escape(store: MetadataStore) -> None:
    # PostgreSQL takes a batch's columns as arrays: values with an array literal's
    # quotes, braces, commas, backslashes and its NULL word come back as they went in.
    odd = ['a"b', "{x,y}", "back\\slash", "NULL", " lead and trail ", "ż ó"]
    batch = [
        make_meta(
            f"odd-{n}",
            log_index=-1,
            header=dataclasses.replace(make_meta().header, record_id=f"odd-{n}", content_type=c),
            findings={c: n},
            actions={c: c},
            wrapped_key=WrappedKey(jurisdiction="PL", kek_version=3, blob=b'\x00{"},\\' * (n + 1)),
        )
        for n, c in enumerate(odd)
    ]
    store.put_records(batch)
    store.set_record_log_indices([(m.header.record_id, 10 + n) for n, m in enumerate(batch)])
    found = store.get_records([m.header.record_id for m in batch])
    assert found == {
        m.header.record_id: dataclasses.replace(m, log_index=10 + n) for n, m in enumerate(batch)
    }


def test_get_records_reads_the_visible_ones_at_once(store: MetadataStore) -> None:
    store.put_records(
        [make_meta(f"v{n:04}", log_index=n) for n in range(700)]
        + [make_meta("pending", log_index=-1)]
    )
    wanted = ["v0699", "absent", "v0000", "pending", "v0699", *(f"v{n:04}" for n in range(600))]
    found = store.get_records(wanted)
    assert sorted(found) == sorted({f"v{n:04}" for n in range(600)} | {"v0699"})
    assert found["v0699"] == make_meta("v0699", log_index=699)
    assert store.get_records([]) == {}
    with pytest.raises(BadRequest):
        store.get_records(["ok", "bad id with spaces"])


def test_set_record_log_indices_in_one_transaction(store: MetadataStore) -> None:
    store.put_records([make_meta(f"p{n:04}", log_index=-1) for n in range(900)])
    store.set_record_log_indices([(f"p{n:04}", 100 + n) for n in range(900)])
    assert store.count_records() == 900
    assert store.get_record("p0899").log_index == 999
    store.set_record_log_indices([("p0001", 101)])  # a retry is harmless
    store.put_records([make_meta("q1", log_index=-1), make_meta("q2", log_index=-1)])
    # One refused pair refuses the batch: neither row gets an index.
    for bad in ([("q1", 5000), ("p0002", 7)], [("q1", 5000), ("absent", 7)], [("q1", -3)]):
        with pytest.raises((BadRequest, NotFound)):
            store.set_record_log_indices(bad)
        assert store.record_log_index("q1") == -1
    store.set_record_log_indices([])


def test_delete_unlogged_records_spares_visible_ones(store: MetadataStore) -> None:
    store.put_records(
        [make_meta(f"u{n:04}", log_index=-1) for n in range(600)] + [make_meta("seen", log_index=1)]
    )
    assert (
        store.delete_unlogged_records([f"u{n:04}" for n in range(600)] + ["seen", "absent"]) == 600
    )
    assert store.get_record("seen") == make_meta("seen", log_index=1)
    assert store.unlogged_records(10) == []
    assert store.delete_unlogged_records([]) == 0


def test_sqlite_pending_rows_are_committed_with_a_synced_wal(tmp_path: Path) -> None:
    """A receipted record's row must survive a power cut: put_records commits under
    synchronous=FULL (the WAL synced at that commit), other writes under NORMAL."""
    store = SQLiteMetadataStore(tmp_path / "meta.db")
    try:
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        store.put_records([make_meta("a", log_index=-1)])
        store.set_record_log_indices([("a", 1)])
        store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
        assert statements[0] == "PRAGMA synchronous=FULL"
        insert = next(n for n, sql in enumerate(statements) if sql.startswith("INSERT"))
        commit = statements.index("COMMIT")
        assert insert < commit < statements.index("PRAGMA synchronous=NORMAL")
        assert "PRAGMA synchronous=FULL" not in statements[commit + 1 :]
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (1,)  # type: ignore[attr-defined]
    finally:
        store.close()


def test_records_page_walks_every_row_once(store: MetadataStore) -> None:
    ids = [f"r{i:03}" for i in range(25)]
    for n, rid in enumerate(reversed(ids)):
        store.put_record(make_meta(rid, log_index=n - 1 if n % 3 else -1))
    seen: list[str] = []
    after = ""
    while page := store.records_page(after, 7):
        seen += [m.header.record_id for m in page]
        after = page[-1].header.record_id
    assert seen == ids
    with pytest.raises(BadRequest):
        store.records_page("", 0)
    with pytest.raises(BadRequest):
        store.unlogged_records(0)


def test_records_for_subject_oldest_first(store: MetadataStore) -> None:
    for rid, subject, created in [
        ("c", 1, 3_000),
        ("b", 1, 1_000),
        ("a", 1, 1_000),
        ("x", 2, 500),
        ("d", 1, 2_000),
    ]:
        store.put_record(make_meta(rid, subject=subject, created_ms=created))
    got = store.records_for_subject(commitment(1))
    assert [m.header.record_id for m in got] == ["a", "b", "d", "c"]
    assert got[0] == make_meta("a", subject=1, created_ms=1_000)
    assert store.records_for_subject(commitment(3)) == []
    for bad in ("ABC", commitment(1).upper(), "", None):
        with pytest.raises(BadRequest):
            store.records_for_subject(bad)  # type: ignore[arg-type]


def test_record_ids_for_jurisdiction(store: MetadataStore) -> None:
    for i in range(5):
        store.put_record(make_meta(f"pl-{i}", jurisdiction="PL", created_ms=10 - i))
    store.put_record(make_meta("vn-0", jurisdiction="VN"))
    assert store.record_ids_for_jurisdiction("PL", 3) == ["pl-4", "pl-3", "pl-2"]
    assert store.record_ids_for_jurisdiction("PL", 100) == [f"pl-{i}" for i in range(4, -1, -1)]
    assert store.record_ids_for_jurisdiction("VN", 1) == ["vn-0"]
    assert store.record_ids_for_jurisdiction("DE", 10) == []
    assert store.count_records() == 6
    with pytest.raises(BadRequest):
        store.record_ids_for_jurisdiction("PL", 0)
    with pytest.raises(BadRequest):
        store.record_ids_for_jurisdiction("pl", 1)


def test_a_two_home_record_is_listed_under_both_homes(store: MetadataStore) -> None:
    # A split wrapped key starts with its second home (sovra.keys.split); a record of one
    # home whose wrapped key happens to start with "DE" is not DE's.
    def two_homes(record_id: str, second: bytes, created_ms: int, **kw: Any) -> RecordMeta:
        meta = make_meta(record_id, created_ms=created_ms, **kw)
        return dataclasses.replace(
            meta,
            header=dataclasses.replace(meta.header, format=SPLIT_KEY_FORMAT),
            wrapped_key=dataclasses.replace(meta.wrapped_key, blob=second + b"\x00" * 80),
        )

    store.put_record(make_meta("pl-one", created_ms=1))
    store.put_record(two_homes("pl-de", b"DE", 2))
    store.put_record(make_meta("de-one", jurisdiction="DE", created_ms=3))
    store.put_record(two_homes("pl-vn", b"VN", 4))
    store.put_record(two_homes("pl-de-2", b"DE", 5))
    store.put_record(
        dataclasses.replace(
            make_meta("pl-lookalike", created_ms=6),
            wrapped_key=WrappedKey("PL", 3, b"DE" + b"\x00" * 80),
        )
    )
    store.put_record(two_homes("pl-de-pending", b"DE", 7, log_index=-1))
    assert store.record_ids_for_jurisdiction("PL", 10) == [
        "pl-one", "pl-de", "pl-vn", "pl-de-2", "pl-lookalike",
    ]  # fmt: skip
    assert store.record_ids_for_jurisdiction("DE", 10) == ["pl-de", "de-one", "pl-de-2"]
    assert store.record_ids_for_jurisdiction("DE", 2) == ["pl-de", "de-one"]
    assert store.record_ids_for_jurisdiction("VN", 10) == ["pl-vn"]
    assert store.record_ids_for_jurisdiction("US", 10) == []


def test_corrupted_record_row_is_integrity_error(store: MetadataStore, backend: Backend) -> None:
    store.put_record(make_meta())
    backend.sql("UPDATE records SET findings = ? WHERE record_id = ?", ("[1]", "rec-1"))
    with pytest.raises(IntegrityError, match="rec-1"):
        store.get_record("rec-1")
    with pytest.raises(IntegrityError):
        store.records_for_subject(commitment(1))
    backend.sql("UPDATE records SET findings = '{}', subject = 'zz' WHERE record_id = 'rec-1'")
    with pytest.raises(IntegrityError):
        store.get_record("rec-1")


# -- grants --------------------------------------------------------------------------

GRANT = b'{"grant_id":"g-1","signature":"00ff"}'
DIGEST = hashlib.sha256(b"g-1").hexdigest()


def test_grant_round_trip_and_revocation(store: MetadataStore) -> None:
    store.put_grant("g-1", DIGEST, GRANT)
    assert store.get_grant("g-1") == GRANT
    assert store.grant_revoked("g-1") is False
    store.revoke_grant("g-1", 1_234)
    assert store.grant_revoked("g-1") is True
    assert store.get_grant("g-1") == GRANT


def test_second_revocation_refused_first_time_kept(store: MetadataStore, backend: Backend) -> None:
    store.put_grant("g-1", DIGEST, GRANT)
    store.revoke_grant("g-1", 1_234)
    with pytest.raises(BadRequest, match="already revoked at 1234"):
        store.revoke_grant("g-1", 9_999)
    assert backend.sql("SELECT revoked_ms FROM grants") == [(1_234,)]


def test_cosignature_withdrawn_once_first_time_kept(store: MetadataStore, backend: Backend) -> None:
    store.put_grant("g-1", DIGEST, GRANT)
    assert store.grant_withdrawals("g-1") == frozenset()
    store.withdraw_cosignature("g-1", "DE", 1_234)
    assert store.grant_withdrawals("g-1") == {"DE"}
    with pytest.raises(
        BadRequest, match="DE's co-signature of grant g-1 was already withdrawn at 1234"
    ):
        store.withdraw_cosignature("g-1", "DE", 9_999)
    store.withdraw_cosignature("g-1", "VN", 2_000)
    assert store.grant_withdrawals("g-1") == {"DE", "VN"}
    assert store.grant_revoked("g-1") is False  # the grant itself stands
    for gid, j, ms in [("g-x", "DE", 1), ("../g", "DE", 1), ("g-1", "de", 1), ("g-1", "US", -1)]:
        with pytest.raises((BadRequest, NotFound)):
            store.withdraw_cosignature(gid, j, ms)
    assert sorted(backend.sql("SELECT jurisdiction, withdrawn_ms FROM grant_withdrawals")) == [
        ("DE", 1_234),
        ("VN", 2_000),
    ]


def test_duplicate_grant_refused_and_original_kept(store: MetadataStore) -> None:
    store.put_grant("g-1", DIGEST, GRANT)
    with pytest.raises(BadRequest, match="g-1 already exists"):
        store.put_grant("g-1", hashlib.sha256(b"other").hexdigest(), b"{}")
    with pytest.raises(BadRequest, match="digest"):
        store.put_grant("g-2", DIGEST, b"{}")
    assert store.get_grant("g-1") == GRANT
    with pytest.raises(NotFound):
        store.get_grant("g-2")


def test_grant_refusals_leave_nothing(store: MetadataStore, backend: Backend) -> None:
    with pytest.raises(PayloadTooLarge):
        store.put_grant("g-1", DIGEST, b"x" * (MAX_GRANT_BYTES + 1))
    for gid, digest, body in [
        ("g-1", DIGEST.upper(), GRANT),
        ("g-1", DIGEST[:-1], GRANT),
        ("g-1", DIGEST, b""),
        ("g-1", DIGEST, "text"),
        ("../g", DIGEST, GRANT),
    ]:
        with pytest.raises(BadRequest):
            store.put_grant(gid, digest, body)  # type: ignore[arg-type]
    assert backend.count("grants") == 0
    store.put_grant("g-1", DIGEST, b"x" * MAX_GRANT_BYTES)  # exactly at the limit is fine


def test_unknown_grant_is_not_found_everywhere(store: MetadataStore) -> None:
    with pytest.raises(NotFound):
        store.get_grant("g-x")
    with pytest.raises(NotFound):
        store.revoke_grant("g-x", 1)
    # An unknown grant must not read as "not revoked".
    with pytest.raises(NotFound):
        store.grant_revoked("g-x")


# -- principals ----------------------------------------------------------------------


def test_principals_round_trip_upsert_and_list(store: MetadataStore) -> None:
    a, b = make_principal("b-svc"), make_principal("a-auth", role=Role.AUTHORITY, key=2)
    store.put_principal(a)
    store.put_principal(b)
    assert store.get_principal("b-svc") == a
    assert store.list_principals() == [b, a]
    rotated = make_principal("b-svc", role=Role.ANALYST, key=7)
    store.put_principal(rotated)
    assert store.get_principal("b-svc") == rotated
    assert store.list_principals() == [b, rotated]
    got = store.get_principal("a-auth")
    assert isinstance(got.role, Role)


def test_removed_principal_is_gone_and_its_nonces_read_none(store: MetadataStore) -> None:
    kept, removed = make_principal("a-keep"), make_principal("b-gone", key=3)
    store.put_principal(kept)
    store.put_principal(removed)
    store.remove_principal("b-gone")
    assert store.list_principals() == [kept]
    with pytest.raises(NotFound):
        store.get_principal("b-gone")
    assert store.spend_nonces([("b-gone", "n-1", 2_000, 1_000)]) == [None]
    with pytest.raises(NotFound):
        store.remove_principal("b-gone")
    with pytest.raises(BadRequest):
        store.remove_principal("../a-keep")
    assert store.list_principals() == [kept]


def test_principal_refusals(store: MetadataStore, backend: Backend) -> None:
    with pytest.raises(NotFound):
        store.get_principal("ghost")
    with pytest.raises(BadRequest):
        store.get_principal("../ghost")
    bad_role = dataclasses.replace(make_principal(), role="root")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="role"):
        store.put_principal(bad_role)
    with pytest.raises(BadRequest):
        store.put_principal("svc-1")  # type: ignore[arg-type]
    assert backend.count("principals") == 0
    assert store.list_principals() == []


def test_corrupted_principal_row_is_integrity_error(store: MetadataStore, backend: Backend) -> None:
    store.put_principal(make_principal())
    backend.sql("UPDATE principals SET role = 'root'")
    with pytest.raises(IntegrityError, match="svc-1"):
        store.get_principal("svc-1")
    with pytest.raises(IntegrityError):
        store.list_principals()


# -- nonces --------------------------------------------------------------------------


def test_nonce_replay_refused_until_expiry(store: MetadataStore) -> None:
    store.use_nonce("svc-1", "n-1", expires_ms=2_000, now_ms=1_000)
    with pytest.raises(Unauthenticated, match="token replayed"):
        store.use_nonce("svc-1", "n-1", expires_ms=2_500, now_ms=1_999)
    # Another principal's nonce space is its own.
    store.use_nonce("svc-2", "n-1", expires_ms=2_000, now_ms=1_000)
    # At its expiry the nonce is forgotten, so it may be used again...
    store.use_nonce("svc-1", "n-1", expires_ms=5_000, now_ms=2_000)
    # ...and is then guarded until the new expiry.
    with pytest.raises(Unauthenticated):
        store.use_nonce("svc-1", "n-1", expires_ms=6_000, now_ms=4_999)


def test_expired_nonces_are_pruned_at_most_once_a_sweep_interval(
    store: MetadataStore, backend: Backend
) -> None:
    for i in range(10):
        store.use_nonce("svc-1", f"n-{i}", expires_ms=1_000 + i, now_ms=0)
    assert backend.count("token_nonces") == 10
    # Within the interval no spend deletes: the expired rows stay...
    store.use_nonce("svc-2", "fresh", expires_ms=10**9, now_ms=1_005)
    assert backend.count("token_nonces") == 11
    # ...and refuse nothing they would not refuse deleted: an expired nonce is free again
    # (its row taken over), an unexpired one is a replay.
    store.use_nonce("svc-1", "n-0", expires_ms=10**9, now_ms=1_005)
    with pytest.raises(Unauthenticated, match="token replayed"):
        store.use_nonce("svc-1", "n-9", expires_ms=10**9, now_ms=1_005)
    assert backend.count("token_nonces") == 11
    # A spend an interval after the last sweep deletes every expired nonce.
    store.use_nonce("svc-2", "later", expires_ms=10**9, now_ms=NONCE_SWEEP_MS)
    assert backend.count("token_nonces") == 3


def test_a_batch_of_nonces_is_judged_each_by_its_own_clock(store: MetadataStore) -> None:
    store.put_principal(make_principal("svc-1"))
    store.use_nonce("svc-1", "old", expires_ms=1_000, now_ms=0)
    store.use_nonce("svc-1", "held", expires_ms=5_000, now_ms=0)
    # No sweep within the interval: "old" expired at 1000 and is still a row.
    results = store.spend_nonces(
        [
            ("svc-1", "new", 9_000, 900),
            ("svc-1", "old", 9_000, 1_000),  # expired by its own clock, not the batch's first
            ("svc-1", "held", 9_000, 1_000),
            ("svc-1", "new", 9_000, 900),
            ("svc-1", "", 9_000, 900),
            ("nobody", "new", 9_000, 900),
        ]
    )
    assert results[0] == results[1] == make_principal("svc-1")
    assert isinstance(results[2], Unauthenticated) and isinstance(results[3], Unauthenticated)
    assert isinstance(results[4], BadRequest)
    assert results[5] is None
    with pytest.raises(Unauthenticated):
        store.use_nonce("svc-1", "old", expires_ms=9_500, now_ms=8_999)


def test_replay_refused_across_a_sweep(store: MetadataStore, backend: Backend) -> None:
    store.use_nonce("svc-1", "n-1", expires_ms=2 * NONCE_SWEEP_MS, now_ms=0)
    store.use_nonce("svc-1", "gone", expires_ms=1, now_ms=0)
    # This spend sweeps (an interval after the first): the unexpired nonce stays.
    with pytest.raises(Unauthenticated, match="token replayed"):
        store.use_nonce("svc-1", "n-1", expires_ms=3 * NONCE_SWEEP_MS, now_ms=NONCE_SWEEP_MS)
    assert backend.sql("SELECT expires_ms FROM token_nonces") == [(2 * NONCE_SWEEP_MS,)]
    with pytest.raises(Unauthenticated, match="token replayed"):
        store.use_nonce(
            "svc-1", "n-1", expires_ms=3 * NONCE_SWEEP_MS, now_ms=2 * NONCE_SWEEP_MS - 1
        )
    # Free again at its expiry, swept or not.
    store.use_nonce("svc-1", "n-1", expires_ms=3 * NONCE_SWEEP_MS, now_ms=2 * NONCE_SWEEP_MS)
    (spent, replayed) = store.spend_nonces(
        [
            ("svc-1", "gone", 4 * NONCE_SWEEP_MS, 2 * NONCE_SWEEP_MS),
            ("svc-1", "gone", 4 * NONCE_SWEEP_MS, 2 * NONCE_SWEEP_MS),
        ]
    )
    assert spent is None
    assert isinstance(replayed, Unauthenticated)


def test_replay_refusal_changes_nothing(store: MetadataStore, backend: Backend) -> None:
    store.use_nonce("svc-1", "n-1", expires_ms=2_000, now_ms=1_000)
    with pytest.raises(Unauthenticated):
        store.use_nonce("svc-1", "n-1", expires_ms=9_000, now_ms=1_500)
    assert backend.sql("SELECT expires_ms FROM token_nonces") == [(2_000,)]


@pytest.mark.parametrize("nonce", ["-starts-with-dash_", "ż\x00\ud800/../", "x" * 1024])
def test_odd_nonces_are_stored_by_hash(store: MetadataStore, nonce: str) -> None:
    store.use_nonce("svc-1", nonce, expires_ms=2_000, now_ms=1_000)
    with pytest.raises(Unauthenticated):
        store.use_nonce("svc-1", nonce, expires_ms=2_000, now_ms=1_000)


@pytest.mark.parametrize(
    ("principal", "nonce", "expires_ms", "now_ms"),
    [
        ("svc-1", "", 2_000, 1_000),
        ("svc-1", "x" * 1025, 2_000, 1_000),
        ("svc-1", b"bytes", 2_000, 1_000),
        ("../svc", "n", 2_000, 1_000),
        ("svc-1", "n", 1_000, 1_000),
        ("svc-1", "n", 500, 1_000),
        ("svc-1", "n", -1, -5),
        ("svc-1", "n", 2**63, 1),
    ],
)
def test_bad_nonce_arguments(
    store: MetadataStore, backend: Backend, principal: Any, nonce: Any, expires_ms: int, now_ms: int
) -> None:
    with pytest.raises(BadRequest):
        store.use_nonce(principal, nonce, expires_ms, now_ms)
    assert backend.count("token_nonces") == 0


# -- concurrency, durability, versions -----------------------------------------------


def test_threads_inserting_distinct_records_all_land(store: MetadataStore) -> None:
    threads, per_thread = 8, 25
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                store.put_record(make_meta(f"t{t}-r{i}", subject=t, created_ms=i))
                store.use_nonce(f"p{t}", f"n{i}", expires_ms=10_000, now_ms=1)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    assert store.count_records() == threads * per_thread
    for t in range(threads):
        assert len(store.records_for_subject(commitment(t))) == per_thread
        assert store.get_record(f"t{t}-r{per_thread - 1}").header.record_id == f"t{t}-r24"


def _spend(
    store: MetadataStore, nonce: str, barrier: threading.Barrier, outcomes: list[str]
) -> None:
    barrier.wait()
    try:
        store.use_nonce("svc-1", nonce, expires_ms=10_000, now_ms=1)
        outcomes.append("ok")
    except Unauthenticated:
        outcomes.append("replay")


def test_racing_nonce_spends_succeed_exactly_once(backend: Backend) -> None:
    # Two separate stores (connections) on one database: the engine, not a lock in
    # this process, must make the later spends fail.
    stores = [backend.open() for _ in range(2)]
    for round_ in range(20):
        outcomes: list[str] = []
        barrier = threading.Barrier(4)
        pool = [
            threading.Thread(target=_spend, args=(stores[i % 2], f"n{round_}", barrier, outcomes))
            for i in range(4)
        ]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        assert sorted(outcomes) == ["ok", "replay", "replay", "replay"]


def test_reopen_keeps_everything(backend: Backend) -> None:
    first = backend.open()
    meta = make_meta(log_index=4)
    first.put_record(meta)
    first.put_grant("g-1", DIGEST, GRANT)
    first.revoke_grant("g-1", 77)
    first.put_principal(make_principal())
    first.use_nonce("svc-1", "n-1", expires_ms=2_000, now_ms=1_000)
    first.close()
    first.close()  # closing twice is harmless

    second = backend.open()
    assert second.get_record("rec-1") == meta
    assert second.get_grant("g-1") == GRANT
    assert second.grant_revoked("g-1") is True
    assert second.get_principal("svc-1") == make_principal()
    with pytest.raises(Unauthenticated):
        second.use_nonce("svc-1", "n-1", expires_ms=2_000, now_ms=1_500)
    assert second.count_records() == 1


def test_newer_schema_version_refused_and_left_as_it_is(backend: Backend) -> None:
    backend.open().put_record(make_meta())
    backend.sql("UPDATE schema_versions SET version = 99 WHERE component = 'metadata'")
    with pytest.raises(ConfigError, match="version 99, newer than the version 4 this sovra"):
        backend.open()
    assert backend.sql("SELECT version FROM schema_versions") == [(99,)]
    assert backend.count("records") == 1


def test_factory_opens_the_same_store(backend: Backend) -> None:
    backend.open().put_record(make_meta())
    if backend.kind == "sqlite":
        urls: list[Any] = [backend.location, Path(backend.location), f"sqlite://{backend.location}"]
    else:
        urls = [backend.location]
    for url in urls:
        store = open_metadata_store(url)
        try:
            assert store.get_record("rec-1") == make_meta()
        finally:
            store.close()


# -- backend specifics ---------------------------------------------------------------


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteMetadataStore(path) as store:
        store.put_record(make_meta())
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


def test_sqlite_tables_are_strict(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLiteMetadataStore(path).close()
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO principals VALUES ('p', 'PL', 'service', 'not bytes', '')")
    finally:
        conn.close()


def test_sqlite_unusable_paths_are_config_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an sqlite database, just text " * 100)
    with pytest.raises(ConfigError, match=r"garbage\.db"):
        SQLiteMetadataStore(garbage)
    assert garbage.read_bytes().startswith(b"this is not")
    with pytest.raises(ConfigError):
        SQLiteMetadataStore(tmp_path / "no" / "such" / "dir" / "m.db")


def test_sqlite_in_memory_works() -> None:
    with SQLiteMetadataStore(":memory:") as store:
        store.put_record(make_meta())
        assert store.get_record("rec-1") == make_meta()


@pytest.mark.postgres
def test_postgres_dropped_connections_fail_once_then_reconnect(pg_dsn: str) -> None:
    # Only this store's connections are cut, by a name of their own: the database is
    # shared with the tests running beside this one.
    name = f"sovra-test-{secrets.token_hex(6)}"
    with PostgresMetadataStore(f"{pg_dsn}&application_name={name}") as store:
        store.put_record(make_meta())
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchall()
        assert cut, "the store had no open connection to cut"
        with pytest.raises(Unavailable, match="PostgreSQL metadata store unavailable") as info:
            store.count_records()
        assert info.value.status == 503
        assert info.value.retry_after_s is not None
        assert store.get_record("rec-1") == make_meta()


def test_postgres_unreachable_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="cannot connect to PostgreSQL") as info:
        PostgresMetadataStore("postgresql://postgres:hunter2@127.0.0.1:1/none", connect_timeout_s=2)
    assert "hunter2" not in info.value.message


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("mysql://root:hunter2@db/x", "unsupported metadata store scheme 'mysql'"),
        ("sqlite://host/path.db", "three slashes"),
        ("sqlite:///p.db?mode=ro", "three slashes"),
    ],
)
def test_factory_refuses_bad_settings(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        open_metadata_store(setting)
    assert "hunter2" not in str(info.value)
