"""Erasure over HTTP (``POST /v1/subjects/erase``): a logged crypto-shred for the subject or
her home authority where the active pack permits it; a logged refusal, destroying nothing,
for anyone else or under a pack with no erasure rule.

A real deployment on disk, the real application, signed request tokens made per call.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from sovra.auth import make_token
from sovra.deployment import Deployment
from sovra.errors import SovraError
from sovra.keys.files import public_bytes
from sovra.model import LogEntry, Principal, Role
from sovra.policy import Envelope, shipped_bundle, sign_pack
from sovra.server import create_app

ANNA = ("PL", "anna@example.pl")
NOTE = "Anna Kowalska, tel. +48 601 234 567"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("erasure") / "deployment"
    Deployment.init(root, origin="sovra.test/erasure", custodians="in-process")
    return root


@pytest.fixture
def dep(template: Path, tmp_path: Path) -> Iterator[Deployment]:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    d = Deployment.open(root)
    try:
        yield d
    finally:
        d.close()


class Caller:
    """Signs one token per request, as the page and the client do."""

    def __init__(self, http: TestClient, pid: str, key: Ed25519PrivateKey) -> None:
        self.http, self.pid, self.key = http, pid, key

    def post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        token = make_token(self.key, self.pid, "POST", path, data, now_s=int(time.time()))
        headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
        return self.http.post(path, content=data, headers=headers)


def _anna(dep: Deployment) -> tuple[Ed25519PrivateKey, list[str]]:
    """Anna as a subject principal of her own, and two records of hers."""
    key = Ed25519PrivateKey.generate()
    commitment = dep.gateway.commitment(*ANNA)
    dep.store.put_principal(
        Principal("subject-anna", "PL", Role.SUBJECT, public_bytes(key), commitment)
    )
    svc = dep.store.get_principal("svc-pl")
    records = [
        dep.gateway.ingest(svc, subject_id=ANNA[1], jurisdiction="PL", content=NOTE).record_id
        for _ in range(2)
    ]
    return key, records


def _entries(dep: Deployment, start: int) -> list[LogEntry]:
    log = dep.gateway.log
    return [LogEntry.from_bytes(e) for e in log.entries(start, log.stored_size())]


def _readable(dep: Deployment, records: list[str]) -> bool:
    """Whether Anna's records still open for her own service."""
    svc = dep.store.get_principal("svc-pl")
    try:
        got = dep.gateway.access(svc, purpose="customer-support", record_ids=records)
    except SovraError:  # the key is gone: nothing opens
        return False
    return all("Kowalska" in text for text in got.records.values())


@pytest.mark.parametrize("who", ["subject-anna", "authority-pl"])
def test_the_subject_or_her_home_authority_erases_her_logged_first(dep, who):
    key, records = _anna(dep)
    assert _readable(dep, records)
    signer = key if who == "subject-anna" else dep.principal_key(who)
    before = dep.gateway.log.stored_size()
    with TestClient(create_app(dep)) as http:
        got = Caller(http, who, signer).post(
            "/v1/subjects/erase", {"jurisdiction": "PL", "subject_id": ANNA[1]}
        )
    assert got.status_code == 200, got.text
    answer = got.json()
    logged = _entries(dep, before)
    decision, shred = logged[0], logged[1]
    assert (decision.kind, decision.fields["effect"], decision.fields["action"]) == (
        "decision",
        "allow",
        "shred",
    )
    assert shred.kind == "shred"
    assert shred.principal == who
    assert shred.fields["decision_id"] == decision.fields["decision_id"]
    assert shred.fields["subject"] == dep.gateway.commitment(*ANNA)
    assert shred.fields["records"] == 2
    assert answer["log_index"] == before + 1
    assert answer["receipt"]["index"] == before + 1
    assert not _readable(dep, records)


def test_anyone_else_is_refused_logged_and_nothing_is_destroyed(dep):
    _, records = _anna(dep)
    before = dep.gateway.log.stored_size()
    with TestClient(create_app(dep)) as http:
        for who in ("authority-vn", "svc-pl", "operator"):
            got = Caller(http, who, dep.principal_key(who)).post(
                "/v1/subjects/erase", {"jurisdiction": "PL", "subject_id": ANNA[1]}
            )
            assert got.status_code == 403, got.text
            body = got.json()
            assert body["error"] == "denied"
            assert "erase" in body["message"]
            refusal = LogEntry.from_bytes(dep.gateway.log.entry(body["log_index"]))
            assert (refusal.kind, refusal.principal) == ("decision", who)
            assert (refusal.fields["effect"], refusal.fields["action"]) == ("deny", "shred")
    kinds = [e.kind for e in _entries(dep, before)]
    assert kinds == ["decision"] * 3
    assert _readable(dep, records)


HOLD = """
@id("pl-erasure-on-hold")
@reason("PL records are under a legal hold: erasure is suspended")
forbid (principal, action == Action::"shred", resource)
when { resource.jurisdiction == "PL" };
"""


def test_a_pack_that_does_not_allow_erasure_refuses_even_the_subject(dep):
    key, records = _anna(dep)
    gdsi = shipped_bundle("gdsi")
    bundle = replace(gdsi, version=99, policies=gdsi.policies + HOLD)
    envelope = Envelope.wrap(bundle)
    for j in ("PL", "VN", "CN"):
        envelope = sign_pack(envelope, j, dep.authority_key(j))
    dep.governance.activate_policy(dep.store.get_principal("operator"), envelope)
    before = dep.gateway.log.stored_size()
    with TestClient(create_app(dep)) as http:
        got = Caller(http, "subject-anna", key).post(
            "/v1/subjects/erase", {"jurisdiction": "PL", "subject_id": ANNA[1]}
        )
    assert got.status_code == 403, got.text
    assert "legal hold" in got.json()["message"]
    assert [e.kind for e in _entries(dep, before)] == ["decision"]
    assert got.json()["log_index"] == before
    assert _readable(dep, records)


@pytest.mark.parametrize(
    "body",
    [
        {"jurisdiction": "PL"},
        {"jurisdiction": "PL", "subject_id": ANNA[1], "extra": 1},
        {"jurisdiction": "XX", "subject_id": ANNA[1]},
        {"jurisdiction": "PL", "subject_id": ""},
    ],
)
def test_a_malformed_request_is_refused_and_changes_nothing(dep, body):
    key, records = _anna(dep)
    before = dep.gateway.log.stored_size()
    with TestClient(create_app(dep)) as http:
        got = Caller(http, "subject-anna", key).post("/v1/subjects/erase", body)
        unsigned = http.post("/v1/subjects/erase", json={"jurisdiction": "PL", "subject_id": "x"})
    assert got.status_code == 400, got.text
    assert unsigned.status_code == 401
    assert dep.gateway.log.stored_size() == before
    assert _readable(dep, records)
