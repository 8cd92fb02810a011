"""The batch routes: many records, or many access requests, in one signed request.

Real deployments on disk, requests through the real ASGI application (body limits and
authentication included) with real signed tokens; the client's tests use a real uvicorn
server on loopback. Each bad line gets its own error with its line number, the good ones
are stored, results come back in the order of the lines, a batch over the limit is
refused whole with nothing stored, and every per-item deny is in the log.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.initial_log import logged_by_init

from sovra.auth import make_token
from sovra.client import Client
from sovra.deployment import Deployment
from sovra.errors import BadRequest, Denied, NotFound, PayloadTooLarge, SovraError
from sovra.gateway import MAX_INGEST_BATCH
from sovra.model import LogEntry, Role
from sovra.server import create_app
from sovra.server.background import running
from sovra.server.batch import _INGEST_CHUNK as CHUNK
from sovra.server.batch import _encode

RECORDS = "/v1/records/batch"
ACCESS = "/v1/access/batch"
NDJSON = "application/x-ndjson"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch") / "deployment"
    Deployment.init(root, origin="sovra.test/batch", custodians="in-process")
    return root


@pytest.fixture
def dep(template: Path, tmp_path: Path) -> Iterator[Deployment]:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    d = Deployment.open(root)  # the wall clock, as the tokens below use
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def http(dep: Deployment) -> Iterator[TestClient]:
    with TestClient(create_app(dep), raise_server_exceptions=True) as client:
        yield client


def _post(
    http: Any,
    dep: Deployment,
    path: str,
    body: bytes,
    *,
    who: str = "svc-pl",
    media: str = NDJSON,
) -> httpx.Response:
    token = make_token(dep.principal_key(who), who, "POST", path, body, now_s=int(time.time()))
    headers = {"authorization": f"Sovra {token}", "content-type": media}
    return http.post(path, content=body, headers=headers)


def _line(subject: str, content: str = "a note", **more: Any) -> bytes:
    fields = {"subject_id": subject, "jurisdiction": "PL", "content": content, **more}
    return json.dumps(fields).encode()


def _answer(response: httpx.Response) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The result lines of a batch answer, and its summary (the last line)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(NDJSON)
    lines = [json.loads(text) for text in response.text.splitlines()]
    *results, last = lines
    assert [r["line"] for r in results] == list(range(1, len(results) + 1))
    return results, last["summary"]


def _stored(dep: Deployment, subject: str) -> list[str]:
    commitment = dep.gateway.commitment("PL", subject)
    return [m.header.record_id for m in dep.store.records_for_subject(commitment)]


def _unchanged(dep: Deployment, records: int, log_size: int) -> None:
    """*records* stored, and *log_size* entries logged besides those of ``sovra init``."""
    assert dep.store.count_records() == records
    assert dep.gateway.log.size == logged_by_init(dep) + log_size


# -- ingest ----------------------------------------------------------------------------------


def test_a_batch_with_bad_lines_stores_the_good_ones_and_names_each_bad_one(http, dep):
    lines = [
        _line("good1@example.pl", "tel. +48 601 234 567"),
        b"{not json",
        b'{"subject_id": "x", "jurisdiction": "PL"}',
        b'{"subject_id": "x", "subject_id": "y", "jurisdiction": "PL", "content": "c"}',
        _line("good2@example.pl"),
        b'{"subject_id": "x", "jurisdiction": "ZZ", "content": "c"}',
        b"",
        b'{"subject_id": "x", "jurisdiction": "PL", "content": "\xff"}',
        b'["a", "list"]',
        _line("x", admin=True),
        b'{"subject_id": "x", "jurisdiction": "PL", "content": "\\ud800"}',
        _line("good3@example.pl") + b"\r",
    ]
    results, summary = _answer(_post(http, dep, RECORDS, b"\n".join(lines)))
    statuses = [r["status"] for r in results]
    assert statuses == [201, 400, 400, 400, 201, 400, 400, 400, 400, 400, 400, 201]
    errors = {r["line"]: r["error"]["message"] for r in results if "error" in r}
    assert errors[2] == (
        "line is not valid JSON: Expecting property name enclosed in double quotes at column 2"
    )
    assert errors[3] == "content: Field required"
    assert errors[4] == "line is not valid JSON: duplicate field 'subject_id'"
    assert errors[6].startswith("unknown jurisdiction 'ZZ'")
    assert errors[7] == "blank line: expected one JSON object"
    assert errors[8] == "line is not valid UTF-8 (byte 54)"
    assert errors[9] == "line is a JSON list, not an object"
    assert errors[10] == "admin: Extra inputs are not permitted"
    assert "lone surrogate" in errors[11]
    assert summary == {"lines": 12, "ok": 3, "failed": 9}
    assert dep.store.count_records() == 3
    for r, subject in zip(
        [results[0], results[4], results[11]], ["good1", "good2", "good3"], strict=True
    ):
        assert _stored(dep, f"{subject}@example.pl") == [r["result"]["record_id"]]
        entry = LogEntry.from_bytes(dep.gateway.log.entry(r["result"]["log_index"]))
        assert entry.kind == "ingest" and entry.fields["record"] == r["result"]["record_id"]
    # A receipt is what the single route answers: id, region, log receipt, findings.
    assert results[0]["result"]["findings"] == {"phone": 1}
    assert set(results[0]["result"]) == {
        "record_id",
        "region",
        "log_index",
        "receipt",
        "findings",
        "actions",
    }


def test_results_come_back_in_the_order_of_the_lines_across_chunks(http, dep):
    n = CHUNK + 100  # two chunks of the server
    subjects = [f"s{i:04d}@example.pl" for i in range(n)]
    body = b"\n".join(_line(s, f"note {i}") for i, s in enumerate(subjects)) + b"\n"
    results, summary = _answer(_post(http, dep, RECORDS, body))
    assert summary == {"lines": n, "ok": n, "failed": 0}
    for subject, r in zip(subjects, results, strict=True):
        meta = dep.store.get_record(r["result"]["record_id"])
        assert meta.header.subject == dep.gateway.commitment("PL", subject)
    indexes = [r["result"]["log_index"] for r in results]
    assert len(set(indexes)) == n


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{}\n" * (MAX_INGEST_BATCH + 1), 413, "over the 1000-line limit"),
        (b"\n" * 1_000_000, 413, "over the 1000-line limit"),
        (b"x" * (2 << 20), 413, "over the 1048576-byte limit"),
        (b"", 400, "empty batch"),
    ],
    ids=["1001 lines", "a million blank lines", "2 MiB body", "empty"],
)
def test_a_batch_over_the_limit_is_refused_whole_before_anything_is_stored(
    http, dep, body, status, message
):
    good = _line("early@example.pl")
    body = good + b"\n" + body if body else body
    r = _post(http, dep, RECORDS, body)
    assert r.status_code == status, r.text
    assert message in r.json()["message"]
    _unchanged(dep, 0, 0)


def test_a_line_over_the_line_limit_fails_alone(http, dep):
    limit = dep.config.max_record_bytes + 64 * 1024
    over = _line("big@example.pl", "x" * (limit + 1))
    body = b"\n".join([_line("a@example.pl"), over, _line("b@example.pl")])
    results, _ = _answer(_post(http, dep, RECORDS, body))
    assert [r["status"] for r in results] == [201, 413, 201]
    assert results[1]["error"]["message"] == (
        f"line is {len(over)} bytes, over the {limit}-byte limit of a line"
    )
    assert _stored(dep, "big@example.pl") == []
    # A line within the limit whose content is over the record limit: the gateway's 413.
    content = _line("big@example.pl", "x" * (dep.config.max_record_bytes + 1))
    results, _ = _answer(_post(http, dep, RECORDS, content))
    assert results[0]["status"] == 413
    assert _stored(dep, "big@example.pl") == []


def test_a_batch_not_declared_as_json_lines_is_415(http, dep):
    for media in ("application/json", "text/plain"):
        r = _post(http, dep, RECORDS, _line("a@example.pl"), media=media)
        assert r.status_code == 415, r.text
        assert r.json()["error"] == "unsupported_media_type"
    _unchanged(dep, 0, 0)


def test_a_forged_or_replayed_batch_is_401_and_changes_nothing(http, dep):
    body = _line("a@example.pl")
    forged = make_token(
        dep.principal_key("svc-vn"), "svc-pl", "POST", RECORDS, body, now_s=int(time.time())
    )
    headers = {"authorization": f"Sovra {forged}", "content-type": NDJSON}
    r = http.post(RECORDS, content=body, headers=headers)
    assert r.status_code == 401 and "forged" in r.json()["message"]
    other = make_token(
        dep.principal_key("svc-pl"), "svc-pl", "POST", RECORDS, body + b"\n", now_s=int(time.time())
    )
    r = http.post(RECORDS, content=body, headers={**headers, "authorization": f"Sovra {other}"})
    assert r.status_code == 401 and "another request body" in r.json()["message"]
    _unchanged(dep, 0, 0)
    token = make_token(
        dep.principal_key("svc-pl"), "svc-pl", "POST", RECORDS, body, now_s=int(time.time())
    )
    headers["authorization"] = f"Sovra {token}"
    assert http.post(RECORDS, content=body, headers=headers).status_code == 200
    _unchanged(dep, 1, 1)
    r = http.post(RECORDS, content=body, headers=headers)
    assert r.status_code == 401 and "replayed" in r.json()["message"]
    _unchanged(dep, 1, 1)


def test_every_refused_ingest_in_a_batch_is_a_logged_deny(http, dep):
    dep.register("analyst-pl", "PL", Role.ANALYST)
    body = b"\n".join(_line(f"d{i}@example.pl") for i in range(3))
    results, summary = _answer(_post(http, dep, RECORDS, body, who="analyst-pl"))
    assert summary == {"lines": 3, "ok": 0, "failed": 3}
    for r in results:
        assert r["status"] == 403 and r["error"]["error"] == "denied"
        entry = LogEntry.from_bytes(dep.gateway.log.entry(r["error"]["log_index"]))
        assert (entry.kind, entry.principal) == ("decision", "analyst-pl")
        assert (entry.fields["effect"], entry.fields["action"]) == ("deny", "ingest")
        assert entry.fields["reason"] == r["error"]["message"]
    assert dep.store.count_records() == 0
    assert len({r["error"]["log_index"] for r in results}) == 3


# -- access ------------------------------------------------------------------------------------


def _ingested(dep: Deployment, n: int) -> list[str]:
    svc = dep.store.get_principal("svc-pl")
    return [
        dep.gateway.ingest(
            svc, subject_id=f"r{i}@example.pl", jurisdiction="PL", content=f"note {i}"
        ).record_id
        for i in range(n)
    ]


def _access_line(**fields: Any) -> bytes:
    return json.dumps({"purpose": "customer-support", **fields}).encode()


def test_an_access_batch_decides_each_request_on_its_own(http, dep):
    ids = _ingested(dep, 3)
    lines = [
        _access_line(record_ids=[ids[0]]),
        _access_line(record_ids=["r-missing"]),
        _access_line(),
        _access_line(record_ids=[ids[1], ids[2]]),
        b'{"purpose": 7}',
    ]
    results, summary = _answer(_post(http, dep, ACCESS, b"\n".join(lines)))
    assert [r["status"] for r in results] == [200, 404, 400, 200, 400]
    assert results[0]["result"]["records"] == {ids[0]: "note 0"}
    assert results[3]["result"]["records"] == {ids[1]: "note 1", ids[2]: "note 2"}
    assert results[2]["error"]["message"] == (
        "name exactly one of: record ids, subjects, or a jurisdiction"
    )
    assert summary == {"lines": 5, "ok": 2, "failed": 3}
    for r in (results[0], results[3]):
        decision = LogEntry.from_bytes(dep.gateway.log.entry(r["result"]["log_index"]))
        assert decision.fields["effect"] == "allow"


def test_every_denied_access_in_a_batch_is_logged(http, dep):
    ids = _ingested(dep, 3)
    lines = [_access_line(record_ids=[i]) for i in ids]
    before = dep.gateway.log.size
    results, summary = _answer(_post(http, dep, ACCESS, b"\n".join(lines), who="authority-us"))
    assert summary == {"lines": 3, "ok": 0, "failed": 3}
    for r, rid in zip(results, ids, strict=True):
        assert r["status"] == 403
        entry = LogEntry.from_bytes(dep.gateway.log.entry(r["error"]["log_index"]))
        assert (entry.principal, entry.fields["effect"]) == ("authority-us", "deny")
        assert entry.fields["records"] == [rid]
        assert entry.fields["reason"] == r["error"]["message"]
    # The three denies and nothing else: no key was released.
    assert dep.gateway.log.size == before + 3


# -- the client ---------------------------------------------------------------------------------


@pytest.fixture
def served(dep: Deployment) -> Iterator[str]:
    with running(create_app(dep)) as url:
        yield url


def _record(subject: str, content: str = "a note") -> dict[str, Any]:
    return {"subject_id": subject, "jurisdiction": "PL", "content": content}


def test_client_ingest_many_gives_one_result_per_record_in_order(dep, served):
    records: list[Any] = [_record(f"c{i}@example.pl", f"note {i}") for i in range(25)]
    records[3] = {**records[3], "jurisdiction": "ZZ"}
    records[7] = {**records[7], "content": b"not text"}
    records[11] = {"subject_id": "c11@example.pl", "jurisdiction": "PL"}
    with Client(served, "svc-pl", dep.principal_key("svc-pl")) as client:
        results = list(client.ingest_many(iter(records), chunk=4))
    assert len(results) == 25
    bad = {i: r for i, r in enumerate(results) if isinstance(r, SovraError)}
    assert sorted(bad) == [3, 7, 11]
    assert all(isinstance(e, BadRequest) for e in bad.values())
    assert bad[11].message == "content: Field required"
    for i, r in enumerate(results):
        if i not in bad:
            assert _stored(dep, f"c{i}@example.pl") == [r["record_id"]]
    assert dep.store.count_records() == 22


def test_client_sends_a_batch_too_large_for_the_gateway_in_halves(dep, served):
    # 6 records of 300 kB: 1.8 MB in one request, over the gateway's 1 MiB body limit.
    records = [_record(f"h{i}@example.pl", "y" * 300_000) for i in range(6)]
    records.append(_record("huge@example.pl", "z" * 1_100_000))  # alone over the body limit
    with Client(served, "svc-pl", dep.principal_key("svc-pl")) as client:
        results = list(client.ingest_many(records, chunk_bytes=10 << 20))
    assert all(isinstance(r, dict) for r in results[:6]), results
    assert isinstance(results[6], PayloadTooLarge)
    assert dep.store.count_records() == 6
    assert _stored(dep, "huge@example.pl") == []


def test_client_access_many_returns_each_decision(dep, served):
    ids = _ingested(dep, 2)
    requests = [
        {"purpose": "customer-support", "record_ids": [ids[0]]},
        {"purpose": "customer-support", "record_ids": ["r-none"]},
        {"purpose": "customer-support", "subjects": [("PL", "r1@example.pl")]},
        {"purpose": "customer-support", "record_id": "a typo"},
    ]
    with Client(served, "svc-pl", dep.principal_key("svc-pl")) as client:
        results = list(client.access_many(requests))
    assert results[0]["records"] == {ids[0]: "note 0"}
    assert isinstance(results[1], NotFound)
    assert results[2]["records"] == {ids[1]: "note 1"}
    assert isinstance(results[3], BadRequest)
    with Client(served, "authority-us", dep.principal_key("authority-us")) as client:
        (denied,) = client.access_many(requests[:1])
    assert isinstance(denied, Denied) and denied.log_index is not None
    entry = LogEntry.from_bytes(dep.gateway.log.entry(denied.log_index))
    assert (entry.principal, entry.fields["effect"]) == ("authority-us", "deny")


def test_a_batch_stopped_by_a_failing_stage_answers_every_line(http, dep, monkeypatch):
    from sovra.errors import Unavailable

    calls = []
    real = dep.gateway.ingest_many

    def failing(principal, items):
        calls.append(len(items))
        if len(calls) >= 2:
            raise Unavailable("custodian PL unreachable")
        return real(principal, items)

    monkeypatch.setattr(dep.gateway, "ingest_many", failing)
    n = CHUNK + 100
    body = b"\n".join(_line(f"f{i}@example.pl") for i in range(n))
    results, summary = _answer(_post(http, dep, RECORDS, body))
    assert calls == [CHUNK, 100]
    assert [r["status"] for r in results] == [201] * CHUNK + [503] * 100
    assert {r["error"]["message"] for r in results[CHUNK:]} == {"custodian PL unreachable"}
    assert summary == {"lines": n, "ok": CHUNK, "failed": 100, "stopped_at": CHUNK + 1}
    assert dep.store.count_records() == CHUNK
    # Stopped in its first chunk, the batch does not attempt the next one.
    body = b"\n".join(_line(f"g{i}@example.pl") for i in range(2 * CHUNK))
    results, summary = _answer(_post(http, dep, RECORDS, body))
    assert calls == [CHUNK, 100, CHUNK]
    assert [r["status"] for r in results] == [503] * (2 * CHUNK)
    assert results[-1]["error"]["message"] == (
        "not attempted: the batch stopped at line 1 (unavailable: custodian PL unreachable)"
    )
    assert summary == {"lines": 2 * CHUNK, "ok": 0, "failed": 2 * CHUNK, "stopped_at": 1}
    assert dep.store.count_records() == CHUNK


def test_a_result_line_with_text_that_is_not_unicode_still_encodes():
    line = {"line": 1, "status": 400, "error": {"error": "bad_request", "message": "x\ud800"}}
    assert json.loads(_encode(line)) == line
    assert _encode({"line": 2, "result": {"r": "ł"}}) == '{"line":2,"result":{"r":"ł"}}\n'.encode()
