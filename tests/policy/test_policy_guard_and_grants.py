"""The bulk guard's budgets and alerts, grant checks on every use, the memo, explanations."""

from __future__ import annotations

import pytest
from policy_cases import AUTH, KEYS, NOW, PUBLIC, PURPOSES, SVC, commit, facts, grant, rec

from sovra.errors import BadRequest
from sovra.model import Grant, Role
from sovra.policy import (
    BulkGuard,
    BulkLimits,
    DecisionPoint,
    GrantChecker,
    GrantFacts,
    Justification,
    cosign_grant,
    default_justification,
    default_pack,
    explain_entry,
    parse_justification,
)


def _point(now: list[float], **limits: int) -> DecisionPoint:
    base = dict(request_limit=10, window_limit=100, window_s=60)
    base.update(limits)
    return DecisionPoint(default_pack(), BulkGuard(BulkLimits(**base), lambda: now[0]), PURPOSES)


NONE = GrantFacts.none()


def test_foreign_subject_budget_is_per_requester_and_spares_home_subjects() -> None:
    now = [0.0]
    point = _point(now, foreign_limit=2)
    us = AUTH["US"]
    g = facts(grant(subjects=("a", "b", "c")))
    for s in ("a", "b"):
        assert point.decide(us, "foreign-legal-process", [rec(s + "x", subject=s)], g).allow
    denied = point.decide(us, "foreign-legal-process", [rec("cx", subject="c")], g)
    assert not denied.allow
    assert denied.policies == ("foreign-subject-budget",)
    # the same requester still reads its own jurisdiction's subjects
    home = point.decide(us, "domestic-legal-process", [rec("h", "US", "h")], NONE)
    assert home.allow
    now[0] = 61.0
    assert point.decide(us, "foreign-legal-process", [rec("cx", subject="c")], g).allow


def test_jurisdiction_budget_is_shared_by_its_requesters() -> None:
    now = [0.0]
    point = _point(now, jurisdiction_limit=3)
    svc_a = SVC["VN"]
    svc_b = svc_a.__class__("svc-vn-2", "VN", Role.SERVICE, b"\x01" * 32)
    for n, who in enumerate((svc_a, svc_b, svc_a)):
        assert point.decide(who, "billing", [rec(f"{n}a", subject=f"s{n}")], NONE).allow
    denied = point.decide(svc_b, "billing", [rec("9a", subject="s9")], NONE)
    assert denied.policies == ("bulk-collection-per-jurisdiction",)


def test_enumeration_across_requests_is_refused_and_alerts() -> None:
    now = [0.0]
    point = _point(now, enumeration_run=5)
    svc = SVC["VN"]
    for i in range(1, 5):
        assert point.decide(svc, "billing", [rec(100 + i, subject=f"s{i}")], NONE).allow
    walk = point.decide(svc, "billing", [rec(105, subject="s5")], NONE)
    assert walk.policies == ("enumeration-detected",)
    # a jump elsewhere is not a walk
    assert point.decide(svc, "billing", [rec(500, subject="s6")], NONE).allow
    alerts = point.guard.alerts()
    assert [(a.requester, a.policies, a.decision_id) for a in alerts] == [
        ("svc-vn", ("enumeration-detected",), walk.decision_id)
    ]
    metrics = point.guard.metrics()
    assert 'sovra_bulk_refusals_total{policy="enumeration-detected"} 1' in metrics
    assert "sovra_bulk_alert 1" in metrics
    now[0] = 120.0
    assert "sovra_bulk_alert 0" in point.guard.metrics()


def test_denied_requests_do_not_spend_budget() -> None:
    now = [0.0]
    point = _point(now, window_limit=2)
    svc = SVC["VN"]
    assert not point.decide(svc, "marketing", [rec("1a", subject="a")], NONE).allow
    assert not point.decide(svc, "marketing", [rec("2a", subject="b")], NONE).allow
    assert point.decide(svc, "billing", [rec("3a", subject="c")], NONE).allow
    assert point.decide(svc, "billing", [rec("4a", subject="d")], NONE).allow


def test_window_memory_is_bounded_by_distinct_subjects() -> None:
    now = [0.0]
    point = _point(now)
    svc = SVC["VN"]
    for _ in range(1000):
        now[0] += 0.001
        point.decide(svc, "billing", [rec("1a", subject="a")], NONE)
    window = point.guard._requester["svc-vn"]
    assert len(window._events) < 5


def test_grant_is_checked_on_every_use() -> None:
    checker = GrantChecker(PUBLIC, commit)
    g = grant()
    assert checker.check(g, now_s=NOW, revoked=False).verified
    revoked = checker.check(g, now_s=NOW, revoked=True)
    assert not revoked.verified and "revoked" in revoked.problem
    late = checker.check(g, now_s=NOW + 10, revoked=False)
    assert not late.verified and "expired" in late.problem
    assert checker.check(g, now_s=NOW, revoked=False).verified


def test_cosignatures_are_verified_and_a_bad_one_spoils_the_grant() -> None:
    g = cosign_grant(grant(), "PL", KEYS["PL"])
    assert facts(g).cosigners == frozenset({"PL"})
    bad = Grant.from_json(g.to_json().replace(g.cosignatures[0][1].hex().encode(), b"00" * 64))
    spoiled = facts(bad)
    assert not spoiled.verified
    assert "co-signature by PL does not verify" in spoiled.problem
    with pytest.raises(BadRequest, match="a co-signer is another"):
        cosign_grant(grant(), "VN", KEYS["VN"])


def test_grant_scope_round_trips_and_keeps_old_digests() -> None:
    plain = grant()
    assert "categories" not in plain.body()
    scoped = cosign_grant(grant(categories=("email",), max_records=2), "DE", KEYS["DE"])
    again = Grant.from_json(scoped.to_json())
    assert again == scoped
    assert again.to_json() == scoped.to_json()
    assert scoped.digest() != grant(categories=("phone",), max_records=2).digest()


def test_memoised_answers_equal_fresh_evaluation() -> None:
    """The memo must never change a decision: compare against a cold point every time."""
    now = [float(NOW)]
    warm = _point(now)
    requests = [
        (SVC["VN"], "billing", [rec("1a")], NONE),
        (SVC["PL"], "billing", [rec("1a")], NONE),
        (AUTH["US"], "foreign-legal-process", [rec("1a")], facts(grant())),
        (AUTH["US"], "foreign-legal-process", [rec("1a", subject="minh")], facts(grant())),
        (AUTH["US"], "foreign-legal-process", [rec("1a")], facts(grant(), revoked=True)),
        (SVC["VN"], "billing", [rec("1a"), rec("2a", subject="b")], NONE),
    ] * 3
    for principal, purpose, records, g in requests:
        cold = _point(now).decide(principal, purpose, records, g)
        hot = warm.decide(principal, purpose, records, g)
        assert (hot.allow, hot.reason, hot.policies) == (cold.allow, cold.reason, cold.policies)
    assert 0 < len(warm._state.memo) <= 8


def test_activation_drops_the_memo_and_applies_pack_caps() -> None:
    now = [0.0]
    point = _point(now, request_limit=1000, foreign_limit=1000)
    point.decide(SVC["VN"], "billing", [rec("1a")], NONE)
    assert point._state.memo
    point.activate(default_pack())
    assert not point._state.memo
    assert point.guard.limits.request_limit == 50
    assert point.guard.limits.foreign_limit == 100


JUSTIFICATIONS = {
    "support purpose": (Role.SERVICE, "customer-support", False, "customer-initiated-support"),
    "billing purpose": (Role.SERVICE, "billing", False, "service-operation"),
    "own request": (Role.SUBJECT, "own-request", False, "subject-request"),
    "home authority": (Role.AUTHORITY, "tax-audit", False, "domestic-legal-process"),
    "foreign authority": (Role.AUTHORITY, "tax-audit", True, "foreign-legal-process"),
    "named code": (Role.SERVICE, "emergency", False, "emergency"),
    "analyst": (Role.ANALYST, "research", False, "service-operation"),
}


@pytest.mark.parametrize("name", list(JUSTIFICATIONS))
def test_default_justification(name: str) -> None:
    role, purpose, foreign, expected = JUSTIFICATIONS[name]
    assert default_justification(role, purpose, foreign) == expected


def test_justification_codes_are_a_closed_set() -> None:
    assert parse_justification("emergency") is Justification.EMERGENCY
    with pytest.raises(BadRequest, match="unknown justification 'curiosity'"):
        parse_justification("curiosity")
    assert len(Justification) == 7


def test_explanation_names_rules_reasons_grant_and_review() -> None:
    point = _point([0.0])
    g = facts(grant(approver="PL"))  # approved by a state that is not the subject's home
    decision = point.decide(
        AUTH["US"], "provider-disclosure", [rec("1a")], g, Justification.COMPELLED_THIRD_PARTY
    )
    entry = decision.to_entry(123)
    explained = explain_entry(
        entry.fields, index=7, time_ms=123, principal=entry.principal, pack=point.pack
    )
    text = explained.to_text()
    assert "was DENIED" in text
    assert "justified as compelled-third-party" in text
    assert "compelled-order-bypassing-judicial-assistance: a compelled foreign demand" in text
    assert f"grant with digest {g.digest}" in text
    assert "queued for legal review" in text
    assert explained.to_dict()["rules"][0]["id"] == "compelled-order-bypassing-judicial-assistance"
    with pytest.raises(BadRequest, match="is not a decision"):
        explain_entry({"kind": "ingest"}, index=1, time_ms=0, principal="x", pack=point.pack)
