"""The HTTP edge's per-request shortcuts keep its answers and its checks exact.

The body is parsed once (by the bounded parser in front of the application), answers are
encoded once (orjson), and loaded public keys are reused: none of it may change what a
request gets, or let a key the store no longer holds sign a request.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import starlette.requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from sovra.auth import make_token
from sovra.keys import public_bytes
from sovra.server import create_app


@pytest.fixture
def http(dep):
    with TestClient(create_app(dep), raise_server_exceptions=True) as client:
        yield client


def _call(http, dep, clock, who, method, path, body, *, key=None):
    data = json.dumps(body).encode()
    token = make_token(key or dep.principal_key(who), who, method, path, data, now_s=int(clock()))
    headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
    return http.request(method, path, content=data, headers=headers)


class _NoSecondParse:
    @staticmethod
    def loads(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the framework parsed a JSON body the edge had parsed already")


def test_a_json_body_is_parsed_once_and_answers_are_json(http, dep, clock, monkeypatch):
    monkeypatch.setattr(starlette.requests, "json", _NoSecondParse)
    body = {"subject_id": "edge@example.pl", "jurisdiction": "PL", "content": "tel. 601 234 567"}
    put = _call(http, dep, clock, "svc-pl", "POST", "/v1/records", body)
    assert put.status_code == 201, put.text
    assert put.headers["content-type"] == "application/json"
    record = put.json()["record_id"]
    read = {"purpose": "customer-support", "record_ids": [record]}
    got = _call(http, dep, clock, "svc-pl", "POST", "/v1/access", read)
    assert got.status_code == 200, got.text
    assert got.json()["records"][record] == "tel. 601 234 567"
    # A body the bounded parser refuses never reaches the application.
    bad = _call(http, dep, clock, "svc-pl", "POST", "/v1/records", body | {"content": "\ud800"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "bad_request"


def test_a_principal_whose_key_changed_signs_with_the_new_key_only(http, dep, clock):
    body = {"subject_id": "key@example.pl", "jurisdiction": "PL", "content": "hello"}
    assert _call(http, dep, clock, "svc-pl", "POST", "/v1/records", body).status_code == 201
    new = Ed25519PrivateKey.generate()
    principal = dep.store.get_principal("svc-pl")
    dep.store.put_principal(replace(principal, public_key=public_bytes(new)))
    old = _call(http, dep, clock, "svc-pl", "POST", "/v1/records", body)
    assert old.status_code == 401
    assert "forged or corrupted" in old.json()["message"]
    assert (
        _call(http, dep, clock, "svc-pl", "POST", "/v1/records", body, key=new).status_code == 201
    )


@pytest.mark.parametrize("path", ["/v1/records", "/v1/access"])
def test_an_unexpected_error_in_a_hot_route_is_a_bare_500_raised_on(dep, clock, path, caplog):
    def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("secret detail of a bug")

    dep.gateway.ingest = broken  # type: ignore[method-assign]
    dep.gateway.access = broken  # type: ignore[method-assign]
    body = (
        {"subject_id": "bug@example.pl", "jurisdiction": "PL", "content": "hello"}
        if path == "/v1/records"
        else {"purpose": "customer-support", "record_ids": ["r-1"]}
    )
    # The direct routes sit outside the framework's last-resort handler: they answer as it
    # does (sovra's format, no detail), and raise the error on to the server as it does.
    with TestClient(create_app(dep), raise_server_exceptions=False) as client:
        got = _call(client, dep, clock, "svc-pl", "POST", path, body)
    assert got.status_code == 500
    assert got.json() == {"error": "internal", "message": "internal error; see the server log"}
    assert "secret detail" not in got.text
    assert any("unexpected RuntimeError" in r.getMessage() for r in caplog.records)
    with (
        TestClient(create_app(dep), raise_server_exceptions=True) as client,
        pytest.raises(RuntimeError, match="secret detail"),
    ):
        _call(client, dep, clock, "svc-pl", "POST", path, body)
