"""The HTTP API: authentication, status codes for every bad input, the public log.

Requests go through the real ASGI application with real signed tokens; one test runs the
Python client against a real uvicorn server on loopback.
"""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from tests.initial_log import logged_by_init

from sovra.auth import make_token
from sovra.client import Client
from sovra.errors import Denied, NotFound, Unauthenticated
from sovra.ledger import verify_checkpoint, verify_consistency, verify_entry_inclusion
from sovra.policy import sign_grant
from sovra.server import create_app
from sovra.server.background import running

ANNA_TEXT = "Anna, PESEL 44051401359, tel. +48 601 234 567"


@pytest.fixture
def http(dep):
    with TestClient(create_app(dep), raise_server_exceptions=True) as client:
        yield client


def _call(http, dep, clock, who, method, path, body=None, *, raw=None, key=None, token=None):
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    if token is None:
        token = make_token(
            key or dep.principal_key(who), who, method, path, data, now_s=int(clock())
        )
    headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
    return http.request(method, path, content=data, headers=headers)


def _access(http, dep, clock, who, body):
    return _call(http, dep, clock, who, "POST", "/v1/access", body)


def _put(
    http, dep, clock, who="svc-pl", jurisdiction="PL", subject="anna@example.pl", text=ANNA_TEXT
):
    body = {"subject_id": subject, "jurisdiction": jurisdiction, "content": text}
    return _call(http, dep, clock, who, "POST", "/v1/records", body)


def test_ingest_and_read_over_http(http, dep, clock):
    r = _put(http, dep, clock)
    assert r.status_code == 201, r.text
    rid = r.json()["record_id"]
    r = _access(http, dep, clock, "svc-pl", {"purpose": "customer-support", "record_ids": [rid]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"]["effect"] == "allow"
    assert "+48 601 234 567" in body["records"][rid]
    assert "44051401359" not in body["records"][rid]


def test_deny_is_403_with_its_log_index(http, dep, clock):
    rid = _put(http, dep, clock).json()["record_id"]
    r = _access(
        http, dep, clock, "authority-us", {"purpose": "foreign-legal-process", "record_ids": [rid]}
    )
    assert r.status_code == 403
    body = r.json()
    assert body["error"] == "denied" and "grant" in body["message"]
    entry = json.loads(dep.gateway.log.entry(body["log_index"]))
    assert entry["effect"] == "deny" and entry["records"] == [rid]


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("missing", 401, "missing credential"),
        ("garbage", 401, "malformed token"),
        ("forged", 401, "forged"),
        ("unknown-principal", 401, "unknown principal"),
        ("expired", 401, "expired"),
        ("other-path", 401, "made for"),
        ("other-body", 401, "another request body"),
        ("future", 401, "future"),
        ("too-long-lived", 401, "lifetime"),
    ],
)
def test_bad_credentials_are_401_and_change_nothing(http, dep, clock, case, status, message):
    body = {"subject_id": "a", "jurisdiction": "PL", "content": "x"}
    data = json.dumps(body).encode()
    key, who, path, now = dep.principal_key("svc-pl"), "svc-pl", "/v1/records", int(clock())
    token = make_token(key, who, "POST", path, data, now_s=now)
    if case == "missing":
        token = ""
    elif case == "garbage":
        token = "v1.not-base64!.x"
    elif case == "forged":
        token = make_token(Ed25519PrivateKey.generate(), who, "POST", path, data, now_s=now)
    elif case == "unknown-principal":
        token = make_token(key, "svc-fr", "POST", path, data, now_s=now)
    elif case == "expired":
        token = make_token(key, who, "POST", path, data, now_s=now - 600)
    elif case == "other-path":
        token = make_token(key, who, "POST", "/v1/access", data, now_s=now)
    elif case == "other-body":
        token = make_token(key, who, "POST", path, data + b" ", now_s=now)
    elif case == "future":
        token = make_token(key, who, "POST", path, data, now_s=now + 600)
    elif case == "too-long-lived":
        token = make_token(key, who, "POST", path, data, now_s=now, lifetime_s=86400)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Sovra {token}"
    r = http.post(path, content=data, headers=headers)
    assert r.status_code == status, r.text
    assert message in r.json()["message"]
    assert dep.gateway.log.size == logged_by_init(dep)
    assert dep.store.count_records() == 0


def test_replayed_token_is_refused(http, dep, clock):
    body = json.dumps({"subject_id": "a", "jurisdiction": "PL", "content": "x"}).encode()
    token = make_token(
        dep.principal_key("svc-pl"), "svc-pl", "POST", "/v1/records", body, now_s=int(clock())
    )
    headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
    assert http.post("/v1/records", content=body, headers=headers).status_code == 201
    r = http.post("/v1/records", content=body, headers=headers)
    assert r.status_code == 401 and "replayed" in r.json()["message"]
    assert dep.store.count_records() == 1


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"{not json", 400, "JSON"),
        (b"[]", 400, "body"),
        (json.dumps({"subject_id": "a", "jurisdiction": "PL"}).encode(), 400, "content"),
        (
            json.dumps(
                {"subject_id": "a", "jurisdiction": "PL", "content": "x", "extra": 1}
            ).encode(),
            400,
            "extra",
        ),
        (
            json.dumps({"subject_id": "a", "jurisdiction": "XX", "content": "x"}).encode(),
            400,
            "unknown jurisdiction",
        ),
        (
            json.dumps({"subject_id": "a/../b", "jurisdiction": "PL", "content": "x"}).encode(),
            400,
            "subject",
        ),
        (
            json.dumps(
                {"subject_id": "a", "jurisdiction": "PL", "content": "x", "purpose": "marketing"}
            ).encode(),
            400,
            "not 'marketing'",
        ),
        (
            json.dumps(
                {"subject_id": "a", "jurisdiction": "PL", "content": "x", "purpose": ["billing"]}
            ).encode(),
            400,
            "purpose",
        ),
    ],
)
def test_malformed_bodies_are_400_and_change_nothing(http, dep, clock, raw, status, message):
    r = _call(http, dep, clock, "svc-pl", "POST", "/v1/records", raw=raw)
    assert r.status_code == status, r.text
    assert message.lower() in r.text.lower()
    assert dep.gateway.log.size == logged_by_init(dep)
    assert dep.store.count_records() == 0


def test_oversized_body_is_413(http, dep, clock):
    text = "a" * (dep.config.max_body_bytes + 10)
    r = _put(http, dep, clock, text=text)
    assert r.status_code == 413
    assert dep.store.count_records() == 0


def test_unknown_record_is_404(http, dep, clock):
    r = _access(
        http, dep, clock, "svc-pl", {"purpose": "billing", "record_ids": ["r-does-not-exist"]}
    )
    assert r.status_code == 404
    assert dep.gateway.log.size == logged_by_init(dep)


def test_grant_with_bad_signature_is_403_and_logged(http, dep, clock):
    from sovra.model import Grant

    now = int(clock())
    grant = sign_grant(
        Grant(
            "g-x",
            "authority-us",
            "US",
            "VN",
            ("lan",),
            "foreign-legal-process",
            "MLA",
            now - 1,
            now + 100,
        ),
        Ed25519PrivateKey.generate(),
    )
    r = _call(http, dep, clock, "authority-us", "POST", "/v1/grants", json.loads(grant.to_json()))
    assert r.status_code == 403, r.text
    assert json.loads(dep.gateway.log.entry(r.json()["log_index"]))["effect"] == "deny"
    r = _call(http, dep, clock, "authority-us", "POST", "/v1/grants", {"grant_id": "g"})
    assert r.status_code == 400 and "missing" in r.json()["message"]


def test_public_log_endpoints_verify(http, dep, clock):
    init = logged_by_init(dep)
    for i in range(5):
        _put(http, dep, clock, subject=f"s{i}")
    first = http.get("/v1/log/checkpoint").text
    for i in range(5, 9):
        _put(http, dep, clock, subject=f"s{i}")
    last = http.get("/v1/log/checkpoint").text
    vkey = http.get("/v1/log/key").text.strip()
    a, b = verify_checkpoint(first, vkey), verify_checkpoint(last, vkey)
    assert (a.size, b.size) == (init + 5, init + 9)
    proof = [
        base64.b64decode(h)
        for h in http.get(f"/v1/log/proof/consistency?old={a.size}&new={b.size}").json()["proof"]
    ]
    verify_consistency(a.size, b.size, a.root_hash, b.root_hash, proof)
    at = init + 3
    entry = http.get(f"/v1/log/entries?start={at}&end={at + 1}").json()["entries"][0].encode()
    proof = [
        base64.b64decode(h)
        for h in http.get(f"/v1/log/proof/inclusion?index={at}&size={b.size}").json()["proof"]
    ]
    verify_entry_inclusion(entry, at, proof, b)
    assert http.get("/v1/log/entries?start=0&end=99").status_code == 400
    assert http.get("/v1/log/proof/inclusion?index=20&size=9").status_code == 400
    assert http.get("/v1/log/entries?start=x&end=1").status_code == 400
    assert http.get("/openapi.json").json()["info"]["title"] == "sovra"
    assert "sovra" in http.get("/").text


def test_python_client_against_a_real_server(dep, clock):
    clock.now = time.time()  # the client signs with the wall clock
    with running(create_app(dep)) as url:
        with Client(url, "svc-pl", dep.principal_key("svc-pl")) as svc:
            rid = svc.ingest("anna@example.pl", "PL", ANNA_TEXT)["record_id"]
            assert "+48" in svc.access("billing", record_ids=[rid])["records"][rid]
            with pytest.raises(NotFound):
                svc.access("billing", record_ids=["r-missing"])
        with (
            Client(url, "authority-us", dep.principal_key("authority-us")) as us,
            pytest.raises(Denied) as info,
        ):
            us.access("foreign-legal-process", record_ids=[rid])
        assert info.value.log_index is not None
        with (
            Client(url, "svc-pl", Ed25519PrivateKey.generate()) as forger,
            pytest.raises(Unauthenticated),
        ):
            forger.ingest("x", "PL", "y")
        with Client(url) as anyone:
            signed = verify_checkpoint(anyone.checkpoint(), anyone.verifier_key())
            assert signed.size == logged_by_init(dep) + 4  # ingest, allow, release, deny


def test_api_docs_are_served_without_a_cdn(http):
    page = http.get("/docs")
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text
    script = http.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000


def test_running_serves_until_the_block_ends(dep):
    with running(create_app(dep)) as url:
        assert httpx.get(f"{url}/v1/info", timeout=5).json()["origin"] == "sovra.test/log"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/info", timeout=5)


def test_reveal_over_http_is_its_own_logged_decision(http, dep, clock):
    rid = _put(http, dep, clock).json()["record_id"]
    read = _access(http, dep, clock, "svc-pl", {"purpose": "customer-support", "record_ids": [rid]})
    assert "44051401359" not in read.text and "[TOKEN:pl_pesel:" in read.text
    refused = _access(
        http,
        dep,
        clock,
        "svc-pl",
        {"purpose": "customer-support", "record_ids": [rid], "reveal": True},
    )
    assert refused.status_code == 403, refused.text
    body = {
        "purpose": "domestic-legal-process",
        "justification": "domestic-legal-process",
        "record_ids": [rid],
        "reveal": True,
    }
    revealed = _access(http, dep, clock, "authority-pl", body)
    assert revealed.status_code == 200, revealed.text
    assert revealed.json()["records"][rid] == ANNA_TEXT
    assert revealed.json()["decision"]["action"] == "reveal"
    bad = _access(http, dep, clock, "authority-pl", {**body, "reveal": [1]})
    assert bad.status_code == 400 and "reveal" in bad.text
