"""A decision over many records commits to its lists by root; custodians check the lists.

10,000 record ids listed in a decision entry were 370,000 bytes, over the log's 65,536-byte
entry limit (2,000 already were): no home authority could read a subject with thousands
of records. Now an entry lists up to MAX_LISTED_IDS ids and names more by their RFC 9162
root and count; the lists travel beside the entry, and a custodian (in-process, or as its
own HTTP service) releases a key only for a record under the logged root.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from _allow import logged_allow
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import Denied, VerificationError
from sovra.keys import LocalCustodian
from sovra.keys.custodian import MAX_BATCH
from sovra.keys.remote import RemoteCustodian
from sovra.model import (
    MAX_ENTRY_BYTES,
    MAX_LISTED_IDS,
    Decision,
    LogEntry,
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    id_count,
    id_fields,
    named_ids,
    subject_commitment,
)
from sovra.policy import default_pack, explain_entry
from sovra.server.background import running
from sovra.server.custodian import create_custodian_app

REQUESTER = "authority-pl"
TOKEN = b"t" * 32


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH, written from the RFC's recursive definition (not the log's code)."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    left, right = _reference_root(leaves[:k]), _reference_root(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def _ids(n: int) -> list[str]:
    return [f"r-{os.urandom(16).hex()}" for _ in range(n)]


def _subjects(n: int) -> list[str]:
    return sorted(subject_commitment(b"c" * 32, "PL", f"person-{i}") for i in range(n))


def test_up_to_the_limit_an_entry_lists_ids_and_over_it_names_them_by_root() -> None:
    listed = _ids(MAX_LISTED_IDS)
    assert id_fields("records", listed) == {"records": listed}
    more = _ids(MAX_LISTED_IDS + 1)
    fields = id_fields("records", more)
    assert fields == {
        "records_count": MAX_LISTED_IDS + 1,
        "records_root": _reference_root([i.encode() for i in more]).hex(),
    }
    assert id_count(fields, "records") == MAX_LISTED_IDS + 1
    assert named_ids(fields, "records", more) == tuple(more)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ids: ids[:-1], "names 65 records by root; 64 were handed"),
        (lambda ids: [*ids[:-1], "r-other"], "not the ones its root names"),
        (lambda ids: list(reversed(ids)), "not the ones its root names"),
        (lambda ids: [], "names 65 records by root; 0 were handed"),
    ],
    ids=["one-short", "one-swapped", "reordered", "none"],
)
def test_a_list_that_is_not_the_rooted_one_is_refused(change, message: str) -> None:
    ids = _ids(MAX_LISTED_IDS + 1)
    with pytest.raises(VerificationError, match=message):
        named_ids(id_fields("records", ids), "records", change(ids))


def test_a_decision_over_10000_records_and_subjects_fits_an_entry_and_is_explained() -> None:
    decision = Decision(
        decision_id="d-big",
        allow=True,
        reason="the home jurisdiction's authority under domestic legal process",
        principal=REQUESTER,
        purpose="domestic-legal-process",
        records=tuple(_ids(10_000)),
        subjects=tuple(_subjects(10_000)),
        policies=("home-authority-domestic-process",),
    )
    data = decision.to_entry(1_790_000_000_000).to_bytes()
    assert len(data) < 1024 < MAX_ENTRY_BYTES
    entry = LogEntry.from_bytes(data)
    explained = explain_entry(entry.fields, index=7, time_ms=1, principal="p", pack=default_pack())
    assert (explained.records, explained.subjects) == (10_000, 10_000)


@pytest.fixture
def custodian(tmp_path) -> Iterator[tuple[LocalCustodian, Ed25519PrivateKey]]:
    log_key = Ed25519PrivateKey.generate()
    served = LocalCustodian.create(tmp_path / "PL.key", "PL", log_key.public_key())
    try:
        yield served, log_key
    finally:
        served.close()


def _records(custodian: LocalCustodian, n: int) -> list[tuple[WrappedKey, RecordHeader]]:
    subject = subject_commitment(b"c" * 32, "PL", "anna")
    headers = [RecordHeader(rid, subject, "PL", "pl-1", 1) for rid in _ids(n)]
    return [(custodian.wrap(os.urandom(32), h), h) for h in headers]


@pytest.fixture
def remote(custodian) -> Iterator[RemoteCustodian]:
    """The same custodian as its own HTTP service."""
    with running(create_custodian_app(custodian[0], token=TOKEN)) as url:
        client = RemoteCustodian(url, "PL", TOKEN)
        try:
            yield client
        finally:
            client.close()


def test_a_large_allow_releases_its_records_and_nothing_else(custodian, remote) -> None:
    local, log_key = custodian
    items = _records(local, 3 * MAX_BATCH)
    allowed, outside = items[: 2 * MAX_BATCH + 7], items[2 * MAX_BATCH + 7 :]
    allow = logged_allow(log_key, [h for _, h in allowed], principal=REQUESTER)
    assert len(allow.records) == len(allowed) and len(allow.entry) < 1024
    swapped = replace(allow, records=(*allow.records[:-1], outside[0][1].record_id))
    bare = ReleaseAuthorization(allow.entry, allow.receipt)
    for each in (local, remote):
        for start in range(0, len(allowed), MAX_BATCH):
            batch = allowed[start : start + MAX_BATCH]
            assert len(each.unwrap_many(batch, allow, REQUESTER)) == len(batch)
        with pytest.raises(Denied, match="does not cover this record"):
            each.unwrap_many(outside[:1], allow, REQUESTER)
        # A gateway that slips another record into the list: the root does not match.
        with pytest.raises(Denied, match="not the ones its root names"):
            each.unwrap_many(outside[:1], swapped, REQUESTER)
        with pytest.raises(Denied, match="by root; 0 were handed"):
            each.unwrap_many(allowed[:1], bare, REQUESTER)
    outcomes = [e.outcome for e in local.journal()]
    assert outcomes.count("released") == 2 * len(allowed)
    assert outcomes.count("denied") == 6


def test_the_service_takes_a_10000_record_allow_within_its_body_limit(custodian, remote) -> None:
    local, log_key = custodian
    items = _records(local, MAX_BATCH)
    # 10,000 ids in all, with 10,000 subjects: the largest lists a selection may have.
    ids = [h.record_id for _, h in items] + _ids(10_000 - MAX_BATCH)
    subjects = sorted({*_subjects(10_000 - 1), items[0][1].subject})
    decision = Decision(
        "d-1", True, "test", REQUESTER, "customer-support", tuple(ids), tuple(subjects)
    )
    now = int(time.time() * 1000)
    allow = logged_allow(log_key, [], principal=REQUESTER, time_ms=now)
    entry = decision.to_entry(now).to_bytes()
    receipt = replace(allow.receipt, leaf_hash=hashlib.sha256(b"\x00" + entry).digest())
    receipt = replace(receipt, signature=log_key.sign(receipt.signed_bytes()))
    authorization = ReleaseAuthorization.of(decision, entry, receipt)
    assert len(remote.unwrap_many(items, authorization, REQUESTER)) == MAX_BATCH
