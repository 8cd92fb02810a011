"""A batch of records sent again with its Idempotency-Key is stored once.

Through the HTTP edge of a real gateway (SQLite, and PostgreSQL shared by two gateways as
two replicas share it): the same body and key again answer the same receipts and store
nothing more; the key with another body is refused (422); a key whose first request still
runs gets 409 with Retry-After; a window a dead gateway was storing is answered "outcome
unknown", never stored twice; a window that failed with a 503 is stored by the retry. The
client sends a key with every batch request of ``ingest_many`` and sends it again after
its answer broke off, and every record is stored once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from tests.initial_log import logged_by_init

from sovra.auth import make_token
from sovra.client import Client
from sovra.deployment import CONFIG_NAME, Deployment
from sovra.errors import Unavailable
from sovra.server import create_app
from sovra.server.background import running
from sovra.store.idempotency import idempotency_keys

PATH = "/v1/records/batch"
KEY = "batch-0123456789abcdef"


def _lines(n: int, tag: str = "a") -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "subject_id": f"person{i}-{tag}@example.pl",
                "jurisdiction": "PL",
                "content": f"note {tag} {i}",
            }
        )
        + b"\n"
        for i in range(n)
    )


def _post(
    http: Any, dep: Deployment, body: bytes, key: str | None = KEY, path: str = PATH
) -> httpx.Response:
    token = make_token(
        dep.principal_key("svc-pl"), "svc-pl", "POST", path, body, now_s=int(time.time())
    )
    headers = {"authorization": f"Sovra {token}", "content-type": "application/x-ndjson"}
    if key is not None:
        headers["idempotency-key"] = key
    response: httpx.Response = http.post(path, content=body, headers=headers)
    return response


def _answer(response: httpx.Response) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    assert response.status_code == 200, response.text
    lines = [orjson.loads(t) for t in response.content.splitlines()]
    return lines[:-1], lines[-1]["summary"]


def _stored(dep: Deployment) -> tuple[int, int]:
    """(records, log entries besides those of ``sovra init``) of the deployment, as stored
    (another replica's included)."""
    return dep.store.count_records(), dep.gateway.log.stored_size() - logged_by_init(dep)


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/idem", custodians="in-process")
    d = Deployment.open(root)
    yield d
    d.close()


def test_the_same_batch_and_key_again_answers_the_same_receipts_and_stores_nothing(dep):
    body = _lines(5)
    with TestClient(create_app(dep)) as http:
        first, summary = _answer(_post(http, dep, body))
        assert [r["status"] for r in first] == [201] * 5
        assert summary == {"lines": 5, "ok": 5, "failed": 0, "replayed": 0}
        stored = _stored(dep)
        again, summary = _answer(_post(http, dep, body))
    assert again == first  # the same record ids, log indices and signed receipts
    assert summary == {"lines": 5, "ok": 5, "failed": 0, "replayed": 5}
    assert _stored(dep) == stored


def test_refused_lines_are_replayed_too_and_logged_once(dep):
    body = (
        _lines(2)
        + b'{"subject_id": "x@example.pl", "jurisdiction": "ZZ", "content": "x"}\n'
        # A line refused for a lone surrogate.
        + b'{"subject_id": "y@example.pl", "jurisdiction": "PL", "content": "\\ud800"}\n'
        + _lines(1, tag="z")
    )
    with TestClient(create_app(dep)) as http:
        raw = _post(http, dep, body)
        first, _ = _answer(raw)
        stored = _stored(dep)
        again_raw = _post(http, dep, body)
        _, summary = _answer(again_raw)
    assert [r["status"] for r in first] == [201, 201, 400, 400, 201]
    assert [r["line"] for r in first] == [1, 2, 3, 4, 5]
    assert again_raw.content.splitlines()[:-1] == raw.content.splitlines()[:-1]
    assert summary["replayed"] == 5
    assert _stored(dep) == stored


def test_the_key_with_another_body_is_refused_and_stores_nothing(dep):
    with TestClient(create_app(dep)) as http:
        _answer(_post(http, dep, _lines(3)))
        stored = _stored(dep)
        refused = _post(http, dep, _lines(3, tag="b"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "idempotency_key_reused"
    assert _stored(dep) == stored


def test_another_principals_key_of_the_same_name_is_its_own(dep):
    with TestClient(create_app(dep)) as http:
        _answer(_post(http, dep, _lines(2)))
        body = _lines(2).replace(b'"PL"', b'"VN"').replace(b"example.pl", b"example.vn")
        token = make_token(
            dep.principal_key("svc-vn"), "svc-vn", "POST", PATH, body, now_s=int(time.time())
        )
        headers = {
            "authorization": f"Sovra {token}",
            "content-type": "application/x-ndjson",
            "idempotency-key": KEY,
        }
        lines, summary = _answer(http.post(PATH, content=body, headers=headers))
    # Not a reuse of svc-pl's key, and nothing of svc-pl's answer is shown to svc-vn.
    assert [r["status"] for r in lines] == [201, 201]
    assert summary["replayed"] == 0
    assert _stored(dep)[0] == 4


@pytest.mark.parametrize(
    ("key", "path", "message"),
    [
        ("short", PATH, "Idempotency-Key must be 8 to 128 characters"),
        ("has spaces in it", PATH, "Idempotency-Key must be 8 to 128 characters"),
        (KEY, "/v1/access/batch", "Idempotency-Key is taken by POST /v1/records/batch only"),
    ],
)
def test_a_bad_key_or_a_key_on_an_access_batch_is_refused(dep, key, path, message):
    body = _lines(1) if path == PATH else b'{"purpose": "customer-support", "record_ids": []}\n'
    with TestClient(create_app(dep)) as http:
        refused = _post(http, dep, body, key=key, path=path)
    assert refused.status_code == 400, refused.text
    assert message in refused.json()["message"]
    assert _stored(dep) == (0, 0)


def _digest(body: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(PATH.encode() + b"\n" + b"\n".join(body.splitlines())).digest()


def test_a_key_whose_first_request_runs_gets_409_with_retry_after(dep):
    body = _lines(2)
    keys = idempotency_keys(dep.store, clock=time.time)
    assert keys is not None
    keys.claim("svc-pl", KEY, _digest(body), 2)  # another replica is answering it now
    with TestClient(create_app(dep)) as http:
        busy = _post(http, dep, body)
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"] == "idempotency_key_in_flight"
    assert int(busy.headers["retry-after"]) >= 1
    assert _stored(dep) == (0, 0)


def test_a_window_a_dead_gateway_was_storing_is_answered_unknown_not_stored_again(dep):
    body = _lines(3)
    # A gateway claimed the key an hour ago, began storing lines 1..3, and died: its lease
    # lapsed long since, the window stayed marked.
    past = idempotency_keys(dep.store, clock=lambda: time.time() - 3600)
    assert past is not None
    claim = past.claim("svc-pl", KEY, _digest(body), 3)
    past.running("svc-pl", KEY, claim.owner, 0, 3)
    with TestClient(create_app(dep)) as http:
        lines, summary = _answer(_post(http, dep, body))
        again, _ = _answer(_post(http, dep, body))
    assert {r["status"] for r in lines} == {409}
    assert {r["error"]["error"] for r in lines} == {"outcome_unknown"}
    assert summary == {"lines": 3, "ok": 0, "failed": 3, "replayed": 0}
    assert again == lines  # recorded as such
    assert _stored(dep) == (0, 0)


def test_an_expired_key_is_forgotten_and_the_batch_runs_anew(dep):
    body = _lines(1)
    old = idempotency_keys(dep.store, clock=lambda: time.time() - 2 * 86_400)
    assert old is not None
    claim = old.claim("svc-pl", KEY, _digest(_lines(1, tag="other")), 1)
    old.release("svc-pl", KEY, claim.owner, complete=True)
    with TestClient(create_app(dep)) as http:
        lines, _ = _answer(_post(http, dep, body))  # the old body's key is past the window
    assert [r["status"] for r in lines] == [201]


# -- the client: a broken answer is sent again with its key ------------------------------


class _CutFirstBatch(httpx.HTTPTransport):
    """A real connection to the gateway whose first batch answer breaks off after a few
    lines, as a dropped connection or a proxy's timeout would cut it."""

    def __init__(self, keep_lines: int) -> None:
        super().__init__()
        self.keep = keep_lines
        self.cut = False
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path != PATH:
            return response
        self.keys.append(request.headers["idempotency-key"])
        if self.cut:
            return response
        self.cut = True
        body = response.read()
        kept = b"".join(body.splitlines(keepends=True)[: self.keep])

        class Broken(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                yield kept
                raise httpx.ReadError("connection reset by peer")

        return httpx.Response(response.status_code, headers=response.headers, stream=Broken())


def test_the_client_sends_a_broken_batch_again_and_every_record_is_stored_once(dep):
    records = [
        {"subject_id": f"p{i}@example.pl", "jurisdiction": "PL", "content": f"n {i}"}
        for i in range(40)
    ]
    cutter = _CutFirstBatch(keep_lines=7)
    pauses: list[float] = []
    with running(create_app(dep)) as url:
        client = Client(
            url,
            "svc-pl",
            dep.principal_key("svc-pl"),
            transport=cutter,
            sleep=pauses.append,
        )
        with client:
            results = list(client.ingest_many(records, chunk=40, window=1))
    assert len(cutter.keys) == 2 and cutter.keys[0] == cutter.keys[1]  # sent again, same key
    assert pauses == [1.0]
    assert all(isinstance(r, dict) for r in results), results
    ids = [r["record_id"] for r in results]
    assert len(set(ids)) == 40
    assert _stored(dep)[0] == 40  # not 47
    assert sorted(dep.store.get_records(ids)) == sorted(ids)


def test_without_retries_the_broken_answer_is_unavailable(dep):
    cutter = _CutFirstBatch(keep_lines=2)
    records = [{"subject_id": "q@example.pl", "jurisdiction": "PL", "content": "n"}] * 4
    with running(create_app(dep)) as url:
        client = Client(url, "svc-pl", dep.principal_key("svc-pl"), transport=cutter, retries=0)
        with client, pytest.raises(Unavailable, match="broke off its answer"):
            list(client.ingest_many(records, window=1))
    assert len(cutter.keys) == 1


# -- PostgreSQL: two gateways (replicas) share the keys; a 503 window is stored later -----


@pytest.fixture
def pg_pair(tmp_path: Path, pg_dsn: str) -> Iterator[tuple[Deployment, Deployment, str]]:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/idem-pg", custodians="in-process", database=pg_dsn)
    with (root / CONFIG_NAME).open("a") as f:
        f.write("\n[postgres]\nlock_timeout_s = 0.5\n")
    first, second = Deployment.open(root), Deployment.open(root)
    yield first, second, pg_dsn
    first.close()
    second.close()


@pytest.mark.postgres
def test_a_batch_sent_to_another_replica_with_its_key_is_replayed_there(pg_pair):
    a, b, _ = pg_pair
    body = _lines(4)
    with TestClient(create_app(a)) as http_a, TestClient(create_app(b)) as http_b:
        first, _ = _answer(_post(http_a, a, body))
        stored = _stored(a)
        again, summary = _answer(_post(http_b, b, body))
    assert again == first
    assert summary["replayed"] == 4
    assert _stored(b) == stored


@pytest.mark.postgres
def test_a_window_answered_503_is_stored_by_the_retry_once(pg_pair):
    a, b, dsn = pg_pair
    body = _lines(3)
    with TestClient(create_app(a)) as http_a, TestClient(create_app(b)) as http_b:
        with psycopg.connect(dsn) as other:  # another session holds the sequencer's row
            other.execute("SELECT next_index FROM log_state WHERE id = 1 FOR UPDATE")
            failed, summary = _answer(_post(http_a, a, body))
            other.rollback()
        assert {r["status"] for r in failed} == {503}
        assert all("lock_timeout" in r["error"]["message"] for r in failed)
        assert summary["ok"] == 0
        assert _stored(a) == (0, 0)
        stored, summary = _answer(_post(http_b, b, body))  # the retry, through the other
        assert [r["status"] for r in stored] == [201] * 3
        assert summary["replayed"] == 0
        again, summary = _answer(_post(http_a, a, body))
    assert again == stored
    assert summary["replayed"] == 3
    assert _stored(a) == (3, 3)
