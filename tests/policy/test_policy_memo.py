"""Memoised answers and explanations decide exactly as a fresh decision point does.

The decision point keeps Cedar's answer per fact tuple and, per set of rules that fired,
their names, reasons and review queue. A request decided from those memos MUST get the
decision a point that never saw a request gives it, and a pack activated later MUST be
explained in its own words, never in the words the memo kept for the last pack.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from policy_cases import facts, grant, rec, who
from test_policy_decisions import CASES

from sovra.model import Decision, Principal, Role
from sovra.policy import BulkGuard, BulkLimits, DecisionPoint, PolicyPack, Target, default_pack

_PURPOSES = {"VN": ["billing"], "PL": ["billing"]}


def _point() -> DecisionPoint:
    guard = BulkGuard(BulkLimits(request_limit=3, window_limit=100, window_s=60), lambda: 0.0)
    return DecisionPoint(default_pack(), guard, _PURPOSES)


def _same(decision: Decision) -> Decision:
    return replace(decision, decision_id="")


def test_every_case_decided_from_the_memos_as_by_a_fresh_point() -> None:
    warm = _point()
    for case in CASES.values():  # fill both memos with every case's answers
        warm.decide(case.principal, case.purpose, case.records, case.grant)
    for name, case in CASES.items():
        fresh = _point().decide(case.principal, case.purpose, case.records, case.grant)
        again = warm.decide(case.principal, case.purpose, case.records, case.grant)
        assert _same(again) == _same(fresh), name


def test_an_allow_over_several_records_names_each_rule_once() -> None:
    # Two records allowed by one rule each time: the rule is named once, as before.
    svc = who("svc-vn", "VN", Role.SERVICE)
    records = [rec(1), rec(2, subject="minh")]
    for point in (_point(), _point()):
        point.decide(svc, "billing", records[:1], facts(None))  # memo: one record's answer
        decision = point.decide(svc, "billing", records, facts(None))
        assert decision.allow
        assert len(decision.policies) == len(set(decision.policies)) == 1
    us = who("authority-us", "US", Role.AUTHORITY)
    granted = _point().decide(us, "foreign-legal-process", [rec(1)], facts(grant()))
    assert granted.allow and granted.grant is not None


_GOVERNANCE = [
    (who("svc-pl", "PL", Role.SERVICE), "ingest", Target(jurisdiction="PL", subjects=("a",))),
    (who("svc-pl", "PL", Role.SERVICE), "ingest", Target(jurisdiction="PL", subjects=("b", "a"))),
    (who("authority-pl", "PL", Role.AUTHORITY), "ingest", Target(jurisdiction="PL")),
    (
        who("svc-pl", "PL", Role.SERVICE),
        "ingest",
        Target(jurisdiction="PL", subjects=("a",), client_sealed=True, scan_required=True),
    ),
    (who("operator", "PL", Role.OPERATOR), "view-reviews", Target()),
    (who("auditor", "PL", Role.AUDITOR), "view-alerts", Target()),
]


@pytest.mark.parametrize("index", range(len(_GOVERNANCE)))
def test_governance_decided_from_the_memos_as_by_a_fresh_point(index: int) -> None:
    warm = _point()
    for principal, action, target in _GOVERNANCE:
        warm.decide_action(principal, action, target)
    principal, action, target = _GOVERNANCE[index]
    fresh = _point().decide_action(principal, action, target)
    assert _same(warm.decide_action(principal, action, target)) == _same(fresh)


def test_the_governance_facts_are_the_schemas_target_and_validate_against_it() -> None:
    """The facts a governance request is decided on carry exactly the attributes of the
    schema's Target, and an entity built from them passes Cedar's schema validation."""
    import cedarpy

    from sovra.policy import decide
    from sovra.policy.decide import _GovernanceFacts

    text = (Path(decide.__file__).parent / "packs" / "schema.cedarschema").read_text()
    body = re.search(r"entity Target = \{(.*?)\n\};", text, re.S)
    assert body is not None
    declared = re.findall(r"^\s*([a-z_]+):", body.group(1), re.M)
    facts = _GovernanceFacts("revoke-grant", "authority", "DE", "PL", cosigner=True)
    assert list(facts.target()) == declared
    assert _GovernanceFacts._fields[3:] == tuple(declared)
    entities = [
        {"uid": {"type": "Principal", "id": "p"}, "attrs": {"role": facts.role,
         "jurisdiction": facts.principal_jurisdiction}, "parents": []},
        {"uid": {"type": "Target", "id": "t"}, "attrs": facts.target(), "parents": []},
    ]  # fmt: skip
    request = {
        "principal": {"type": "Principal", "id": "p"},
        "action": {"type": "Action", "id": facts.action},
        "resource": {"type": "Target", "id": "t"},
        "context": {},
    }
    pack = default_pack()
    answer = cedarpy.is_authorized(request, pack.policy_set, entities, pack.schema)
    assert answer.allowed and not answer.diagnostics.errors, answer.diagnostics.errors


def _reworded(pack: PolicyPack, words: str) -> PolicyPack:
    """*pack* with every rule's reason changed, its Cedar ids and rules the same."""
    annotations = {
        pid: (name, f"{words}: {reason}") for pid, (name, reason) in pack.annotations.items()
    }
    return replace(pack, annotations=annotations)


def test_a_new_pack_is_explained_in_its_own_words() -> None:
    point = _point()
    svc: Principal = who("svc-vn", "VN", Role.SERVICE)
    ingest = Target(jurisdiction="VN", subjects=("a",))
    before = point.decide(svc, "billing", [rec(1)], facts(None))
    before_ingest = point.decide_action(svc, "ingest", ingest)
    point.activate(_reworded(point.pack, "reworded"))
    after = point.decide(svc, "billing", [rec(1)], facts(None))
    after_ingest = point.decide_action(svc, "ingest", ingest)
    assert after.reason == f"reworded: {before.reason}"
    assert after_ingest.reason == f"reworded: {before_ingest.reason}"
