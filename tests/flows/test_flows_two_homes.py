"""Subjects of two countries: a record whose data key is split between both homes' custodians.

Anna is Polish and German. Her records are placed in a region both allow, minimised under
the stricter of both rules, and sealed under a data key whose two shares are wrapped by
the PL and the DE custodian. Every case runs with the custodians in-process and with both
as custodian services over HTTP (``sovra custodian serve``'s app, on loopback).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import Any

import pytest
from tests.flows.two_homes import ANNA, TEXT, TOKEN, Two, ingest, read

from sovra.errors import BadRequest, Denied, IntegrityError
from sovra.keys import open_blob
from sovra.keys.remote import RemoteCustodian
from sovra.keys.split import join, second_header, second_home, wraps_of
from sovra.model import SPLIT_KEY_FORMAT, LogEntry, ReleaseAuthorization

# -- ingest ---------------------------------------------------------------------------------


def test_a_two_home_record_is_placed_minimised_and_logged_under_both_homes(two: Two) -> None:
    rid = ingest(two)
    meta = two.dep.store.get_record(rid)
    pl, de = two.gw.commitment("PL", ANNA), two.gw.commitment("DE", ANNA)
    assert meta.header.format == SPLIT_KEY_FORMAT
    assert meta.header.region == "eu-central-de"  # the one region both allow
    assert (meta.header.jurisdiction, meta.header.subject) == ("PL", pl)
    other = second_home(meta.header, meta.wrapped_key)
    assert other is not None and (other.jurisdiction, other.subject) == ("DE", de)
    # DE redacts phone numbers, PL keeps them: the stricter rule is the one applied.
    assert meta.actions["phone"] == "redact"
    (logged,) = [i for i in two.gw.log.find(de) if two.entry(i).kind == "ingest"]
    assert logged in two.gw.log.find(pl)
    fields = two.entry(logged).fields
    assert (fields["jurisdiction"], fields["second_home"], fields["second_subject"]) == (
        "PL",
        "DE",
        de,
    )
    text = read(two, rid).records[rid]
    assert "+48 601 234 567" not in text and "anna@example.eu" in text


def test_check_reconciles_two_home_records_as_any_other(two: Two, clock: Any) -> None:
    from sovra.check import check

    ingest(two)
    two.gw.ingest(two.principal("svc-pl"), subject_id=ANNA, jurisdiction="PL", content="one")
    report = check(two.dep.store, two.gw.log, two.gw.blobs, now_ms=int(clock() * 1000))
    assert report.clean, report.problems
    assert report.counts["ingest_entries"] == 2


@pytest.mark.parametrize(
    ("jurisdiction", "other_homes", "message"),
    [
        ("PL", ["XX"], "second home 'XX' is not a jurisdiction of this deployment"),
        ("PL", ["PL"], "home jurisdiction PL is named twice"),
        ("PL", ["DE", "VN"], "at most 2 home jurisdictions, got 3: PL, DE, VN"),
        ("PL", ["DE", "DE"], "home jurisdiction DE is named twice"),
        ("PL", ["pl"], "jurisdiction"),
        ("PL", "DE", "other homes must be a list"),
        ("DE", ["VN"], "no storage region is allowed by both DE (eu-central-de) and VN"),
    ],
)
def test_bad_homes_are_refused_precisely_and_nothing_is_stored(
    two: Two, jurisdiction: str, other_homes: Any, message: str
) -> None:
    size, rows = two.gw.log.size, two.dep.store.count_records()
    journals = {j: len(c.journal()) for j, c in two.served.items()}
    with pytest.raises(BadRequest, match=re.escape(message)):
        two.gw.ingest(
            two.principal("svc-pl"),
            subject_id=ANNA,
            jurisdiction=jurisdiction,
            content=TEXT,
            other_homes=other_homes,
        )
    assert (two.gw.log.size, two.dep.store.count_records()) == (size, rows)
    assert {j: len(c.journal()) for j, c in two.served.items()} == journals


def test_a_purpose_one_home_does_not_list_is_refused(two: Two) -> None:
    size, rows = two.gw.log.size, two.dep.store.count_records()
    with pytest.raises(BadRequest, match=r"PL collects data for .*not 'research'"):
        two.gw.ingest(
            two.principal("svc-de"),
            subject_id=ANNA,
            jurisdiction="DE",
            content=TEXT,
            purpose="research",  # DE lists it, PL does not
            other_homes=["PL"],
        )
    assert (two.gw.log.size, two.dep.store.count_records()) == (size, rows)


# -- the split key --------------------------------------------------------------------------


def test_a_two_home_record_is_unreadable_with_either_custodian_alone(two: Two) -> None:
    rid = ingest(two)
    res = read(two, rid)  # a logged allow, to present to each custodian on its own
    allow = ReleaseAuthorization.of(
        res.decision, two.gw.log.entry(res.decision_receipt.index), res.decision_receipt
    )
    meta = two.dep.store.get_record(rid)
    blob = two.gw.blobs[meta.header.region].get(rid)
    first, second, de = wraps_of(meta.wrapped_key)
    other = second_home(meta.header, meta.wrapped_key)
    assert other is not None
    pl_share = two.gw.custodians["PL"].unwrap_many([(first, meta.header)], allow, "subject-anna")
    de_header = second_header(meta.header, other, second.kek_version)
    de_share = two.gw.custodians["DE"].unwrap_many([(second, de_header)], allow, "subject-anna")
    for share in (pl_share[0], de_share[0]):
        with pytest.raises(IntegrityError):
            open_blob(meta.header, blob, share)
    both = join(pl_share[0], de_share[0])
    assert open_blob(meta.header, blob, both).decode() == res.records[rid]
    # The stored wrapped key is no wrap of one custodian's, and a share does not open as
    # the other home's.
    with pytest.raises(IntegrityError):
        two.gw.custodians["PL"].unwrap_many(
            [(meta.wrapped_key, meta.header)], allow, "subject-anna"
        )
    with pytest.raises(IntegrityError):
        two.gw.custodians["PL"].unwrap_many(
            [(replace(second, jurisdiction="PL"), meta.header)], allow, "subject-anna"
        )
    assert de == other.subject


def test_both_allows_release_both_shares_each_logged(two: Two) -> None:
    rid = ingest(two)
    before = {j: two.released(j) for j in ("PL", "DE")}
    res = read(two, rid)
    assert "Anna Kowalska" in res.records[rid]
    decision = two.entry(res.decision_receipt.index).fields
    pl, de = two.gw.commitment("PL", ANNA), two.gw.commitment("DE", ANNA)
    assert decision["effect"] == "allow"
    assert decision["homes"] == ["DE", "PL"]
    assert decision["records"] == [rid]
    assert sorted(decision["subjects"]) == sorted([pl, de])
    releases = [
        e for e in two.entries("key_release") if e.fields["decision_id"] == decision["decision_id"]
    ]
    assert sorted(e.fields["custodian"] for e in releases) == ["DE", "PL"]
    assert all(e.fields["records"] == [rid] for e in releases)
    assert {j: two.released(j) - before[j] for j in ("PL", "DE")} == {"PL": 1, "DE": 1}
    # Her second home's authority finds the record, the decision and both releases in
    # her report there, under her DE commitment.
    report = two.dep.governance.subject_report(
        two.principal("authority-de"), jurisdiction="DE", subject_id=ANNA
    )
    kinds = [LogEntry.from_bytes(e.entry).kind for e in report.entries]
    assert kinds.count("ingest") == 1 and kinds.count("key_release") == 2
    assert res.decision_receipt.index in [e.index for e in report.entries]


def test_one_home_denying_releases_nothing_and_the_deny_is_logged(two: Two) -> None:
    rid = ingest(two)
    before = {j: two.released(j) for j in ("PL", "DE")}
    releases = len(two.entries("key_release"))
    # A PL service is at home under PL's rules and a foreign service under DE's.
    with pytest.raises(Denied) as info:
        read(two, rid, who="svc-pl")
    entry = two.entry(info.value.log_index).fields
    assert (entry["effect"], entry["homes"]) == ("deny", ["DE", "PL"])
    assert "DE" in entry["reason"]
    assert len(two.entries("key_release")) == releases
    assert {j: two.released(j) for j in ("PL", "DE")} == before


def test_a_single_record_of_the_same_subject_still_reads_as_before(two: Two) -> None:
    one = two.gw.ingest(
        two.principal("svc-pl"), subject_id=ANNA, jurisdiction="PL", content="one home"
    ).record_id
    both = ingest(two, content="two homes")
    res = two.gw.access(
        two.principal("subject-anna"),
        purpose="subject-access",
        justification="subject-request",
        subjects=[("PL", ANNA)],
    )
    assert res.records == {one: "one home", both: "two homes"}
    # PL's release covers both records (a key and a share), DE's the two-home one only.
    decision_id = res.decision.decision_id
    releases = {
        e.fields["custodian"]: sorted(e.fields["records"])
        for e in two.entries("key_release")
        if e.fields["decision_id"] == decision_id
    }
    assert releases == {"PL": sorted([one, both]), "DE": [both]}
    # A read of the one-home record alone is logged as ever: one release, no custodian.
    res = read(two, one, who="svc-pl")
    (release,) = [
        e for e in two.entries("key_release") if e.fields["decision_id"] == res.decision.decision_id
    ]
    assert (
        "custodian" not in release.fields
        and "homes" not in two.entry(res.decision_receipt.index).fields
    )


@pytest.mark.parametrize("home", ["PL", "DE"])
def test_one_custodian_refusing_releases_nothing_and_the_refusal_is_logged(
    two: Two, home: str
) -> None:
    rid = ingest(two)
    keep = two.gw.ingest(
        two.principal("svc-pl"), subject_id=ANNA, jurisdiction="PL", content="one home"
    ).record_id
    # Erasure by either home: that custodian destroys the subject's key there.
    two.dep.governance.shred(
        two.principal(f"authority-{home.lower()}"), jurisdiction=home, subject_id=ANNA
    )
    releases = len(two.entries("key_release"))
    with pytest.raises(Denied, match=f"custodian {home} did not release its share") as info:
        read(two, rid)
    refusal = two.entry(info.value.log_index).fields
    assert refusal["effect"] == "deny" and "had allowed it" in refusal["reason"]
    assert len(two.entries("key_release")) == releases
    if home == "DE":  # her one-home PL record is still hers to read
        assert read(two, keep, who="svc-pl").records == {keep: "one home"}


def test_an_unreachable_custodian_releases_nothing_and_is_logged(two: Two) -> None:
    rid = ingest(two)
    gone = RemoteCustodian("http://127.0.0.1:9", "DE", TOKEN)
    two.clients.append(gone)
    two.gw.custodians = {**two.gw.custodians, "DE": gone}
    releases = len(two.entries("key_release"))
    with pytest.raises(Denied, match="custodian DE did not release its share") as info:
        read(two, rid)
    assert two.entry(info.value.log_index).fields["effect"] == "deny"
    assert len(two.entries("key_release")) == releases


# -- over HTTP ------------------------------------------------------------------------------


def test_two_homes_over_http(two: Two, clock: Any) -> None:
    from fastapi.testclient import TestClient

    from sovra.auth import make_token
    from sovra.server import create_app

    def post(who: str, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        key = two.dep.principal_key(who)
        token = make_token(key, who, "POST", path, data, now_s=int(clock()))
        headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
        return http.post(path, content=data, headers=headers)

    record = {"subject_id": ANNA, "jurisdiction": "PL", "content": TEXT}
    with TestClient(create_app(two.dep), raise_server_exceptions=True) as http:
        size, rows = two.gw.log.size, two.dep.store.count_records()
        for homes, status, message in (
            (["DE", "VN"], 400, "at most 2 home jurisdictions, got 3"),
            (["PL"], 400, "home jurisdiction PL is named twice"),
            (["ZZ"], 400, "second home 'ZZ' is not a jurisdiction of this deployment"),
        ):
            r = post("svc-pl", "/v1/records", {**record, "other_homes": homes})
            assert r.status_code == status and message in r.json()["message"], r.text
        r = post("svc-pl", "/v1/records", {**record, "other_homes": "DE"})
        assert r.status_code in (400, 422), r.text
        assert (two.gw.log.size, two.dep.store.count_records()) == (size, rows)
        r = post("svc-pl", "/v1/records", {**record, "other_homes": ["DE"]})
        assert r.status_code == 201, r.text
        rid = r.json()["record_id"]
        assert two.dep.store.get_record(rid).header.format == SPLIT_KEY_FORMAT
        read = {
            "purpose": "subject-access",
            "justification": "subject-request",
            "record_ids": [rid],
        }
        r = post("subject-anna", "/v1/access", read)
        assert r.status_code == 200 and "Anna Kowalska" in r.json()["records"][rid], r.text
        r = post("svc-pl", "/v1/access", {"purpose": "customer-support", "record_ids": [rid]})
        assert r.status_code == 403, r.text
        assert two.entry(r.json()["log_index"]).fields["homes"] == ["DE", "PL"]


def test_values_tokenized_under_the_stricter_rule_are_revealed_only_to_an_allow_of_both(
    two: Two,
) -> None:
    # PL tokenizes PESEL numbers and DE lists no rule for them: the record keeps a token.
    rid = ingest(two, content="Anna, PESEL 44051401359")
    assert two.dep.store.get_record(rid).actions["pl_pesel"] == "tokenize"
    assert "44051401359" not in read(two, rid).records[rid]
    revealed = read(two, rid, reveal=True)
    assert revealed.records[rid] == "Anna, PESEL 44051401359"
    assert two.entry(revealed.decision_receipt.index).fields["homes"] == ["DE", "PL"]
    with pytest.raises(Denied):
        read(two, rid, who="svc-pl", reveal=True)


def test_the_python_client_declares_a_second_home(two: Two, clock: Any) -> None:
    from sovra.client import Client
    from sovra.server import create_app
    from sovra.server.background import running

    clock.now = time.time()  # the client signs with the wall clock
    with (
        running(create_app(two.dep)) as url,
        Client(url, "svc-pl", two.dep.principal_key("svc-pl")) as svc,
    ):
        rid = svc.ingest(ANNA, "PL", TEXT, other_homes=["DE"])["record_id"]
        with pytest.raises(BadRequest, match="named twice"):
            svc.ingest(ANNA, "PL", TEXT, other_homes=["DE", "DE"])
    meta = two.dep.store.get_record(rid)
    assert second_home(meta.header, meta.wrapped_key) is not None
