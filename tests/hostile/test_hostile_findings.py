"""Each way hostile input once reached a 500 or a hang, over real HTTP, answered in sovra's format.

Every case also checks that nothing changed: no record stored, no log entry written.
"""

from __future__ import annotations

import base64
import json

import pytest
from hostile_wire import SURROGATE_GRANT, Answer, request_bytes, send, signed
from tests.initial_log import logged_by_init

INGEST = "/v1/records"


def _sovra_error(answer: Answer, status: int) -> dict:
    assert answer.status == status, (answer.status, answer.body[:300])
    body = answer.json()
    assert set(body) >= {"error", "message"} and "detail" not in body, body
    return body


def _unchanged(dep) -> None:
    assert dep.store.count_records() == 0
    assert dep.gateway.log.size == logged_by_init(dep)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_token_claims_nested_1400_deep_are_401_without_any_login(served):
    _, url = served
    claims = _b64(b"[" * 1400)  # unclosed: 1,400 levels still fit the token's 2,048 chars
    token = f"v1.{claims}.{_b64(b'x' * 64)}"
    answer = send(
        url, request_bytes("GET", "/v1/policy", headers={"authorization": f"Sovra {token}"})
    )
    assert "malformed token" in _sovra_error(answer, 401)["message"]


def test_lone_surrogate_in_record_content_is_400(served):
    dep, url = served
    body = b'{"subject_id":"anna","jurisdiction":"PL","content":"Anna \\ud800 x"}'
    answer = send(url, signed(dep.principal_key("svc-pl"), "svc-pl", "POST", INGEST, body))
    assert "surrogate" in _sovra_error(answer, 400)["message"]
    _unchanged(dep)


def test_lone_surrogate_in_a_grants_legal_basis_is_400(served):
    dep, url = served
    body = json.dumps(SURROGATE_GRANT).encode()  # ensure_ascii: the surrogate travels as \ud800
    answer = send(
        url, signed(dep.principal_key("authority-us"), "authority-us", "POST", "/v1/grants", body)
    )
    assert "surrogate" in _sovra_error(answer, 400)["message"]
    _unchanged(dep)


def test_non_ascii_ticket_on_sealed_records_is_400(served):
    dep, url = served
    body = json.dumps(
        {
            "header": base64.b64encode(b"sovra-record\n{}").decode(),
            "expires_ms": 1,
            "ticket": "\u00e9" * 64,
            "blob": "",
            "key_envelope": "",
        },
        ensure_ascii=False,
    ).encode()
    key = dep.principal_key("svc-pl")
    answer = send(url, signed(key, "svc-pl", "POST", "/v1/sealed/records", body))
    assert "ticket" in _sovra_error(answer, 400)["message"]
    _unchanged(dep)


def test_non_ascii_base64_in_a_pack_envelope_is_400(served):
    dep, url = served
    body = json.dumps({"payloadType": "x", "payload": "\u00e9AAA", "signatures": []}).encode()
    key = dep.principal_key("operator")
    answer = send(url, signed(key, "operator", "POST", "/v1/policy/activate", body))
    assert "base64" in _sovra_error(answer, 400)["message"]
    assert dep.gateway.log.size == logged_by_init(dep)


def test_a_declared_content_length_of_10_to_the_12_is_refused_at_once(served):
    dep, url = served
    payload = request_bytes("POST", INGEST, content_length=str(10**12))
    answer = send(url, payload)  # and not a byte of the body
    assert "limit" in _sovra_error(answer, 413)["message"]
    assert answer.closed, "the connection must be closed: the body is never read"
    _unchanged(dep)


def test_a_200_mb_body_is_refused_before_it_is_read(served):
    dep, url = served
    head = signed(dep.principal_key("svc-pl"), "svc-pl", "POST", INGEST, b"")
    head = head.replace(b"content-length: 0", b"content-length: 200000000")
    # Only the first 64 kB is ever sent: the answer must come without the other 199.9 MB.
    answer = send(url, head + b"{" + b" " * 65535)
    _sovra_error(answer, 413)
    assert answer.closed
    _unchanged(dep)


def test_a_chunked_body_is_counted_as_it_arrives(served):
    dep, url = served
    limit = dep.config.max_body_bytes
    head = request_bytes("POST", INGEST, headers={"transfer-encoding": "chunked"})
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    # One chunk past the limit and no final chunk: a server that waits for the end hangs.
    pieces = [chunk] * (limit // 65536 + 2)
    answer = send(url, head, then=pieces)
    _sovra_error(answer, 413)
    assert answer.closed
    _unchanged(dep)


def test_a_body_that_lies_about_its_length_by_being_slow_times_out_with_408(served):
    dep, url = served
    payload = request_bytes("POST", INGEST, b'{"subject_id":', content_length="100")
    answer = send(url, payload)  # the other 86 bytes never come
    assert "did not arrive" in _sovra_error(answer, 408)["message"]
    assert answer.closed
    _unchanged(dep)


@pytest.mark.parametrize(
    ("name", "payload", "status"),
    [
        ("unknown route", request_bytes("GET", "/v1/nothing-here"), 404),
        ("wrong method", request_bytes("DELETE", "/v1/log/checkpoint"), 405),
        ("body not UTF-8", request_bytes("POST", INGEST, b'{"a":"\xff\xfe"}'), 400),
        ("body nested 1400 deep", request_bytes("POST", INGEST, b"[" * 1400 + b"]" * 1400), 400),
        ("body with NaN", request_bytes("POST", INGEST, b'{"subject_id":NaN}'), 400),
        ("body with a 5000-digit number", request_bytes("POST", INGEST, b"1" * 5000), 400),
        ("query not an integer", request_bytes("GET", "/v1/log/entries?start=x&end=1"), 400),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_what_the_framework_refuses_is_in_sovras_format(served, name, payload, status):
    dep, url = served
    _sovra_error(send(url, payload), status)
    _unchanged(dep)
