"""The policy stage inside a real deployment: justification, explain, review, grants in full,
signed activation logged with its signers, and the policy routes over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from policy_cases import Clock

from sovra.auth import make_token
from sovra.deployment import Deployment
from sovra.errors import BadRequest, ConfigError, Denied
from sovra.model import Grant, LogEntry, Role
from sovra.policy import Envelope, shipped_bundle, sign_grant, sign_pack
from sovra.server import create_app

LAN = "lan@example.vn"
ANNA = "anna@example.pl"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("policy") / "deployment"
    Deployment.init(root, origin="sovra.test/policy", custodians="in-process")
    return root


@pytest.fixture
def env(template: Path, tmp_path: Path) -> Iterator[tuple[Deployment, Clock]]:
    import shutil

    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    clock = Clock()
    dep = Deployment.open(root, clock=clock)
    yield dep, clock
    dep.close()


def _who(dep: Deployment, pid: str):
    return dep.store.get_principal(pid)


def _entry(dep: Deployment, index: int) -> LogEntry:
    return LogEntry.from_bytes(dep.gateway.log.entry(index))


def _ingest(dep: Deployment) -> tuple[str, str]:
    gw = dep.gateway
    lan = gw.ingest(_who(dep, "svc-vn"), subject_id=LAN, jurisdiction="VN", content="Lan, x")
    anna = gw.ingest(
        _who(dep, "svc-pl"), subject_id=ANNA, jurisdiction="PL", content="Anna +48 601 234 567"
    )
    return lan.record_id, anna.record_id


def _grant(dep: Deployment, clock: Clock, **change: object) -> Grant:
    fields: dict[str, object] = dict(
        grant_id="g-1",
        grantee="authority-us",
        grantee_jurisdiction="US",
        approver="VN",
        subjects=(LAN,),
        purpose="foreign-legal-process",
        legal_basis="MLA 2026/1",
        not_before=int(clock()) - 10,
        not_after=int(clock()) + 86400,
    )
    fields.update(change)
    approver = str(fields["approver"])
    return sign_grant(Grant(**fields), dep.authority_key(approver))


def test_justification_is_decided_logged_and_explained(env) -> None:
    dep, _ = env
    lan_id, _ = _ingest(dep)
    gw = dep.gateway
    res = gw.access(
        _who(dep, "svc-vn"),
        purpose="customer-support",
        record_ids=[lan_id],
        justification="customer-initiated-support",
    )
    entry = _entry(dep, res.decision_receipt.index)
    assert entry.fields["justification"] == "customer-initiated-support"
    explained = dep.governance.explain(_who(dep, "auditor"), res.decision.decision_id)
    assert explained.log_index == res.decision_receipt.index
    assert explained.rules[0][0] == "home-service-declared-purpose"
    assert "was ALLOWED" in explained.to_text()
    with pytest.raises(BadRequest, match="unknown justification"):
        gw.access(_who(dep, "svc-vn"), purpose="billing", record_ids=[lan_id], justification="x")


def test_compelled_foreign_order_is_denied_and_queued_for_review(env) -> None:
    dep, _ = env
    lan_id, _ = _ingest(dep)
    gw = dep.gateway
    with pytest.raises(Denied, match="queued for legal review") as info:
        gw.access(
            _who(dep, "authority-us"),
            purpose="provider-disclosure",
            record_ids=[lan_id],
            justification="compelled-third-party",
        )
    entry = _entry(dep, info.value.log_index or 0)
    assert entry.fields["review"] == "legal"
    queued = gw.decisions.reviews("legal")
    assert [q.decision_id for q in queued] == [entry.fields["decision_id"]]
    assert (
        "queued for legal review"
        in dep.governance.explain(_who(dep, "auditor"), entry.fields["decision_id"]).to_text()
    )


def test_grant_categories_max_records_and_immediate_revocation(env) -> None:
    dep, clock = env
    _, anna_id = _ingest(dep)
    gw = dep.gateway
    us = _who(dep, "authority-us")
    narrow = _grant(dep, clock, approver="PL", subjects=(ANNA,), categories=("email",))
    dep.governance.register_grant(_who(dep, "authority-pl"), narrow)
    with pytest.raises(Denied, match="covers data categories email, not phone"):
        gw.access(us, purpose="foreign-legal-process", record_ids=[anna_id], grant=narrow)
    wide = _grant(
        dep, clock, grant_id="g-2", approver="PL", subjects=(ANNA,), categories=("phone",)
    )
    dep.governance.register_grant(_who(dep, "authority-pl"), wide)
    assert gw.access(us, purpose="foreign-legal-process", record_ids=[anna_id], grant=wide)
    dep.governance.revoke_grant(_who(dep, "authority-pl"), "g-2")
    with pytest.raises(Denied, match="revoked"):
        gw.access(us, purpose="foreign-legal-process", record_ids=[anna_id], grant=wide)


def _envelope(dep: Deployment, name: str, *signers: str, version: int | None = None) -> Envelope:
    bundle = shipped_bundle(name)
    if version is not None:
        bundle = replace(bundle, version=version)
    envelope = Envelope.wrap(bundle)
    for j in signers:
        envelope = sign_pack(envelope, j, dep.authority_key(j))
    return envelope


def test_signed_pack_activation_is_logged_with_signers_and_takes_effect(env) -> None:
    dep, _ = env
    _, anna_id = _ingest(dep)
    gw = dep.gateway
    svc_de = _who(dep, "svc-de")
    with pytest.raises(Denied, match="foreign access needs judicial assistance"):
        gw.access(svc_de, purpose="billing", record_ids=[anna_id])

    size = gw.log.size
    for bad, message in [
        (_envelope(dep, "gdpr-chapter-v", "PL", "DE"), "signed by 2 of its 5"),
        (_envelope(dep, "gdsi", "PL", "DE", "VN"), "already active"),
    ]:
        with pytest.raises(BadRequest, match=message):
            dep.governance.activate_policy(_who(dep, "operator"), bad)
    assert gw.log.size == size
    assert gw.decisions.pack.name == "gdsi"
    with pytest.raises(Denied, match="only the operator or a jurisdiction authority"):
        dep.governance.activate_policy(
            _who(dep, "svc-pl"), _envelope(dep, "gdpr-chapter-v", "PL", "DE", "VN")
        )

    receipt = dep.governance.activate_policy(
        _who(dep, "operator"), _envelope(dep, "gdpr-chapter-v", "PL", "DE", "VN")
    )
    entry = _entry(dep, receipt.index)
    assert entry.kind == "policy_activation"
    assert (entry.fields["pack"], entry.fields["version"]) == ("gdpr-chapter-v", 1)
    assert entry.fields["signers"] == ["DE", "PL", "VN"]
    assert entry.fields["previous"]["pack"] == "gdsi"
    res = gw.access(svc_de, purpose="billing", record_ids=[anna_id])
    assert res.decision.policies == ("gdpr-art45-adequacy",)

    # the same pack again is refused; a newer version signed by enough parties is not
    with pytest.raises(BadRequest, match="already active"):
        dep.governance.activate_policy(
            _who(dep, "operator"), _envelope(dep, "gdpr-chapter-v", "PL", "DE", "VN")
        )
    newer = _envelope(dep, "gdpr-chapter-v", "CN", "US", "VN", version=2)
    dep.governance.activate_policy(_who(dep, "authority-vn"), newer)
    older = _envelope(dep, "gdpr-chapter-v", "CN", "US", "VN", version=1)
    with pytest.raises(BadRequest, match="rollback refused"):
        dep.governance.activate_policy(_who(dep, "operator"), older)
    assert gw.decisions.pack.version == 2

    # a restart restores the last activated pack from the log: no rollback by restarting
    again = Deployment.open(dep.root)
    try:
        active = again.gateway.decisions.pack
        assert (active.name, active.version) == ("gdpr-chapter-v", 2)
    finally:
        again.close()


def test_a_logged_pack_that_no_longer_verifies_stops_the_gateway(env) -> None:
    dep, _ = env
    dep.governance.activate_policy(
        _who(dep, "operator"), _envelope(dep, "pipl-cross-border", "PL", "DE", "VN")
    )
    # the deployment's VN authority key is replaced: VN's signature no longer counts
    (dep.root / "authorities" / "VN.pub").write_text(
        (dep.root / "authorities" / "CN.pub").read_text()
    )
    with pytest.raises(ConfigError, match="does not verify"):
        Deployment.open(dep.root)


def _call(http, dep, clock, who, method, path, body=None):
    data = b"" if body is None else body
    token = make_token(dep.principal_key(who), who, method, path, data, now_s=int(clock()))
    headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
    return http.request(method, path, content=data, headers=headers)


def test_policy_routes_over_http(env) -> None:
    dep, clock = env
    lan_id, _ = _ingest(dep)
    with TestClient(create_app(dep), raise_server_exceptions=True) as http:
        body = json.dumps(
            {"purpose": "billing", "record_ids": [lan_id], "justification": "service-operation"}
        ).encode()
        allowed = _call(http, dep, clock, "svc-vn", "POST", "/v1/access", body)
        assert allowed.status_code == 200, allowed.text
        decision_id = allowed.json()["decision"]["decision_id"]
        explained = _call(
            http, dep, clock, "auditor", "GET", f"/v1/decisions/{decision_id}/explain"
        )
        assert explained.status_code == 200
        assert explained.json()["justification"] == "service-operation"
        assert allowed.json()["decision"]["justification"] == "service-operation"
        missing = _call(http, dep, clock, "auditor", "GET", "/v1/decisions/nope/explain")
        assert missing.status_code == 404

        active = _call(http, dep, clock, "auditor", "GET", "/v1/policy").json()
        assert (active["name"], active["threshold"]) == ("gdsi", 3)
        assert "operator-never-reads" in active["rules"]

        envelope = _envelope(dep, "pipl-cross-border", "CN", "VN", "PL").to_json()
        activated = _call(http, dep, clock, "operator", "POST", "/v1/policy/activate", envelope)
        assert activated.status_code == 200, activated.text
        assert activated.json()["pack"] == "pipl-cross-border"
        few = _envelope(dep, "gdsi", "CN", version=9).to_json()
        refused = _call(http, dep, clock, "operator", "POST", "/v1/policy/activate", few)
        assert refused.status_code == 400
        assert "needs 3" in refused.json()["message"]

        compelled = json.dumps(
            {
                "purpose": "provider-disclosure",
                "record_ids": [lan_id],
                "justification": "compelled-third-party",
            }
        ).encode()
        refused = _call(http, dep, clock, "authority-us", "POST", "/v1/access", compelled)
        assert refused.status_code == 403
        assert "queued for legal review" in refused.json()["message"]
        queued = _call(http, dep, clock, "auditor", "GET", "/v1/policy/reviews").json()
        assert [(r["queue"], r["effect"], r["justification"]) for r in queued["reviews"]] == [
            ("legal", "deny", "compelled-third-party")
        ]
        assert _call(http, dep, clock, "svc-vn", "GET", "/v1/policy/reviews").status_code == 403
        assert _call(http, dep, clock, "auditor", "GET", "/v1/policy/alerts").json() == {
            "alerts": []
        }
        metrics = http.get("/v1/policy/metrics")
        assert metrics.status_code == 200
        assert "sovra_bulk_alert 0" in metrics.text


def test_pack_parameters_reach_the_gateway_retention_and_residency(env) -> None:
    dep, clock = env
    _, anna_id = _ingest(dep)
    gw = dep.gateway
    anna = dep.gateway.commitment("PL", ANNA)
    dep.register("subject-anna", "PL", Role.SUBJECT, subject=anna)
    bundle = replace(
        shipped_bundle("gdsi"),
        name="gdsi-local",
        parameters={"retention_days": {"PL": 30}, "regions": {"VN": ["nowhere"]}},
    )
    envelope = Envelope.wrap(bundle)
    for j in ("PL", "DE", "VN"):
        envelope = sign_pack(envelope, j, dep.authority_key(j))
    dep.governance.activate_policy(_who(dep, "operator"), envelope)
    assert gw.access(_who(dep, "svc-pl"), purpose="billing", record_ids=[anna_id])
    clock.now += 31 * 86400
    with pytest.raises(Denied, match="retention period"):
        gw.access(_who(dep, "svc-pl"), purpose="billing", record_ids=[anna_id])
    own = gw.access(_who(dep, "subject-anna"), purpose="own-request", record_ids=[anna_id])
    assert own.decision.policies == ("subject-own-data",)
    lan = gw.ingest(_who(dep, "svc-vn"), subject_id=LAN, jurisdiction="VN", content="Lan, y")
    with pytest.raises(Denied, match="region its home jurisdiction does not allow"):
        gw.access(_who(dep, "svc-vn"), purpose="billing", record_ids=[lan.record_id])
