"""The decision point as a table of named cases (python-tuf style datasets)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from policy_cases import KEYS, NOW, commit, facts, grant, rec, who

from sovra.errors import BadRequest
from sovra.model import Grant, Principal, Role
from sovra.policy import (
    BulkGuard,
    BulkLimits,
    DecisionPoint,
    GrantFacts,
    PolicyPack,
    RecordFacts,
    default_pack,
)


@dataclass
class Case:
    principal: Principal
    purpose: str
    records: list[RecordFacts]
    grant: GrantFacts
    allow: bool
    reason: str


US = who("authority-us", "US", Role.AUTHORITY)
CASES = {
    "home service, allowed purpose": Case(
        who("svc-vn", "VN", Role.SERVICE),
        "billing",
        [rec(1)],
        facts(None),
        True,
        "home jurisdiction",
    ),
    "home service, other purpose": Case(
        who("svc-vn", "VN", Role.SERVICE),
        "marketing",
        [rec(1)],
        facts(None),
        False,
        "does not allow services",
    ),
    "foreign service": Case(
        who("svc-pl", "PL", Role.SERVICE),
        "billing",
        [rec(1)],
        facts(None),
        False,
        "foreign access needs judicial assistance",
    ),
    "foreign authority, no grant": Case(
        US, "foreign-legal-process", [rec(1)], facts(None), False, "no legal-assistance grant"
    ),
    "foreign authority, grant": Case(
        US, "foreign-legal-process", [rec(1)], facts(grant()), True, "legal-assistance grant signed"
    ),
    "grant, expired": Case(
        US, "foreign-legal-process", [rec(1)], facts(grant(), now=NOW + 10), False, "expired"
    ),
    "grant, revoked": Case(
        US, "foreign-legal-process", [rec(1)], facts(grant(), revoked=True), False, "revoked"
    ),
    "grant, forged": Case(
        US,
        "foreign-legal-process",
        [rec(1)],
        facts(Grant(**{**grant().body(), "subjects": ("lan",)}, signature=KEYS["PL"].sign(b"x"))),
        False,
        "not signed by the VN authority",
    ),
    "grant, another subject": Case(
        US,
        "foreign-legal-process",
        [rec(1, subject="minh")],
        facts(grant()),
        False,
        "does not name the subject",
    ),
    "grant, one of two records uncovered": Case(
        US,
        "foreign-legal-process",
        [rec(1), rec(2, subject="minh")],
        facts(grant()),
        False,
        "does not name the subject",
    ),
    "grant, used by another authority": Case(
        who("authority-cn", "CN", Role.AUTHORITY),
        "foreign-legal-process",
        [rec(1)],
        facts(grant()),
        False,
        "was issued to authority-us",
    ),
    "grant, other purpose": Case(
        US, "tax-audit", [rec(1)], facts(grant()), False, "covers purpose"
    ),
    "home authority, domestic process": Case(
        who("authority-vn", "VN", Role.AUTHORITY),
        "domestic-legal-process",
        [rec(1)],
        facts(None),
        True,
        "domestic legal process",
    ),
    "subject, own data": Case(
        who("me", "VN", Role.SUBJECT, commit("VN", "lan")),
        "own-request",
        [rec(1)],
        facts(None),
        True,
        "her own data",
    ),
    "subject, someone else's": Case(
        who("me", "VN", Role.SUBJECT, commit("VN", "minh")),
        "own-request",
        [rec(1)],
        facts(None),
        False,
        "no policy",
    ),
    "operator": Case(
        who("operator", "VN", Role.OPERATOR),
        "service-operation",
        [rec(1)],
        facts(None),
        False,
        "may never read",
    ),
    "bulk over the per-request cap": Case(
        who("svc-vn", "VN", Role.SERVICE),
        "billing",
        [rec(i, subject=f"s{i}") for i in range(4)],
        facts(None),
        False,
        "bulk-collection limit",
    ),
    "no records": Case(
        who("svc-vn", "VN", Role.SERVICE), "billing", [], facts(None), False, "names no records"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_decision_table(name):
    case = CASES[name]
    guard = BulkGuard(BulkLimits(request_limit=3, window_limit=100, window_s=60), lambda: 0.0)
    point = DecisionPoint(default_pack(), guard, {"VN": ["billing"], "PL": ["billing"]})
    decision = point.decide(case.principal, case.purpose, case.records, case.grant)
    assert decision.allow is case.allow, decision.reason
    assert case.reason in decision.reason
    assert decision.records == tuple(r.record_id for r in case.records)


def test_window_budget_counts_only_allowed_requests_and_slides():
    now = [0.0]
    guard = BulkGuard(BulkLimits(request_limit=10, window_limit=3, window_s=60), lambda: now[0])
    point = DecisionPoint(default_pack(), guard, {"VN": ["billing"]})
    svc = who("svc-vn", "VN", Role.SERVICE)
    for i in range(3):
        assert point.decide(svc, "billing", [rec(i, subject=f"s{i}")], facts(None)).allow
    # re-reading a subject already in the window costs nothing
    assert point.decide(svc, "billing", [rec(0, subject="s0")], facts(None)).allow
    denied = point.decide(svc, "billing", [rec(9, subject="s9")], facts(None))
    assert not denied.allow and "sliding-window" in denied.reason
    now[0] = 61.0
    assert point.decide(svc, "billing", [rec(9, subject="s9")], facts(None)).allow


def test_pack_refuses_unannotated_invalid_and_empty_policies():
    with pytest.raises(BadRequest, match="@id and @reason"):
        PolicyPack.load("permit(principal, action, resource);")
    with pytest.raises(BadRequest, match="schema validation"):
        PolicyPack.load(
            '@id("x") @reason("y") permit(principal, action, resource) '
            "when { principal.shoe_size > 3 };"
        )
    with pytest.raises(BadRequest, match="does not parse"):
        PolicyPack.load('@id("x") @reason("y") permit(principal, action resource);')
    with pytest.raises(BadRequest, match="empty policy pack"):
        PolicyPack.load("// nothing")
