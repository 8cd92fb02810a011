"""One place decides: every authorization is a decision of the policy stage, logged.

Over-limit selections, the review queue and the alerts, grants, pack activation, erasure,
reports, explanations and the ingest role are decided by the active pack's rules (or, for
an over-limit selection, the decision point's own rule) and logged, allow and deny alike,
with their reason and the rules that decided them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from policy_cases import Clock

from sovra.deployment import Deployment
from sovra.errors import BadRequest, Denied
from sovra.model import Grant, LogEntry, Role
from sovra.policy import Envelope, shipped_bundle, sign_grant, sign_pack

ANNA = "anna@example.pl"
LIMIT = 3


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("one-place") / "deployment"
    Deployment.init(root, origin="sovra.test/one-place", custodians="in-process")
    config = root / "sovra.toml"
    text = config.read_text()
    assert "max_records_per_request = 10000" in text
    config.write_text(
        text.replace("max_records_per_request = 10000", f"max_records_per_request = {LIMIT}")
    )
    return root


@pytest.fixture
def dep(template: Path, tmp_path: Path) -> Iterator[Deployment]:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    d = Deployment.open(root, clock=Clock())
    anna = d.gateway.commitment("PL", ANNA)
    d.register("subject-anna", "PL", Role.SUBJECT, subject=anna)
    d.register("analyst-pl", "PL", Role.ANALYST)
    yield d
    d.close()


def _who(dep: Deployment, pid: str):
    return dep.store.get_principal(pid)


def _entry(dep: Deployment, index: int | None) -> LogEntry:
    assert index is not None, "a refusal without a log entry"
    return LogEntry.from_bytes(dep.gateway.log.entry(index))


def _ingest(dep: Deployment, n: int, subject: str = ANNA) -> list[str]:
    svc = _who(dep, "svc-pl")
    return [
        dep.gateway.ingest(
            svc, subject_id=subject, jurisdiction="PL", content=f"note {i}"
        ).record_id
        for i in range(n)
    ]


def _decisions_since(dep: Deployment, size: int) -> list[LogEntry]:
    entries = [
        LogEntry.from_bytes(dep.gateway.log.entry(i)) for i in range(size, dep.gateway.log.size)
    ]
    return [e for e in entries if e.kind == "decision"]


# -- over-limit selections ---------------------------------------------------------------


@pytest.mark.parametrize(
    "selection",
    ["every record of the jurisdiction", "record ids", "subjects", "records of the subjects"],
)
def test_a_selection_over_the_cap_is_a_logged_deny(dep: Deployment, selection: str) -> None:
    ids = _ingest(dep, LIMIT + 1)
    target: dict[str, object] = {
        "every record of the jurisdiction": {"jurisdiction": "PL"},
        "record ids": {"record_ids": ids},
        "subjects": {"subjects": [("PL", f"s{i}@example.pl") for i in range(LIMIT + 1)]},
        "records of the subjects": {"subjects": [("PL", ANNA)]},
    }[selection]
    us = _who(dep, "authority-us")
    with pytest.raises(Denied, match=f"bulk: selection over {LIMIT} records") as info:
        dep.gateway.access(us, purpose="foreign-legal-process", **target)  # type: ignore[arg-type]
    entry = _entry(dep, info.value.log_index)
    assert entry.kind == "decision"
    assert entry.principal == "authority-us"
    assert entry.fields["effect"] == "deny"
    assert entry.fields["reason"] == f"bulk: selection over {LIMIT} records"
    assert entry.fields["policies"] == ["bulk-selection-over-limit"]
    # the largest grab raises a bulk alert, like the guard's refusals
    alerts = dep.governance.alerts(_who(dep, "auditor"))
    assert [a.decision_id for a in alerts] == [entry.fields["decision_id"]]
    explained = dep.governance.explain(_who(dep, "auditor"), entry.fields["decision_id"])
    assert explained.rules[0][0] == "bulk-selection-over-limit"
    assert "bulk collection" in explained.rules[0][1]


def test_a_sealed_selection_over_the_cap_is_a_logged_deny_too(dep: Deployment) -> None:
    _ingest(dep, LIMIT + 1)
    with pytest.raises(Denied, match="bulk: selection over") as info:
        dep.gateway.access_sealed(
            _who(dep, "authority-pl"),
            recipient=bytes(range(1, 33)),
            purpose="law-enforcement",
            jurisdiction="PL",
        )
    assert _entry(dep, info.value.log_index).fields["effect"] == "deny"


def test_a_selection_at_the_cap_is_decided_as_usual(dep: Deployment) -> None:
    _ingest(dep, LIMIT)
    res = dep.gateway.access(
        _who(dep, "authority-pl"),
        purpose="law-enforcement",
        jurisdiction="PL",
        justification="domestic-legal-process",
    )
    assert len(res.records) == LIMIT


# -- oversight: the review queue and the alerts --------------------------------------------


@pytest.mark.parametrize("what", ["reviews", "alerts"])
@pytest.mark.parametrize("who", ["svc-pl", "analyst-pl", "subject-anna"])
def test_oversight_refusals_are_decided_and_logged(dep: Deployment, what: str, who: str) -> None:
    read = getattr(dep.governance, what)
    with pytest.raises(Denied, match="operator, authorities and auditors") as info:
        read(_who(dep, who))
    entry = _entry(dep, info.value.log_index)
    assert (entry.principal, entry.fields["effect"]) == (who, "deny")
    assert entry.fields["action"] == f"view-{what}"


@pytest.mark.parametrize("what", ["reviews", "alerts"])
@pytest.mark.parametrize("who", ["operator", "authority-pl", "auditor"])
def test_oversight_allows_are_logged_with_their_rule(dep: Deployment, what: str, who: str) -> None:
    size = dep.gateway.log.size
    getattr(dep.governance, what)(_who(dep, who))
    (entry,) = _decisions_since(dep, size)
    assert (entry.principal, entry.fields["effect"]) == (who, "allow")
    assert entry.fields["policies"] == [
        {"reviews": "review-queue-for-oversight", "alerts": "bulk-alerts-for-oversight"}[what]
    ]


# -- grants, erasure, reports, explanations, ingest -----------------------------------------


def _grant(dep: Deployment, clock_now: float, grant_id: str = "g-1", **change: object) -> Grant:
    fields: dict[str, object] = dict(
        grant_id=grant_id,
        grantee="authority-us",
        grantee_jurisdiction="US",
        approver="PL",
        subjects=(ANNA,),
        purpose="foreign-legal-process",
        legal_basis="MLA 2026/1",
        not_before=int(clock_now) - 10,
        not_after=int(clock_now) + 86400,
    )
    fields.update(change)
    return sign_grant(Grant(**fields), dep.authority_key(str(fields["approver"])))  # type: ignore[arg-type]


def test_grant_registration_show_and_revocation_are_decided_and_logged(dep: Deployment) -> None:
    gov = dep.governance
    grant = _grant(dep, 1_790_000_000.0)
    receipt = gov.register_grant(_who(dep, "authority-pl"), grant)
    logged = _entry(dep, receipt.index)
    allowed = _entry(dep, receipt.index - 1)
    assert logged.fields["decision_id"] == allowed.fields["decision_id"]
    assert allowed.fields["policies"] == ["grant-signed-by-its-approver"]
    assert allowed.fields["subjects"] == [dep.gateway.commitment("PL", ANNA)]

    # a grant names subjects: shown to its parties and oversight, refused (logged) to others
    for who in ("authority-us", "authority-pl", "auditor", "operator"):
        assert gov.grant_status(_who(dep, who), "g-1").grant == grant
    for who in ("svc-pl", "authority-vn", "analyst-pl"):
        with pytest.raises(Denied, match="shown to its grantee") as info:
            gov.grant_status(_who(dep, who), "g-1")
        assert _entry(dep, info.value.log_index).fields["action"] == "view-grant"

    with pytest.raises(Denied, match="only PL's authority, or a co-signing one, may") as info:
        gov.revoke_grant(_who(dep, "authority-us"), "g-1")
    assert _entry(dep, info.value.log_index).fields["effect"] == "deny"
    revoked = gov.revoke_grant(_who(dep, "authority-pl"), "g-1")
    assert (revoked.outcome, revoked.cosigner, revoked.grant_id) == ("revoked", None, "g-1")
    receipt = revoked.receipt
    assert _entry(dep, receipt.index - 1).fields["policies"] == ["grant-revoked-by-its-approver"]


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("subject-anna", True),
        ("authority-pl", True),
        ("authority-us", False),
        ("svc-pl", False),
        ("operator", False),
        ("auditor", False),
        ("analyst-pl", False),
    ],
)
@pytest.mark.parametrize("what", ["subject_report", "shred"])
def test_erasure_and_reports_are_decided_and_logged(
    dep: Deployment, who: str, allowed: bool, what: str
) -> None:
    _ingest(dep, 1)
    size = dep.gateway.log.size
    act = getattr(dep.governance, what)
    if allowed:
        act(_who(dep, who), jurisdiction="PL", subject_id=ANNA)
        entry = _decisions_since(dep, size)[0]
        assert entry.fields["effect"] == "allow"
    else:
        with pytest.raises(Denied, match="the subject herself or her home authority") as info:
            act(_who(dep, who), jurisdiction="PL", subject_id=ANNA)
        entry = _entry(dep, info.value.log_index)
        assert entry.fields["effect"] == "deny"
    assert entry.principal == who
    assert entry.fields["action"] == {"subject_report": "report", "shred": "shred"}[what]
    # logged under her commitment: her own report shows who asked, allowed or not
    assert entry.fields["subjects"] == [dep.gateway.commitment("PL", ANNA)]


def test_explanations_are_logged_and_explain_governance_decisions(dep: Deployment) -> None:
    with pytest.raises(Denied) as info:
        dep.governance.reviews(_who(dep, "svc-pl"))
    denied = _entry(dep, info.value.log_index)
    size = dep.gateway.log.size
    explained = dep.governance.explain(_who(dep, "analyst-pl"), denied.fields["decision_id"])
    (allowed,) = _decisions_since(dep, size)
    assert (allowed.fields["action"], allowed.principal) == ("explain", "analyst-pl")
    assert allowed.fields["policies"] == ["decisions-explained-to-anyone"]
    text = explained.to_text()
    assert "svc-pl asked to view-reviews (a governance action)" in text
    assert "was DENIED" in text


@pytest.mark.parametrize("who", ["authority-pl", "auditor", "analyst-pl", "subject-anna"])
def test_ingest_refusals_are_decided_by_the_pack_and_logged(dep: Deployment, who: str) -> None:
    with pytest.raises(Denied, match="may not ingest records") as info:
        dep.gateway.ingest(_who(dep, who), subject_id=ANNA, jurisdiction="PL", content="x")
    entry = _entry(dep, info.value.log_index)
    assert (entry.principal, entry.fields["action"], entry.fields["effect"]) == (
        who,
        "ingest",
        "deny",
    )


# -- the pack decides ----------------------------------------------------------------------


def _pack(dep: Deployment, version: int, policies: str) -> Envelope:
    bundle = replace(shipped_bundle("gdsi"), version=version, policies=policies)
    envelope = Envelope.wrap(bundle)
    for j in ("PL", "DE", "VN"):
        envelope = sign_pack(envelope, j, dep.authority_key(j))
    return envelope


def test_governance_follows_the_active_pack(dep: Deployment) -> None:
    """A pack signed by k of n that narrows the review queue to auditors is obeyed at once."""
    gov = dep.governance
    gov.reviews(_who(dep, "authority-pl"))
    policies = shipped_bundle("gdsi").policies.replace(
        '["operator", "authority", "auditor"].contains(principal.role) };\n\n'
        '@id("bulk-alerts-for-oversight")',
        'principal.role == "auditor" };\n\n@id("bulk-alerts-for-oversight")',
    )
    assert policies != shipped_bundle("gdsi").policies
    gov.activate_policy(_who(dep, "operator"), _pack(dep, 2, policies))
    with pytest.raises(Denied) as info:
        gov.reviews(_who(dep, "authority-pl"))
    assert _entry(dep, info.value.log_index).fields["action"] == "view-reviews"
    gov.reviews(_who(dep, "auditor"))


def test_a_pack_that_lets_no_one_activate_a_later_pack_is_refused(dep: Deployment) -> None:
    gov = dep.governance
    start = shipped_bundle("gdsi").policies.index('@id("pack-activated-by-operator-or-authority")')
    end = shipped_bundle("gdsi").policies.index("// The log is public")
    policies = shipped_bundle("gdsi").policies[:start] + shipped_bundle("gdsi").policies[end:]
    size = dep.gateway.log.size
    with pytest.raises(BadRequest, match="lets no one activate a later pack"):
        gov.activate_policy(_who(dep, "operator"), _pack(dep, 2, policies))
    assert dep.gateway.log.size == size
    assert dep.gateway.decisions.pack.version == 1


def test_a_custodians_refusal_after_a_logged_allow_is_logged_too(walkable: Path) -> None:
    """The custodian checks the allow again; when it says no, that refusal is on the record.

    Here the gateway's clock runs 15 minutes behind its custodian's (a process of its own,
    on the wall clock), so every allow reaches the custodian stale.
    """
    root = walkable / "dep"
    Deployment.init(root, jurisdictions=["PL"])
    dep = Deployment.open(root, clock=lambda: time.time() - 900)
    try:
        svc = _who(dep, "svc-pl")
        rid = dep.gateway.ingest(svc, subject_id=ANNA, jurisdiction="PL", content="x").record_id
        with pytest.raises(Denied, match="over the 300000 ms limit") as info:
            dep.gateway.access(svc, purpose="customer-support", record_ids=[rid])
        refused = _entry(dep, info.value.log_index)
        allowed = _entry(dep, (info.value.log_index or 0) - 1)
        assert (allowed.fields["effect"], refused.fields["effect"]) == ("allow", "deny")
        assert refused.principal == "svc-pl"
        assert refused.fields["reason"] == info.value.message
        assert f"decision {allowed.fields['decision_id']} had allowed it" in info.value.message
    finally:
        dep.close()
