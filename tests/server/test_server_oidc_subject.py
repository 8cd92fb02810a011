"""A data subject signs in with a bearer JWT from the deployment's OpenID Connect issuer.

Where ``[auth.oidc]`` sets ``subject_claim`` and lists ``subject`` among its roles, a token
whose role is ``subject`` stands for the subject its ``subject_claim`` names, at home in the
token's jurisdiction: she reads her own report and records (logged allows) and no one
else's (logged denies). Real issuer keys, a real JWKS over HTTP, the real application.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.server.test_server_oidc import BASE, Issuer, _signed_ingest, run_issuer, with_oidc

from sovra.config import Config
from sovra.deployment import Deployment
from sovra.errors import ConfigError
from sovra.model import LogEntry
from sovra.server import create_app

ANNA = "anna@example.pl"  # the subject _signed_ingest stores a record of
SUBJECTS = {"roles": '["service", "analyst", "auditor", "subject"]', "subject_claim": '"email"'}


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with run_issuer() as idp:
        yield idp


@pytest.fixture
def both(root: Path, issuer: Issuer) -> Iterator[tuple[TestClient, Deployment]]:
    """The application over a deployment that takes the issuer's subject tokens."""
    with_oidc(root, issuer, **SUBJECTS)
    with (root / "sovra.toml").open("a", encoding="utf-8") as f:
        f.write('"data-subject" = "subject"\n')  # into [auth.oidc.role_values]
    dep = Deployment.open(root)
    try:
        with TestClient(create_app(dep), raise_server_exceptions=True) as client:
            yield client, dep
    finally:
        dep.close()


def _as(issuer: Issuer, subject_id: str | None, **claims: Any) -> dict[str, str]:
    token = issuer.token(sub="anna-k", roles=["data-subject"], email=subject_id, **claims)
    return {"authorization": f"Bearer {token}"}


def _report(http: TestClient, headers: dict[str, str], subject_id: str = ANNA) -> Any:
    return http.post(
        "/v1/subjects/report",
        json={"jurisdiction": "PL", "subject_id": subject_id},
        headers=headers,
    )


def test_a_subject_reads_her_own_report_and_records_with_a_bearer_token(both, issuer):
    http, dep = both
    record = _signed_ingest(http, dep)
    got = _report(http, _as(issuer, ANNA))
    assert got.status_code == 200, got.text
    assert json.loads(got.json()["entries"][0]["entry"])["kind"] == "ingest"
    read = http.post(
        "/v1/access",
        json={
            "purpose": "subject-access",
            "justification": "subject-request",
            "subjects": [{"jurisdiction": "PL", "subject_id": ANNA}],
        },
        headers=_as(issuer, ANNA),
    )
    assert read.status_code == 200, read.text
    assert list(read.json()["records"]) == [record]
    logged = LogEntry.from_bytes(dep.gateway.log.entry(read.json()["log_index"]))
    assert (logged.principal, logged.fields["effect"]) == ("oidc:anna-k", "allow")


def test_a_subject_token_does_not_open_another_subjects_report(both, issuer):
    http, dep = both
    _signed_ingest(http, dep)
    before = dep.gateway.log.stored_size()
    got = _report(http, _as(issuer, "jan@example.pl"))  # her token, but another subject
    assert got.status_code == 403, got.text
    refusal = LogEntry.from_bytes(dep.gateway.log.entry(got.json()["log_index"]))
    assert (refusal.principal, refusal.fields["effect"]) == ("oidc:anna-k", "deny")
    assert got.json()["log_index"] == before
    # Her home is the token's jurisdiction: the same id at home in DE is someone else.
    de = _report(http, _as(issuer, ANNA, sovra_jurisdiction="DE"))
    assert de.status_code == 403, de.text


@pytest.mark.parametrize(
    ("email", "message"),
    [(None, "has no 'email' claim naming its subject"), ("", "has no 'email' claim")],
)
def test_a_subject_token_without_her_id_is_refused_and_logs_nothing(both, issuer, email, message):
    http, dep = both
    before = dep.gateway.log.stored_size()
    got = _report(http, _as(issuer, email))
    assert got.status_code == 401, got.text
    assert message in got.json()["message"]
    assert dep.gateway.log.stored_size() == before


def test_a_subject_may_not_erase_with_a_bearer_token_unless_writes(both, issuer):
    http, dep = both
    _signed_ingest(http, dep)
    before = dep.gateway.log.stored_size()
    got = http.post(
        "/v1/subjects/erase",
        json={"jurisdiction": "PL", "subject_id": ANNA},
        headers=_as(issuer, ANNA),
    )
    assert got.status_code == 401, got.text
    assert "may only read" in got.json()["message"]
    assert dep.gateway.log.stored_size() == before


def test_subject_role_needs_subject_claim():
    table = BASE + 'role_claim = "roles"\njurisdiction = "PL"\n'
    with pytest.raises(ConfigError, match="subject only with subject_claim"):
        Config.from_text(table + 'roles = ["subject"]\n', "t")
    oidc = Config.from_text(table + 'roles = ["subject"]\nsubject_claim = "email"\n', "t").oidc
    assert oidc is not None and oidc.subject_claim == "email"
