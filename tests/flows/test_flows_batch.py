"""Batches and group commit: many ingests and accesses share one transaction, one log
batch and one custodian call per jurisdiction, and each keeps its own outcome.

A bad item gets its own precise error and its neighbours are stored; receipts and log
entries follow the order of the items; a batch over the limit is refused whole; concurrent
single calls are gathered into batches without mixing up their results.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from sovra.deployment import Deployment
from sovra.errors import BadRequest, Denied, NotFound, PayloadTooLarge, SovraError
from sovra.gateway import (
    MAX_ACCESS_BATCH,
    MAX_INGEST_BATCH,
    AccessRequest,
    AccessResult,
    IngestItem,
    IngestReceipt,
)
from sovra.model import LogEntry

PESEL = "44051401359"


def _entry(dep: Deployment, index: int) -> LogEntry:
    return LogEntry.from_bytes(dep.gateway.log.entry(index))


def _ingested(results: list[IngestReceipt | SovraError]) -> list[IngestReceipt]:
    out = []
    for r in results:
        assert isinstance(r, IngestReceipt), r
        out.append(r)
    return out


def _three(dep: Deployment, svc: object) -> list[str]:
    """Three PL records ingested in one batch: 'text 0', 'text 1', 'text 2'."""
    items = [IngestItem(f"s{n}@example.pl", "PL", f"text {n}") for n in range(3)]
    return [r.record_id for r in _ingested(dep.gateway.ingest_many(svc, items))]  # type: ignore[arg-type]


def test_a_batch_keeps_the_order_of_its_items_in_receipts_entries_and_records(
    dep: Deployment, principals: dict[str, object], root: Path
) -> None:
    gw = dep.gateway
    items = [
        IngestItem(f"s{n}@example.pl", "PL", f"record {n}, PESEL {PESEL}" if n % 3 else f"r{n}")
        for n in range(40)
    ]
    receipts = _ingested(gw.ingest_many(principals["svc-pl"], items))
    indices = [r.receipt.index for r in receipts]
    assert indices == sorted(indices) and len(set(indices)) == len(items)
    assert indices == list(range(indices[0], indices[0] + len(items)))  # one log batch
    for item, r in zip(items, receipts, strict=True):
        entry = _entry(dep, r.receipt.index)
        meta = dep.store.get_record(r.record_id)
        assert entry.kind == "ingest"
        assert entry.fields["record"] == r.record_id
        assert entry.fields["subject"] == gw.commitment("PL", item.subject_id)
        assert meta.log_index == r.receipt.index
        blob = gw.blobs[meta.header.region].get(r.record_id)
        assert entry.fields["blob_sha256"] == hashlib.sha256(blob).hexdigest()
        assert r.receipt.verify(gw.log.public_key, gw.log.entry(r.receipt.index)) is None
    read = gw.access(
        principals["svc-pl"],
        purpose="customer-support",
        record_ids=[r.record_id for r in receipts],
    ).records
    for item, r in zip(items, receipts, strict=True):
        text = read[r.record_id]
        assert PESEL not in text
        assert text.startswith(item.content.split(",")[0])


def test_bad_items_get_their_own_errors_and_good_ones_are_stored(
    dep: Deployment, principals: dict[str, object]
) -> None:
    gw = dep.gateway
    big = "a" * (dep.config.max_record_bytes + 1)
    items = [
        IngestItem("a@example.pl", "PL", "good one"),
        IngestItem("b@example.pl", "FR", "unknown jurisdiction"),
        IngestItem("c@example.pl", "PL", big),
        IngestItem("d@example.pl", "PL", "bad purpose", purpose="no such purpose!"),
        IngestItem("e@example.pl", "PL", "lone \ud800 surrogate"),
        IngestItem("f@example.pl", "PL", "good two"),
        "not an item",  # type: ignore[list-item]
    ]
    size = gw.log.size
    results = gw.ingest_many(principals["svc-pl"], items)
    assert len(results) == len(items)
    good = [results[0], results[5]]
    assert all(isinstance(r, IngestReceipt) for r in good)
    assert isinstance(results[1], BadRequest) and "unknown jurisdiction 'FR'" in str(results[1])
    assert isinstance(results[2], PayloadTooLarge)
    assert isinstance(results[3], BadRequest)
    assert isinstance(results[4], BadRequest) and "surrogate" in str(results[4])
    assert isinstance(results[6], BadRequest) and "IngestItem" in str(results[6])
    # Only the good ones reached the log and the store, in order, one after the other.
    assert gw.log.size == size + 2
    assert [_entry(dep, size + n).fields["record"] for n in range(2)] == [
        r.record_id for r in good if isinstance(r, IngestReceipt)
    ]
    assert dep.store.count_records() == 2


def test_a_shredded_subject_in_a_batch_fails_alone_and_its_neighbours_are_keyed_once(
    dep: Deployment, principals: dict[str, object]
) -> None:
    gw = dep.gateway
    svc = principals["svc-pl"]
    authority = principals["authority-pl"]
    _ingested(gw.ingest_many(svc, [IngestItem("gone@example.pl", "PL", "before")]))  # type: ignore[arg-type]
    dep.governance.shred(authority, jurisdiction="PL", subject_id="gone@example.pl")  # type: ignore[arg-type]
    texts = ["plain 0", f"PESEL {PESEL} 1", "shredded 2", f"PESEL {PESEL} 3", "plain 4"]
    subjects = [f"n{n}@example.pl" if n != 2 else "gone@example.pl" for n in range(5)]
    items = [IngestItem(s, "PL", t) for s, t in zip(subjects, texts, strict=True)]
    custodian = gw.custodians["PL"]
    size, journalled = gw.log.size, len(custodian.journal())  # type: ignore[attr-defined]
    results = gw.ingest_many(svc, items)  # type: ignore[arg-type]
    assert isinstance(results[2], BadRequest) and "crypto-shredded" in str(results[2])
    good = _ingested([r for n, r in enumerate(results) if n != 2])
    tokenized = {"pl_pesel": "tokenize"}
    assert [r.actions for r in good] == [{}, tokenized, tokenized, {}]
    assert gw.log.size == size + 4
    ids = [r.record_id for r in good]
    got = gw.access(svc, purpose="customer-support", record_ids=ids).records  # type: ignore[arg-type]
    assert [got[ids[0]], got[ids[3]]] == ["plain 0", "plain 4"]
    assert all(
        PESEL not in got[r] and got[r].endswith(n) for r, n in zip(ids[1:3], "13", strict=True)
    )
    # The call for the whole batch was refused for the shredded subject; then each record
    # was protected and wrapped on its own, in one call each.
    journal = custodian.journal()[journalled:]  # type: ignore[attr-defined]
    wraps = [e.outcome for e in journal if e.operation == "wrap"]
    assert wraps == ["refused"] * 5 + ["wrapped", "wrapped", "refused", "wrapped", "wrapped"]


def test_a_refused_or_denied_item_is_logged_on_its_own(
    root: Path, clock: object, principals: dict[str, object]
) -> None:
    config = (root / "sovra.toml").read_text()
    (root / "sovra.toml").write_text(config.replace('pl_pesel = "tokenize"', 'pl_pesel = "refuse"'))
    dep = Deployment.open(root, clock=clock)  # type: ignore[arg-type]
    try:
        gw = dep.gateway
        svc = dep.store.get_principal("svc-pl")
        results = gw.ingest_many(
            svc,
            [
                IngestItem("a@example.pl", "PL", "fine"),
                IngestItem("b@example.pl", "PL", f"PESEL {PESEL}"),
                IngestItem("c@example.pl", "PL", "fine too"),
            ],
        )
        refused = results[1]
        assert isinstance(refused, BadRequest) and refused.log_index is not None
        assert PESEL not in refused.message
        entry = _entry(dep, refused.log_index)
        assert (entry.kind, entry.fields["effect"], entry.fields["action"]) == (
            "decision",
            "deny",
            "ingest",
        )
        assert isinstance(results[0], IngestReceipt) and isinstance(results[2], IngestReceipt)
        assert dep.store.count_records() == 2
        # A principal who may not ingest: every item is denied, each deny logged.
        us = dep.store.get_principal("authority-us")
        denied = gw.ingest_many(us, [IngestItem("x@example.pl", "PL", "x")] * 2)
        assert all(isinstance(d, Denied) and d.log_index is not None for d in denied)
        assert len({d.log_index for d in denied if isinstance(d, Denied)}) == 2
        assert dep.store.count_records() == 2
    finally:
        dep.close()


def test_a_batch_asks_the_policy_stage_once_per_kind_of_caller_and_each_deny_is_logged(
    dep: Deployment, principals: dict[str, object]
) -> None:
    """Items of one principal and jurisdiction share one allow; another principal, or a
    subject principal writing about itself rather than someone else, is decided on its own
    and gets what it would get alone."""
    gw = dep.gateway
    asked: list[tuple[str, tuple[str, ...]]] = []
    decide_action = gw.decisions.decide_action

    def counting(principal, action, target):  # type: ignore[no-untyped-def]
        asked.append((principal.id, target.subjects))
        return decide_action(principal, action, target)

    gw.decisions.decide_action = counting  # type: ignore[method-assign]
    svc, us, anna = principals["svc-pl"], principals["authority-us"], principals["subject-anna"]
    calls = [
        (svc, IngestItem("a@example.pl", "PL", "one")),
        (us, IngestItem("b@example.pl", "PL", "two")),
        (svc, IngestItem("c@example.pl", "PL", "three")),
        (anna, IngestItem("anna@example.pl", "PL", "about herself")),
        (anna, IngestItem("ben@example.pl", "PL", "about someone else")),
        (us, IngestItem("d@example.pl", "PL", "four")),
        (svc, IngestItem("e@example.pl", "PL", "five")),
    ]
    results = gw._ingest_batch(calls)  # type: ignore[arg-type]
    assert [p for p, _ in asked].count("svc-pl") == 1
    assert [p for p, _ in asked].count("authority-us") == 2  # each deny decided and logged
    assert [p for p, _ in asked].count("subject-anna") == 2
    assert all(isinstance(results[n], IngestReceipt) for n in (0, 2, 6))
    denied = [results[1], results[5]]
    assert all(isinstance(d, Denied) and d.log_index is not None for d in denied)
    assert len({d.log_index for d in denied if isinstance(d, Denied)}) == 2
    for n in (3, 4):  # as each would be alone
        (alone,) = gw._ingest_batch([calls[n]])  # type: ignore[list-item]
        assert type(alone) is type(results[n])


def test_a_batch_over_the_limit_is_refused_whole(
    dep: Deployment, principals: dict[str, object]
) -> None:
    gw = dep.gateway
    items = [IngestItem(f"s{n}@example.pl", "PL", "x") for n in range(MAX_INGEST_BATCH + 1)]
    size = gw.log.size
    with pytest.raises(BadRequest, match=f"at most {MAX_INGEST_BATCH} records"):
        gw.ingest_many(principals["svc-pl"], items)
    requests = [AccessRequest("customer-support", record_ids=["r-1"])] * (MAX_ACCESS_BATCH + 1)
    with pytest.raises(BadRequest, match=f"at most {MAX_ACCESS_BATCH} requests"):
        gw.access_many(principals["svc-pl"], requests)
    assert gw.log.size == size
    assert dep.store.count_records() == 0
    assert dep.store.unlogged_records(10) == []
    assert gw.ingest_many(principals["svc-pl"], []) == []


def test_access_many_decides_and_logs_each_request_on_its_own(
    dep: Deployment, principals: dict[str, object]
) -> None:
    gw = dep.gateway
    svc = principals["svc-pl"]
    ids = _three(dep, svc)
    size = gw.log.size
    results = gw.access_many(
        svc,
        [
            AccessRequest("customer-support", record_ids=[ids[0]]),
            AccessRequest("customer-support", record_ids=["r-" + "0" * 32]),  # no such record
            AccessRequest("marketing", record_ids=[ids[1]]),  # a purpose the policy denies
            AccessRequest("customer-support", record_ids=[ids[1], ids[2]]),
            AccessRequest("customer-support"),  # no target
            AccessRequest("customer-support", subjects=[("PL", "s2@example.pl")]),
        ],
    )
    first, missing, denied, pair, no_target, by_subject = results
    assert isinstance(first, AccessResult) and first.records == {ids[0]: "text 0"}
    assert isinstance(missing, NotFound) and missing.log_index is None
    assert (
        isinstance(denied, Denied) and _entry(dep, denied.log_index or 0).fields["effect"] == "deny"
    )
    assert isinstance(pair, AccessResult) and pair.records == {ids[1]: "text 1", ids[2]: "text 2"}
    assert isinstance(no_target, BadRequest)
    assert isinstance(by_subject, AccessResult) and by_subject.records == {ids[2]: "text 2"}
    # Each allowed request: its decision, then its key release naming that decision, all
    # decisions of the batch in one log batch and all releases in the next.
    allowed = [first, pair, by_subject]
    decisions = sorted([a.decision_receipt.index for a in allowed] + [denied.log_index or 0])
    releases = [a.release_receipt.index for a in allowed]
    assert decisions == list(range(size, size + 4))
    assert releases == list(range(size + 4, size + 7))
    for a in allowed:
        release = _entry(dep, a.release_receipt.index)
        assert release.kind == "key_release"
        assert release.fields["decision_id"] == a.decision.decision_id
        assert release.fields["decision_index"] == a.decision_receipt.index
        assert a.release_receipt.index > a.decision_receipt.index
    assert gw.log.size == size + 7


def test_a_custodians_refusal_in_a_batch_is_that_requests_and_is_logged(
    dep: Deployment, principals: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = dep.gateway
    svc = principals["svc-pl"]
    ids = _three(dep, svc)
    custodian = gw.custodians["PL"]
    real = custodian.unwrap_batches

    def refuse_the_second(requests):  # the custodian says no to one request of the call
        out = real(requests)
        out[1] = Denied("custodian PL refuses to release the key: the allow is stale")
        return out

    monkeypatch.setattr(custodian, "unwrap_batches", refuse_the_second)
    size = gw.log.size
    results = gw.access_many(
        svc, [AccessRequest("customer-support", record_ids=[rid]) for rid in ids]
    )
    assert isinstance(results[0], AccessResult) and isinstance(results[2], AccessResult)
    refused = results[1]
    assert isinstance(refused, Denied) and refused.log_index is not None
    entry = _entry(dep, refused.log_index)
    assert entry.fields["effect"] == "deny"
    allowed = LogEntry.from_bytes(gw.log.entry(size + 1))
    assert f"decision {allowed.fields['decision_id']} had allowed it" in refused.message
    # No key release was logged for the refused request, and the others' were.
    releases = [
        _entry(dep, i) for i in range(size, gw.log.size) if _entry(dep, i).kind == "key_release"
    ]
    assert [r.fields["records"] for r in releases] == [[ids[0]], [ids[2]]]


def test_concurrent_single_calls_share_batches_and_keep_their_own_results(
    dep: Deployment, principals: dict[str, object]
) -> None:
    gw = dep.gateway
    svc = principals["svc-pl"]
    threads, per_thread = 8, 12
    got: dict[int, list[object]] = {t: [] for t in range(threads)}

    def work(t: int) -> None:
        for n in range(per_thread):
            jurisdiction = "FR" if (t, n) == (3, 5) else "PL"  # one bad call among many
            try:
                got[t].append(
                    gw.ingest(
                        svc,
                        subject_id=f"t{t}n{n}@example.pl",
                        jurisdiction=jurisdiction,
                        content=f"thread {t} record {n}",
                    )
                )
            except SovraError as exc:
                got[t].append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    receipts = {}
    for t, results in got.items():
        for n, r in enumerate(results):
            if (t, n) == (3, 5):
                assert isinstance(r, BadRequest) and "unknown jurisdiction" in str(r)
                continue
            assert isinstance(r, IngestReceipt), r
            receipts[(t, n)] = r
    assert len({r.receipt.index for r in receipts.values()}) == threads * per_thread - 1
    ids = [r.record_id for r in receipts.values()]

    def read(chunk: list[tuple[tuple[int, int], IngestReceipt]], out: dict[str, str]) -> None:
        for _, r in chunk:
            out.update(gw.access(svc, purpose="customer-support", record_ids=[r.record_id]).records)

    items = list(receipts.items())
    outs: list[dict[str, str]] = [{} for _ in range(threads)]
    readers = [
        threading.Thread(target=read, args=(items[t::threads], outs[t])) for t in range(threads)
    ]
    for w in readers:
        w.start()
    for w in readers:
        w.join()
    served = {k: v for out in outs for k, v in out.items()}
    assert sorted(served) == sorted(ids)
    for (t, n), r in receipts.items():
        assert served[r.record_id] == f"thread {t} record {n}"
        assert _entry(dep, r.receipt.index).fields["record"] == r.record_id


def test_a_receipted_rows_commit_is_synced_by_the_log_append_that_shows_them(
    dep: Deployment, principals: dict[str, object]
) -> None:
    """On the embedded default the pending rows are committed without a sync of their own:
    the log's append, on the same SQLite file, syncs the write-ahead log after them (the
    WAL is one sequential file), so both are on disk before any receipt is returned. The
    append's transaction also gives the rows their indices: they become visible in the
    commit that makes their entries durable, and no transaction of their own follows."""
    store = dep.store
    storage = dep.gateway.log._storage
    files = [c.execute("PRAGMA database_list").fetchone()[2] for c in (store._conn, storage._db)]  # type: ignore[attr-defined]
    assert files[0] == files[1]
    assert storage._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    events: list[tuple[str, str]] = []
    store._conn.set_trace_callback(lambda sql: events.append(("rows", sql)))  # type: ignore[attr-defined]
    storage._db.set_trace_callback(lambda sql: events.append(("log", sql)))
    try:
        dep.gateway.ingest_many(principals["svc-pl"], [IngestItem("a@example.pl", "PL", "x")])
    finally:
        store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
        storage._db.set_trace_callback(None)
    insert = next(n for n, (who, sql) in enumerate(events) if sql.startswith("INSERT INTO records"))
    rows_commit = next(n for n, e in enumerate(events) if n > insert and e == ("rows", "COMMIT"))
    log_commit = next(n for n, e in enumerate(events) if n > rows_commit and e == ("log", "COMMIT"))
    entries = next(n for n, (_, sql) in enumerate(events) if sql.startswith("INSERT INTO log_ent"))
    updates = [(n, who) for n, (who, sql) in enumerate(events) if sql.startswith("UPDATE records")]
    assert [who for _, who in updates] == ["log"]
    assert insert < rows_commit < entries < updates[0][0] < log_commit
    assert ("log", "PRAGMA synchronous=NORMAL") not in events[rows_commit:log_commit]
    assert ("rows", "PRAGMA synchronous=FULL") not in events  # no second sync for the rows
    assert [e for e in events[log_commit:] if e[0] == "rows"] == []  # nor a transaction


def test_a_row_that_no_longer_parses_fails_its_own_request_only(
    dep: Deployment, principals: dict[str, object], root: Path
) -> None:
    import sqlite3

    from sovra.errors import IntegrityError

    svc = principals["svc-pl"]
    ids = _three(dep, svc)
    conn = sqlite3.connect(root / "sovra.db")
    with conn:
        conn.execute("UPDATE records SET findings = 'not json' WHERE record_id = ?", (ids[1],))
    conn.close()
    results = dep.gateway.access_many(
        svc,  # type: ignore[arg-type]
        [AccessRequest("customer-support", record_ids=[rid]) for rid in ids],
    )
    assert isinstance(results[1], IntegrityError) and ids[1] in str(results[1])
    assert [r.records for r in (results[0], results[2]) if isinstance(r, AccessResult)] == [
        {ids[0]: "text 0"},
        {ids[2]: "text 2"},
    ]
