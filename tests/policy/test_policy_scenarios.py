"""Decision scenarios as a table: principal x subject jurisdiction x purpose x grant x size.

Every row names the principle of DESIGN.md's table it exercises, the expected decision,
words of the expected reason and, where a rule decides, the rule's @id. The last test
checks that every principle has rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from policy_cases import (
    ANALYST,
    AUDITOR,
    AUTH,
    LAN,
    MINH,
    NOW,
    OPERATOR,
    PURPOSES,
    SVC,
    cosigned,
    facts,
    forged,
    grant,
    random_id,
    rec,
    signed_pack,
    who,
)

from sovra.model import Principal, Role
from sovra.policy import (
    BulkGuard,
    BulkLimits,
    DecisionPoint,
    GrantFacts,
    Justification,
    RecordFacts,
    default_pack,
    shipped_bundle,
)

PRINCIPLES = {
    "no-backdoors",
    "minimisation",
    "sovereignty",
    "judicial-assistance",
    "no-mass-surveillance",
    "global-rules",
    "untrusted-cloud",
}
LOCAL = replace(
    shipped_bundle("gdsi"),
    parameters={"regions": {"VN": ["ap-southeast-vn"]}, "retention_days": {"PL": 30}},
)
PACKS = {
    "gdsi": default_pack(),
    "local": LOCAL.compile(),
    "gdpr": signed_pack("gdpr-chapter-v"),
    "pipl": signed_pack("pipl-cross-border"),
}
EMAIL = frozenset({"email"})
PHONE = frozenset({"phone"})
FLP = "foreign-legal-process"

G = {
    "none": facts(None),
    "valid": facts(grant()),
    "two-subjects": facts(grant(subjects=("lan", "minh"))),
    "expired": facts(grant(), now=NOW + 10),
    "edge-last-second": facts(grant(), now=NOW + 9),
    "not-yet-valid": facts(grant(), now=NOW - 11),
    "edge-first-second": facts(grant(), now=NOW - 10),
    "revoked": facts(grant(), revoked=True),
    "forged": facts(forged(grant())),
    "other-grantee": facts(grant(grantee="authority-cn", grantee_jurisdiction="CN")),
    "other-purpose": facts(grant(purpose="tax-audit")),
    "pl-approved": facts(grant(approver="PL")),
    "email-only": facts(grant(categories=("email",))),
    "max-1": facts(grant(subjects=("lan", "minh"), max_records=1)),
    "bulk-uncosigned": facts(grant(subjects=tuple(f"s{i}" for i in range(5)))),
    "bulk-cosigned": facts(cosigned(grant(subjects=tuple(f"s{i}" for i in range(5))), "PL")),
    "cn-approved": facts(grant(approver="CN", subjects=("wei",))),
    "pl-anna": facts(grant(approver="PL", subjects=("anna",))),
}


@dataclass
class Case:
    principle: str
    principal: Principal
    purpose: str
    records: list[RecordFacts]
    allow: bool
    reason: str
    policies: tuple[str, ...] | None = None
    grant: str = "none"
    justification: str | None = None
    pack: str = "gdsi"
    review: str = ""
    extra: dict[str, object] = field(default_factory=dict)


VN1 = [rec(1)]
PL1 = [rec(1, "PL", "anna")]
CN1 = [rec(1, "CN", "wei")]
DE1 = [rec(1, "DE", "hans")]
HOME = "home-service-declared-purpose"
DAY = 86400
IN_VN = [RecordFacts("r-1", rec(1).subject, "VN", region="ap-southeast-vn")]
OUT_VN = [RecordFacts("r-1", rec(1).subject, "VN", region="us-east")]
FRESH_PL = [RecordFacts("r-1", PL1[0].subject, "PL", created_s=NOW - 29 * DAY)]
OLD_PL = [RecordFacts("r-1", PL1[0].subject, "PL", created_s=NOW - 31 * DAY)]
JA = "judicial-assistance-grant"

CASES: dict[str, Case] = {
    # -- sovereignty: home parties under home rules ---------------------------------------
    "home service, support": Case(
        "sovereignty", SVC["VN"], "customer-support", VN1, True, "home jurisdiction", (HOME,)
    ),
    "home service, billing": Case(
        "sovereignty", SVC["PL"], "billing", PL1, True, "allows", (HOME,)
    ),
    "home service, undeclared purpose": Case(
        "sovereignty",
        SVC["VN"],
        "marketing",
        VN1,
        False,
        "does not allow services the purpose 'marketing'",
    ),
    "home service, subject-request code": Case(
        "sovereignty",
        SVC["VN"],
        "billing",
        VN1,
        False,
        "not under justification subject-request",
        justification="subject-request",
    ),
    "home service, domestic process code": Case(
        "sovereignty",
        SVC["VN"],
        "billing",
        VN1,
        False,
        "customer-initiated-support or",
        justification="domestic-legal-process",
    ),
    "home service, emergency": Case(
        "sovereignty",
        SVC["VN"],
        "emergency",
        VN1,
        True,
        "emergency",
        ("home-emergency",),
        review="after-the-fact",
    ),
    "home authority, domestic process": Case(
        "sovereignty",
        AUTH["VN"],
        "domestic-legal-process",
        VN1,
        True,
        "domestic legal process",
        ("home-authority-domestic-process",),
    ),
    "home authority, explicit code, other purpose": Case(
        "sovereignty",
        AUTH["PL"],
        "tax-audit",
        PL1,
        True,
        "domestic legal process",
        justification="domestic-legal-process",
    ),
    "home authority, service-operation code": Case(
        "sovereignty", AUTH["PL"], "billing", PL1, False, "domestic-legal-process or emergency"
    ),
    "home authority, emergency": Case(
        "sovereignty",
        AUTH["DE"],
        "emergency",
        DE1,
        True,
        "emergency",
        ("home-emergency",),
        review="after-the-fact",
    ),
    "subject, own data": Case(
        "sovereignty", LAN, "own-request", VN1, True, "her own data", ("subject-own-data",)
    ),
    "subject, own data, two records": Case(
        "sovereignty", LAN, "own-request", [rec(1), rec(2)], True, "her own data"
    ),
    "subject, someone else's": Case(
        "sovereignty", MINH, "own-request", VN1, False, "no policy permits a subject"
    ),
    "subject, own and someone else's": Case(
        "sovereignty",
        LAN,
        "own-request",
        [rec(1), rec(2, subject="minh")],
        False,
        "no policy permits",
    ),
    "subject, wrong code": Case(
        "sovereignty",
        LAN,
        "own-request",
        VN1,
        False,
        "no policy",
        justification="service-operation",
    ),
    "analyst, home data": Case(
        "sovereignty", ANALYST, "service-operation", VN1, False, "no policy permits a analyst"
    ),
    "auditor reads no records": Case(
        "sovereignty", AUDITOR, "service-operation", PL1, False, "no policy permits a auditor"
    ),
    "residency: record in an allowed region": Case(
        "sovereignty", SVC["VN"], "billing", IN_VN, True, "home jurisdiction", (HOME,), pack="local"
    ),
    "residency: record stored elsewhere": Case(
        "sovereignty",
        SVC["VN"],
        "billing",
        OUT_VN,
        False,
        "region its home jurisdiction",
        ("residency-region-not-allowed",),
        pack="local",
    ),
    "residency: stored elsewhere, own data": Case(
        "sovereignty",
        who("subject-lan", "VN", Role.SUBJECT, rec(1).subject),
        "own-request",
        OUT_VN,
        False,
        "does not allow",
        pack="local",
    ),
    "retention: within the period": Case(
        "sovereignty", SVC["PL"], "billing", FRESH_PL, True, "home jurisdiction", pack="local"
    ),
    "retention: past the period": Case(
        "sovereignty",
        SVC["PL"],
        "billing",
        OLD_PL,
        False,
        "retention period",
        ("retention-period-over",),
        pack="local",
    ),
    "retention: past the period, its subject": Case(
        "sovereignty",
        who("subject-anna", "PL", Role.SUBJECT, PL1[0].subject),
        "own-request",
        OLD_PL,
        True,
        "her own data",
        pack="local",
    ),
    "retention: unknown age": Case(
        "sovereignty",
        AUTH["PL"],
        "domestic-legal-process",
        PL1,
        False,
        "retention period",
        pack="local",
    ),
    # -- judicial assistance ----------------------------------------------------------------
    "foreign service": Case(
        "judicial-assistance",
        SVC["PL"],
        "billing",
        VN1,
        False,
        "foreign access needs judicial assistance",
    ),
    "foreign service, support": Case(
        "judicial-assistance",
        SVC["US"],
        "customer-support",
        PL1,
        False,
        "foreign access needs judicial assistance",
    ),
    "foreign authority, no grant": Case(
        "judicial-assistance", AUTH["US"], FLP, VN1, False, "no legal-assistance grant"
    ),
    "foreign authority, grant": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        True,
        "legal-assistance grant signed",
        (JA,),
        "valid",
    ),
    "grant names both subjects": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        [rec(1), rec(2, subject="minh")],
        True,
        "legal-assistance grant",
        (JA,),
        "two-subjects",
    ),
    "grant, expired": Case(
        "judicial-assistance", AUTH["US"], FLP, VN1, False, "expired at", grant="expired"
    ),
    "grant, last valid second": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        True,
        "legal-assistance grant",
        (JA,),
        "edge-last-second",
    ),
    "grant, not yet valid": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        False,
        "not valid before",
        grant="not-yet-valid",
    ),
    "grant, first valid second": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        True,
        "legal-assistance grant",
        (JA,),
        "edge-first-second",
    ),
    "grant, revoked": Case(
        "judicial-assistance", AUTH["US"], FLP, VN1, False, "revoked", grant="revoked"
    ),
    "grant, forged": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        False,
        "not signed by the VN authority",
        grant="forged",
    ),
    "grant, another subject": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        [rec(1, subject="minh")],
        False,
        "does not name the subject",
        grant="valid",
    ),
    "grant, one of two records uncovered": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        [rec(1), rec(2, subject="minh")],
        False,
        "does not name the subject of record r-2",
        grant="valid",
    ),
    "grant, used by another authority": Case(
        "judicial-assistance",
        AUTH["CN"],
        FLP,
        VN1,
        False,
        "was issued to authority-us",
        grant="valid",
    ),
    "grant, issued to another authority": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        False,
        "issued to authority-cn",
        grant="other-grantee",
    ),
    "grant, other purpose": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        False,
        "covers purpose 'tax-audit'",
        grant="other-purpose",
    ),
    "grant, request purpose differs": Case(
        "judicial-assistance", AUTH["US"], "tax-audit", VN1, False, "covers purpose", grant="valid"
    ),
    "grant, approved by another state": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        False,
        "approved by PL, not by VN",
        grant="pl-approved",
    ),
    "grant, presented by a service": Case(
        "judicial-assistance",
        SVC["US"],
        FLP,
        VN1,
        False,
        "foreign access needs judicial assistance",
        grant="valid",
    ),
    "grant, wrong justification": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        False,
        "only through judicial assistance",
        grant="valid",
        justification="service-operation",
    ),
    "foreign authority, domestic code": Case(
        "judicial-assistance",
        AUTH["US"],
        "domestic-legal-process",
        VN1,
        False,
        "only through judicial assistance",
    ),
    "grant, max records kept": Case(
        "judicial-assistance", AUTH["US"], FLP, VN1, True, "legal-assistance grant", (JA,), "max-1"
    ),
    "grant, max records exceeded": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        [rec(1), rec(2, subject="minh")],
        False,
        "the grant allows at most 1",
        grant="max-1",
    ),
    "compelled foreign order, no grant": Case(
        "judicial-assistance",
        AUTH["US"],
        "provider-disclosure",
        VN1,
        False,
        "bypasses judicial assistance",
        ("compelled-order-bypassing-judicial-assistance",),
        justification="compelled-third-party",
        review="legal",
    ),
    "compelled foreign order, by a service": Case(
        "judicial-assistance",
        SVC["US"],
        "provider-disclosure",
        PL1,
        False,
        "queued for legal review",
        ("compelled-order-bypassing-judicial-assistance",),
        justification="compelled-third-party",
        review="legal",
    ),
    "compelled foreign order, under a grant": Case(
        "judicial-assistance",
        AUTH["US"],
        FLP,
        VN1,
        False,
        "only through judicial assistance",
        grant="valid",
        justification="compelled-third-party",
    ),
    "compelled domestic order": Case(
        "judicial-assistance",
        AUTH["VN"],
        "court-order",
        VN1,
        False,
        "never auto-allowed",
        ("compelled-order-needs-review",),
        justification="compelled-third-party",
        review="legal",
    ),
    "foreign emergency": Case(
        "judicial-assistance",
        SVC["US"],
        "emergency",
        VN1,
        False,
        "foreign access needs judicial assistance",
    ),
    # -- minimisation: grants scoped to data categories --------------------------------------
    "grant categories cover the record": Case(
        "minimisation",
        AUTH["US"],
        FLP,
        [rec(1, kinds=EMAIL)],
        True,
        "legal-assistance grant",
        (JA,),
        "email-only",
    ),
    "grant categories miss a kind": Case(
        "minimisation",
        AUTH["US"],
        FLP,
        [rec(1, kinds=EMAIL | PHONE)],
        False,
        "covers data categories email, not email, phone",
        grant="email-only",
    ),
    "grant categories miss plain records": Case(
        "minimisation", AUTH["US"], FLP, VN1, False, "not plain", grant="email-only"
    ),
    "unrestricted grant covers any kind": Case(
        "minimisation",
        AUTH["US"],
        FLP,
        [rec(1, kinds=PHONE)],
        True,
        "legal-assistance grant",
        (JA,),
        "valid",
    ),
    # -- no mass surveillance -----------------------------------------------------------------
    "bulk at the per-request cap": Case(
        "no-mass-surveillance",
        SVC["VN"],
        "billing",
        [rec(random_id(i), subject=f"s{i}") for i in range(3)],
        True,
        "home jurisdiction",
        (HOME,),
    ),
    "bulk over the per-request cap": Case(
        "no-mass-surveillance",
        SVC["VN"],
        "billing",
        [rec(random_id(i), subject=f"s{i}") for i in range(4)],
        False,
        "bulk-collection limit",
        ("bulk-collection-per-request",),
    ),
    "many records of one subject": Case(
        "no-mass-surveillance",
        SVC["VN"],
        "billing",
        [rec(random_id(i)) for i in range(8)],
        True,
        "home jurisdiction",
    ),
    "foreign authority over the cap with a grant": Case(
        "no-mass-surveillance",
        AUTH["US"],
        FLP,
        [rec(random_id(i), subject=f"s{i}") for i in range(5)],
        False,
        "bulk-collection limit",
        ("bulk-collection-per-request",),
        "bulk-cosigned",
    ),
    "bulk-scope grant without co-signature": Case(
        "no-mass-surveillance",
        AUTH["US"],
        FLP,
        [rec(1, subject="s1")],
        False,
        "needs 1 co-signing authority besides VN; it has 0",
        grant="bulk-uncosigned",
    ),
    "bulk-scope grant co-signed": Case(
        "no-mass-surveillance",
        AUTH["US"],
        FLP,
        [rec(1, subject="s1")],
        True,
        "legal-assistance grant",
        (JA,),
        "bulk-cosigned",
    ),
    "sequential record ids": Case(
        "no-mass-surveillance",
        SVC["VN"],
        "billing",
        [rec(i) for i in range(1, 5)],
        False,
        "enumeration",
        ("enumeration-detected",),
    ),
    "operator over the cap": Case(
        "no-mass-surveillance",
        OPERATOR,
        "service-operation",
        [rec(random_id(i), subject=f"s{i}") for i in range(4)],
        False,
        "bulk-collection limit",
    ),
    "no records": Case("no-mass-surveillance", SVC["VN"], "billing", [], False, "names no records"),
    # -- no backdoors / untrusted cloud ---------------------------------------------------------
    "operator": Case(
        "no-backdoors",
        OPERATOR,
        "service-operation",
        PL1,
        False,
        "may never read",
        ("operator-never-reads",),
    ),
    "operator, emergency": Case(
        "no-backdoors",
        OPERATOR,
        "emergency",
        PL1,
        False,
        "may never read",
        ("operator-never-reads",),
    ),
    "operator, as a compelled request": Case(
        "no-backdoors",
        OPERATOR,
        "court-order",
        PL1,
        False,
        "may never read",
        justification="compelled-third-party",
        review="legal",
    ),
    "operator, foreign data": Case(
        "untrusted-cloud",
        OPERATOR,
        "billing",
        VN1,
        False,
        "may never read",
        ("operator-never-reads",),
    ),
    "operator, with a grant": Case(
        "untrusted-cloud", OPERATOR, FLP, VN1, False, "may never read", grant="valid"
    ),
    # -- global rules: packs that took effect through k-of-n signing --------------------------
    "GDPR: adequacy transfer": Case(
        "global-rules",
        SVC["DE"],
        "billing",
        PL1,
        True,
        "GDPR Art. 45",
        ("gdpr-art45-adequacy",),
        pack="gdpr",
    ),
    "GDPR: standard clauses transfer": Case(
        "global-rules",
        SVC["US"],
        "customer-support",
        PL1,
        True,
        "GDPR Art. 46(2)(c)",
        ("gdpr-art46-standard-clauses",),
        pack="gdpr",
    ),
    "GDPR: no transfer basis": Case(
        "global-rules",
        SVC["VN"],
        "billing",
        PL1,
        False,
        "no transfer basis from PL to VN",
        pack="gdpr",
    ),
    "GDPR: transfer for an undeclared purpose": Case(
        "global-rules", SVC["US"], "marketing", DE1, False, "foreign access", pack="gdpr"
    ),
    "GDPR: vital interests": Case(
        "global-rules",
        SVC["VN"],
        "emergency",
        DE1,
        True,
        "Art. 49(1)(f)",
        ("gdpr-art49-vital-interests",),
        pack="gdpr",
        review="after-the-fact",
    ),
    "GDPR: foreign authority without MLA": Case(
        "global-rules",
        AUTH["US"],
        FLP,
        PL1,
        False,
        "GDPR Art. 48",
        ("gdpr-art48-foreign-authority-without-mla",),
        pack="gdpr",
    ),
    "GDPR: foreign authority under the home grant": Case(
        "global-rules",
        AUTH["US"],
        FLP,
        PL1,
        True,
        "legal-assistance grant",
        (JA,),
        "pl-anna",
        pack="gdpr",
    ),
    "GDPR: non-EU data untouched": Case(
        "global-rules", SVC["VN"], "billing", VN1, True, "home jurisdiction", (HOME,), pack="gdpr"
    ),
    "PIPL: standard contract on file": Case(
        "global-rules",
        SVC["VN"],
        "billing",
        CN1,
        True,
        "PIPL Art. 38",
        ("pipl-art38-provision-abroad",),
        pack="pipl",
    ),
    "PIPL: no standard contract": Case(
        "global-rules",
        SVC["US"],
        "billing",
        CN1,
        False,
        "foreign access needs judicial assistance",
        pack="pipl",
    ),
    "PIPL: foreign authority without approval": Case(
        "global-rules",
        AUTH["US"],
        FLP,
        CN1,
        False,
        "PIPL Art. 41",
        ("pipl-art41-foreign-judicial-request",),
        pack="pipl",
    ),
    "PIPL: foreign authority with CN approval": Case(
        "global-rules",
        AUTH["US"],
        FLP,
        CN1,
        True,
        "legal-assistance grant",
        (JA,),
        "cn-approved",
        pack="pipl",
    ),
    "PIPL: compelled foreign order": Case(
        "global-rules",
        SVC["US"],
        "provider-disclosure",
        CN1,
        False,
        "PIPL Art. 41",
        justification="compelled-third-party",
        pack="pipl",
        review="legal",
    ),
    "PIPL: home service unchanged": Case(
        "global-rules", SVC["CN"], "billing", CN1, True, "home jurisdiction", (HOME,), pack="pipl"
    ),
}


def _point(pack: str) -> DecisionPoint:
    guard = BulkGuard(
        BulkLimits(
            request_limit=3,
            window_limit=100,
            window_s=60,
            jurisdiction_limit=1000,
            foreign_limit=50,
            enumeration_run=4,
        ),
        lambda: float(NOW),
    )
    return DecisionPoint(PACKS[pack], guard, PURPOSES)


@pytest.mark.parametrize("name", list(CASES))
def test_scenario(name: str) -> None:
    case = CASES[name]
    point = _point(case.pack)
    code = None if case.justification is None else Justification(case.justification)
    grant_facts: GrantFacts = G[case.grant]
    decision = point.decide(case.principal, case.purpose, case.records, grant_facts, code)
    assert decision.allow is case.allow, decision.reason
    assert case.reason in decision.reason, decision.reason
    if case.policies is not None:
        assert decision.policies == case.policies
    assert decision.review == case.review
    assert decision.records == tuple(r.record_id for r in case.records)
    assert decision.grant == grant_facts.digest
    assert decision.justification
    if case.review:
        assert [r.decision_id for r in point.reviews()] == [decision.decision_id]


def test_the_table_is_large_and_covers_every_principle() -> None:
    assert len(CASES) >= 60
    assert {c.principle for c in CASES.values()} == PRINCIPLES
    assert {c.pack for c in CASES.values()} == set(PACKS)
    sizes = {min(len(c.records), 4) for c in CASES.values()}
    assert sizes == {0, 1, 2, 3, 4}
