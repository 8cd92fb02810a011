"""Subjects of two countries: a foreign authority reads a two-home record only under a grant
that both homes' authorities signed (approved by one, co-signed by the other, registered so).

A grant of one home alone is refused with a reason naming the home that did not sign, the
refusal is logged and no custodian releases anything; a grant both homes signed releases
both shares, each release logged. Every case runs with both custodians in-process and as
custodian services (the ``two`` fixture, tests/flows/two_homes.py).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from tests.flows.two_homes import ANNA, Two, ingest

from sovra.errors import BadRequest, Denied
from sovra.model import Grant, LogEntry
from sovra.policy import cosign_grant, sign_grant


def _grant(two: Two, clock: Any, grant_id: str, approver: str, *cosigners: str) -> Grant:
    now = int(clock())
    grant = sign_grant(
        Grant(
            grant_id=grant_id,
            grantee="authority-us",
            grantee_jurisdiction="US",
            approver=approver,
            subjects=(ANNA,),
            purpose="foreign-legal-process",
            legal_basis="MLA 2026/7",
            not_before=now - 10,
            not_after=now + 86400,
        ),
        two.dep.authority_key(approver),
    )
    for j in cosigners:
        grant = cosign_grant(grant, j, two.dep.authority_key(j))
    return grant


def _register(two: Two, grant: Grant) -> None:
    two.dep.governance.register_grant(two.principal(f"authority-{grant.approver.lower()}"), grant)


def _read_under(two: Two, rid: str, grant: Grant) -> Any:
    return two.gw.access(
        two.principal("authority-us"),
        purpose="foreign-legal-process",
        record_ids=[rid],
        grant=grant,
    )


def _releases(two: Two, decision_id: str) -> dict[str, list[str]]:
    return {
        e.fields.get("custodian", ""): e.fields["records"]
        for e in two.entries("key_release")
        if e.fields["decision_id"] == decision_id
    }


@pytest.mark.parametrize(("approver", "other"), [("PL", "DE"), ("DE", "PL")])
def test_a_grant_of_one_home_alone_is_refused_precisely_and_logged(
    two: Two, clock: Any, approver: str, other: str
) -> None:
    rid = ingest(two)
    grant = _grant(two, clock, f"g-{approver}", approver)
    _register(two, grant)
    journals = {j: len(c.journal()) for j, c in two.served.items()}
    releases = len(two.entries("key_release"))
    with pytest.raises(Denied) as info:
        _read_under(two, rid, grant)
    expected = (
        f"record {rid} has two homes, PL and DE: a legal-assistance grant for it needs both "
        f"homes' authorities (approved by one, co-signed by the other); grant g-{approver} is "
        f"approved by {approver} and not co-signed by {other}"
    )
    assert info.value.message.startswith(expected), info.value.message
    entry = two.entry(info.value.log_index)
    assert entry.kind == "decision" and entry.principal == "authority-us"
    assert entry.fields["effect"] == "deny" and entry.fields["reason"] == info.value.message
    assert entry.fields["homes"] == ["DE", "PL"] and entry.fields["grant"] == grant.digest()
    # Nothing was asked of either custodian, nothing released.
    assert len(two.entries("key_release")) == releases
    assert {j: len(c.journal()) for j, c in two.served.items()} == journals


@pytest.mark.parametrize(("approver", "other"), [("PL", "DE"), ("DE", "PL")])
def test_a_grant_both_homes_signed_releases_both_shares_each_logged(
    two: Two, clock: Any, approver: str, other: str
) -> None:
    rid = ingest(two)
    grant = _grant(two, clock, f"g-both-{approver}", approver, other)
    _register(two, grant)
    before = {j: two.released(j) for j in ("PL", "DE")}
    res = _read_under(two, rid, grant)
    assert "Anna Kowalska" in res.records[rid]
    decision = two.entry(res.decision_receipt.index).fields
    assert decision["effect"] == "allow" and decision["homes"] == ["DE", "PL"]
    assert decision["reason"].endswith(
        f"grant g-both-{approver} is approved by {approver} and co-signed by {other}, "
        "both homes of its records of two homes"
    )
    assert _releases(two, decision["decision_id"]) == {"PL": [rid], "DE": [rid]}
    assert {j: two.released(j) - before[j] for j in ("PL", "DE")} == {"PL": 1, "DE": 1}
    # The grant's entry names its co-signer and is in her report in either home.
    (registered,) = [e for e in two.entries("grant") if e.fields["grant_id"] == grant.grant_id]
    assert registered.fields["approver"] == approver
    assert registered.fields["cosigners"] == [other]
    for home in ("PL", "DE"):
        report = two.dep.governance.subject_report(
            two.principal(f"authority-{home.lower()}"), jurisdiction=home, subject_id=ANNA
        )
        kinds = [LogEntry.from_bytes(e.entry).kind for e in report.entries]
        assert kinds.count("grant") == 1 and kinds.count("key_release") == 2, (home, kinds)


def test_a_cosignature_added_after_registration_does_not_count(two: Two, clock: Any) -> None:
    rid = ingest(two)
    grant = _grant(two, clock, "g-late", "PL")
    _register(two, grant)  # registered with PL's signature only
    late = cosign_grant(grant, "DE", two.dep.authority_key("DE"))
    releases = len(two.entries("key_release"))
    with pytest.raises(Denied, match=re.escape(
        "approved by PL and co-signed by DE, but that co-signature is not on the grant as "
        "registered under its id"
    )) as info:  # fmt: skip
        _read_under(two, rid, late)
    assert two.entry(info.value.log_index).fields["effect"] == "deny"
    assert len(two.entries("key_release")) == releases


def test_a_home_cosignature_does_not_open_a_record_of_one_home(two: Two, clock: Any) -> None:
    # Approved by DE and co-signed by PL: both homes of her two-home record, but her
    # one-home PL record is PL's alone, and PL approved nothing.
    one = two.gw.ingest(
        two.principal("svc-pl"), subject_id=ANNA, jurisdiction="PL", content="one home"
    ).record_id
    both = ingest(two, content="two homes")
    grant = _grant(two, clock, "g-de-pl", "DE", "PL")
    _register(two, grant)
    assert _read_under(two, both, grant).records == {both: "two homes"}
    with pytest.raises(Denied, match="the grant is approved by DE, not by PL") as info:
        _read_under(two, one, grant)
    assert two.entry(info.value.log_index).fields["effect"] == "deny"


def test_a_grant_both_homes_signed_still_covers_only_its_subjects_and_window(
    two: Two, clock: Any
) -> None:
    rid = ingest(two)
    other = two.gw.ingest(
        two.principal("svc-pl"),
        subject_id="jan@example.eu",
        jurisdiction="PL",
        content="Jan",
        other_homes=["DE"],
    ).record_id
    grant = _grant(two, clock, "g-anna", "PL", "DE")
    _register(two, grant)
    with pytest.raises(Denied, match=f"the grant does not name the subject of record {other}"):
        _read_under(two, other, grant)
    two.dep.governance.revoke_grant(two.principal("authority-pl"), grant.grant_id)
    with pytest.raises(Denied, match="grant g-anna has been revoked"):
        _read_under(two, rid, grant)


def test_a_bad_cosignature_is_refused_at_registration_and_logged(two: Two, clock: Any) -> None:
    grant = _grant(two, clock, "g-forged", "PL", "DE")
    # DE's co-signature made with PL's key: it does not verify as DE's.
    forged = cosign_grant(grant, "DE", two.dep.authority_key("PL"))
    size = two.gw.log.size
    with pytest.raises(Denied, match="grant g-forged's co-signature by DE does not verify") as info:
        _register(two, forged)
    assert two.entry(info.value.log_index).fields["effect"] == "deny"
    assert two.gw.log.size == size + 1  # the refusal, and no grant entry
    assert not [e for e in two.entries("grant") if e.fields["grant_id"] == "g-forged"]


def test_an_authority_of_one_home_is_refused_by_the_other_homes_rules(two: Two, clock: Any) -> None:
    # PL's own authority, under a grant DE approved and PL co-signed: PL's rules want
    # domestic-legal-process, DE's foreign-legal-process; one request has one
    # justification, so it is refused by one home's rules (ADR 0025, not covered).
    rid = ingest(two)
    grant = sign_grant(
        replace(
            _grant(two, clock, "g-to-pl", "DE"),
            grantee="authority-pl",
            grantee_jurisdiction="PL",
        ),
        two.dep.authority_key("DE"),
    )
    grant = cosign_grant(grant, "PL", two.dep.authority_key("PL"))
    _register(two, grant)
    releases = len(two.entries("key_release"))
    for justification, reason in (
        ("domestic-legal-process", "a foreign authority reads DE subjects' data only through"),
        ("foreign-legal-process", "PL's authority reads its residents' data under domestic"),
    ):
        with pytest.raises(Denied) as info:
            two.gw.access(
                two.principal("authority-pl"),
                purpose="foreign-legal-process",
                record_ids=[rid],
                grant=grant,
                justification=justification,
            )
        assert info.value.message.startswith(reason), info.value.message
        assert two.entry(info.value.log_index).fields["effect"] == "deny"
    assert len(two.entries("key_release")) == releases


@pytest.mark.parametrize(("approver", "other"), [("PL", "DE"), ("DE", "PL")])
def test_the_cosigning_home_withdraws_its_cosignature_with_effect_at_once(
    two: Two, clock: Any, approver: str, other: str
) -> None:
    both = ingest(two, content="two homes")
    # Her record of the approver's home alone: the approver's grant covers it by itself.
    one = two.gw.ingest(
        two.principal("svc-pl"),
        subject_id=ANNA,
        jurisdiction=approver,
        content="one home",
    ).record_id
    grant = _grant(two, clock, f"g-w-{approver}", approver, other)
    _register(two, grant)
    assert _read_under(two, both, grant).records == {both: "two homes"}

    done = two.dep.governance.revoke_grant(
        two.principal(f"authority-{other.lower()}"), grant.grant_id
    )
    assert (done.outcome, done.cosigner) == ("cosignature-withdrawn", other)
    receipt = done.receipt
    withdrawn = two.entry(receipt.index)
    assert withdrawn.kind == "grant_revoked" and withdrawn.principal == f"authority-{other.lower()}"
    assert withdrawn.fields["cosigner"] == other and withdrawn.fields["grant_id"] == grant.grant_id
    allowed = two.entry(receipt.index - 1).fields
    assert allowed["effect"] == "allow" and allowed["action"] == "revoke-grant"
    assert allowed["policies"] == ["cosignature-withdrawn-by-its-cosigner"]
    assert allowed["decision_id"] == withdrawn.fields["decision_id"]
    assert not two.dep.store.grant_revoked(grant.grant_id)  # the grant itself stands

    journals = {j: len(c.journal()) for j, c in two.served.items()}
    releases = len(two.entries("key_release"))
    with pytest.raises(Denied) as info:
        _read_under(two, both, grant)
    assert (
        f"grant g-w-{approver} is approved by {approver} and {other}'s authority has "
        "withdrawn its co-signature" in info.value.message
    ), info.value.message
    entry = two.entry(info.value.log_index)
    assert entry.fields["effect"] == "deny" and entry.principal == "authority-us"
    assert len(two.entries("key_release")) == releases
    assert {j: len(c.journal()) for j, c in two.served.items()} == journals
    # The records that needed only the approver are still covered.
    assert _read_under(two, one, grant).records == {one: "one home"}


def test_a_third_jurisdiction_cannot_revoke_and_twice_is_a_precise_error(
    two: Two, clock: Any
) -> None:
    rid = ingest(two)
    grant = _grant(two, clock, "g-third", "PL", "DE")
    _register(two, grant)
    gov = two.dep.governance
    for who in ("authority-vn", "authority-us", "svc-pl"):
        with pytest.raises(Denied, match="only PL's authority, or a co-signing one, may") as i:
            gov.revoke_grant(two.principal(who), grant.grant_id)
        refused = two.entry(i.value.log_index)
        assert refused.fields["effect"] == "deny" and refused.fields["action"] == "revoke-grant"
        assert refused.principal == who
    assert not two.dep.store.grant_revoked(grant.grant_id)
    assert two.dep.store.grant_withdrawals(grant.grant_id) == frozenset()
    assert "Anna Kowalska" in _read_under(two, rid, grant).records[rid]

    gov.revoke_grant(two.principal("authority-de"), grant.grant_id)
    size = two.gw.log.size
    with pytest.raises(BadRequest, match="DE has withdrawn its co-signature of grant g-third"):
        gov.revoke_grant(two.principal("authority-de"), grant.grant_id)
    assert two.gw.log.size == size
    gov.revoke_grant(two.principal("authority-pl"), grant.grant_id)
    size = two.gw.log.size
    for who in ("authority-pl", "authority-de", "authority-vn"):
        with pytest.raises(BadRequest, match="grant g-third is revoked already"):
            gov.revoke_grant(two.principal(who), grant.grant_id)
    assert two.gw.log.size == size


def test_the_cosigning_home_is_shown_the_grant_and_a_third_is_not(two: Two, clock: Any) -> None:
    """The co-signing home's authority sees what it signed (and so can decide to take its
    co-signature back); an authority that signed nothing is refused, and that is logged."""
    grant = _grant(two, clock, "g-view", "PL", "DE")
    _register(two, grant)
    gov = two.dep.governance
    for who in ("authority-pl", "authority-de", "authority-us"):
        assert gov.grant_status(two.principal(who), grant.grant_id).grant == grant
    with pytest.raises(Denied, match="shown to its grantee, PL's authority, a co-signing one") as i:
        gov.grant_status(two.principal("authority-vn"), grant.grant_id)
    refused = two.entry(i.value.log_index)
    assert refused.fields["effect"] == "deny" and refused.fields["action"] == "view-grant"
    assert refused.principal == "authority-vn"
