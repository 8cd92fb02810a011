"""The custodian as its own service: a real HTTP connection on loopback, every bad input."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from _allow import logged_allow
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.deployment import Deployment
from sovra.errors import BadRequest, Denied, IntegrityError, NotFound, Unauthenticated, Unavailable
from sovra.keys import Custodian, LocalCustodian, load_ed25519, open_blob, seal, write_secret
from sovra.keys.remote import API_PREFIX, RemoteCustodian
from sovra.model import (
    RecordHeader,
    ReleaseAuthorization,
    subject_commitment,
)
from sovra.server.custodian import RateLimiter, Throttled, create_custodian_app

TOKEN = b"t" * 32
REQUESTER = "svc-pl"
ALICE = subject_commitment(b"c" * 32, "PL", "alice")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    url: str
    custodian: LocalCustodian
    log_key: Ed25519PrivateKey


def _serve(
    custodian: LocalCustodian, **limits: Any
) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = _free_port()
    app = create_custodian_app(custodian, token=TOKEN, **limits)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the custodian service did not start"
    return server, thread, f"http://127.0.0.1:{port}"


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log_key = Ed25519PrivateKey.generate()
    path = tmp_path_factory.mktemp("custodian") / "PL.key"
    custodian = LocalCustodian.create(path, "PL", log_key.public_key())
    server, thread, url = _serve(custodian)
    try:
        yield Service(url, custodian, log_key)
    finally:
        _stop(server, thread)
        custodian.close()


@pytest.fixture
def remote(service: Service) -> Iterator[RemoteCustodian]:
    with RemoteCustodian(service.url, "PL", TOKEN) as r:
        yield r


def header(record_id: str = "r-1", subject: str = ALICE, version: int = 1) -> RecordHeader:
    return RecordHeader(record_id, subject, "PL", "eu", version)


def authorize(
    log_key: Ed25519PrivateKey,
    headers: list[RecordHeader],
    *,
    allow: bool = True,
    time_ms: int | None = None,
    purpose: str = "customer-support",
    signer: Ed25519PrivateKey | None = None,
    action: str = "read",
) -> ReleaseAuthorization:
    return logged_allow(
        log_key,
        headers,
        principal=REQUESTER,
        purpose=purpose,
        action=action,
        allow=allow,
        time_ms=time_ms,
        signer=signer,
        index=3,
    )


def test_remote_satisfies_the_protocol(remote: RemoteCustodian) -> None:
    assert isinstance(remote, Custodian)
    assert remote.jurisdiction == "PL"
    assert remote.current_kek_version == 1
    assert remote.health()["ekmFleetDetails"][0]["healthStatus"] == "ACTIVE"


def test_wrap_and_unwrap_a_batch_over_http(remote: RemoteCustodian, service: Service) -> None:
    headers = [header(f"r-batch-{i}") for i in range(5)]
    sealed = [seal(h, f"text {i}".encode()) for i, h in enumerate(headers)]
    wrapped = [remote.wrap(key, h) for h, (_, key) in zip(headers, sealed, strict=True)]
    keys = remote.unwrap_many(
        list(zip(wrapped, headers, strict=True)), authorize(service.log_key, headers), REQUESTER
    )
    for i, (h, (blob, _), key) in enumerate(zip(headers, sealed, keys, strict=True)):
        assert open_blob(h, blob, key) == f"text {i}".encode()
    journal = service.custodian.journal()
    assert [e.outcome for e in journal[-5:]] == ["released"] * 5


# -- bad input, each refused with a precise error, nothing released --------------------------


@pytest.fixture
def one(remote: RemoteCustodian) -> tuple[Any, RecordHeader]:
    h = header(f"r-{time.monotonic_ns()}")
    _, key = seal(h, b"x")
    return remote.wrap(key, h), h


def test_no_authorization(remote: RemoteCustodian, one: Any) -> None:
    wrapped, h = one
    with pytest.raises(Denied, match="none was presented"):
        remote.unwrap(wrapped, h, None, REQUESTER)


def test_forged_receipt(remote: RemoteCustodian, service: Service, one: Any) -> None:
    wrapped, h = one
    forged = authorize(service.log_key, [h], signer=Ed25519PrivateKey.generate())
    with pytest.raises(Denied, match=r"AccessDeniedException.*signature is not the log's"):
        remote.unwrap(wrapped, h, forged, REQUESTER)


def test_replayed_receipt(remote: RemoteCustodian, service: Service, one: Any) -> None:
    wrapped, h = one
    stale = authorize(service.log_key, [h], time_ms=int(time.time() * 1000) - 3_600_000)
    with pytest.raises(Denied, match="ms old"):
        remote.unwrap(wrapped, h, stale, REQUESTER)


def test_denied_decision_presented_as_allowed(
    remote: RemoteCustodian, service: Service, one: Any
) -> None:
    wrapped, h = one
    with pytest.raises(Denied, match="effect is 'deny'"):
        remote.unwrap(wrapped, h, authorize(service.log_key, [h], allow=False), REQUESTER)


def test_allow_for_another_record(remote: RemoteCustodian, service: Service, one: Any) -> None:
    wrapped, h = one
    with pytest.raises(Denied, match="does not cover this record"):
        remote.unwrap(wrapped, h, authorize(service.log_key, [header("r-other")]), REQUESTER)


def test_wrapped_key_for_another_subject(
    remote: RemoteCustodian, service: Service, one: Any
) -> None:
    wrapped, h = one
    bob = replace(h, subject=subject_commitment(b"c" * 32, "PL", "bob"))
    remote.wrap(b"k" * 32, header("r-bob", bob.subject))  # bob has a key of his own
    with pytest.raises(IntegrityError, match="failed authentication"):
        remote.unwrap(wrapped, bob, authorize(service.log_key, [bob]), REQUESTER)


def test_tampered_wrapped_key(remote: RemoteCustodian, service: Service, one: Any) -> None:
    wrapped, h = one
    bad = replace(wrapped, blob=wrapped.blob[:-1] + bytes([wrapped.blob[-1] ^ 1]))
    with pytest.raises(IntegrityError) as info:
        remote.unwrap(bad, h, authorize(service.log_key, [h]), REQUESTER)
    assert "tag" not in str(info.value)  # the cause stays in the service's log


def test_unknown_key_version(remote: RemoteCustodian, service: Service, one: Any) -> None:
    wrapped, h = one
    with pytest.raises(IntegrityError):
        remote.unwrap(
            replace(wrapped, kek_version=7), h, authorize(service.log_key, [h]), REQUESTER
        )


def test_shredded_subject(remote: RemoteCustodian, service: Service) -> None:
    carol = subject_commitment(b"c" * 32, "PL", "carol")
    h = header("r-carol", carol)
    wrapped = remote.wrap(b"k" * 32, h)
    assert remote.shred(carol) is True
    with pytest.raises(NotFound, match=r"KeyNotFoundException.*crypto-shredded"):
        remote.unwrap(wrapped, h, authorize(service.log_key, [h]), REQUESTER)
    with pytest.raises(BadRequest, match="crypto-shredded"):
        remote.wrap(b"k" * 32, header("r-carol-2", carol))


def test_wrong_token(service: Service) -> None:
    with RemoteCustodian(service.url, "PL", b"x" * 32) as wrong, pytest.raises(Unauthenticated):
        wrong.metadata()


def test_other_jurisdiction(service: Service) -> None:
    with RemoteCustodian(service.url, "DE", TOKEN) as de, pytest.raises(NotFound, match="PL only"):
        de.metadata()


def test_unreachable() -> None:
    gone = RemoteCustodian(f"http://127.0.0.1:{_free_port()}", "PL", TOKEN)
    with gone, pytest.raises(Unavailable, match="cannot be reached"):
        gone.metadata()


def _raw(service: Service, path: str, body: Any, token: bytes = TOKEN) -> httpx.Response:
    return httpx.post(
        service.url + API_PREFIX + path,
        content=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token.hex()},
    )


META = {"callerPrincipal": "test", "operation": "metadata", "requestId": "req-1"}


@pytest.mark.parametrize(
    ("body", "status", "name"),
    [
        ({"requestMetadata": META}, 200, None),
        ({"requestMetadata": {**META, "operation": "wrap"}}, 400, "ValidationException"),
        ({"requestMetadata": {**META, "extra": 1}}, 400, "ValidationException"),
        ({"requestMetadata": META, "extra": 1}, 400, "ValidationException"),
        ({}, 400, "ValidationException"),
        ([], 400, "ValidationException"),
        ({"requestMetadata": {**META, "requestId": "x" * 200}}, 400, "ValidationException"),
    ],
    ids=["ok", "wrong-operation", "unknown-meta", "unknown-field", "no-meta", "array", "long-id"],
)
def test_request_metadata_is_checked(
    service: Service, body: Any, status: int, name: str | None
) -> None:
    response = _raw(service, "/keys/PL/metadata", body)
    assert response.status_code == status
    if name:
        assert response.json()["errorName"] == name


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not valid JSON"),
        (b'{"requestMetadata": {"callerPrincipal": "\\ud800"}}', "surrogate"),
        (b'{"requestMetadata": {}, "requestMetadata": {}}', "duplicate field"),
        (b"[" * 10_000 + b"]" * 10_000, "nests deeper"),
        (b"\xff{}", "UTF-8"),
    ],
    ids=["not-json", "lone-surrogate", "duplicate-field", "deep", "bad-utf8"],
)
def test_malformed_bodies_are_refused_by_the_bounded_parser(
    service: Service, raw: bytes, why: str
) -> None:
    response = httpx.post(
        service.url + API_PREFIX + "/keys/PL/metadata",
        content=raw,
        headers={"Authorization": "Bearer " + TOKEN.hex()},
    )
    assert response.status_code == 400
    assert response.json()["errorName"] == "ValidationException"
    assert why in response.json()["errorMessage"]


def test_justification_must_be_the_logged_purpose(
    service: Service, remote: RemoteCustodian
) -> None:
    h = header("r-justify")
    wrapped = remote.wrap(b"k" * 32, h)
    auth = authorize(service.log_key, [h])
    body = {
        "requestMetadata": {**META, "operation": "unwrap"},
        "items": [
            {
                "header": base64.b64encode(h.to_bytes()).decode(),
                "kekVersion": wrapped.kek_version,
                "wrapped": base64.b64encode(wrapped.blob).decode(),
            }
        ],
        "authorization": {
            "entry": base64.b64encode(auth.entry).decode(),
            "receipt": auth.receipt.to_dict(),
        },
        "justification": "marketing",
        "requester": REQUESTER,
    }
    response = _raw(service, "/keys/PL/unwrap", body)
    assert response.status_code == 403
    assert response.json()["errorName"] == "AccessDeniedException"
    assert "justification" in response.json()["errorMessage"]
    body["justification"] = "customer-support"
    ok = _raw(service, "/keys/PL/unwrap", body)
    assert ok.status_code == 200
    assert base64.b64decode(ok.json()["items"][0]["dataKey"]) == b"k" * 32


def test_get_is_not_allowed(service: Service) -> None:
    assert httpx.get(service.url + API_PREFIX + "/health").status_code == 405


def test_throttling_answers_429_with_retry_after(tmp_path: Path) -> None:
    log_key = Ed25519PrivateKey.generate()
    custodian = LocalCustodian.create(tmp_path / "PL.key", "PL", log_key.public_key())
    server, thread, url = _serve(custodian, rate_per_s=0.01, burst=2)
    try:
        svc = Service(url, custodian, log_key)
        codes = [_raw(svc, "/keys/PL/metadata", {"requestMetadata": META}) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert codes[2].json()["errorName"] == "ThrottlingException"
        assert int(codes[2].headers["Retry-After"]) >= 1
        other = {"requestMetadata": {**META, "callerPrincipal": "another"}}
        assert _raw(svc, "/keys/PL/metadata", other).status_code == 200  # per caller
        r = RemoteCustodian(url, "PL", TOKEN, caller="test")
        with r, pytest.raises(Unavailable, match="ThrottlingException"):
            r.metadata()
    finally:
        _stop(server, thread)
        custodian.close()


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(10, 1, clock=lambda: now[0])
    limiter.take("a")
    with pytest.raises(Throttled):
        limiter.take("a")
    now[0] += 0.1
    limiter.take("a")


# -- the gateway with a remote custodian ------------------------------------------------------


def test_gateway_flows_through_a_remote_custodian(tmp_path: Path) -> None:
    root = tmp_path / "deployment"
    Deployment.init(
        root, jurisdictions=["PL", "VN"], origin="sovra.test/remote", custodians="in-process"
    )
    log_public = load_ed25519(root / "keys" / "log.key").public_key()
    served = LocalCustodian.open(root / "custodians" / "PL.key", "PL", log_public)
    server, thread, url = _serve(served)
    dep = Deployment.open(root)
    remote = RemoteCustodian(url, "PL", TOKEN)
    try:
        gw = dep.gateway
        gw.custodians = {**gw.custodians, "PL": remote}
        svc = dep.store.get_principal("svc-pl")
        ids = [
            gw.ingest(
                svc, subject_id="anna@example.pl", jurisdiction="PL", content=f"n{i}"
            ).record_id
            for i in range(3)
        ]
        got = gw.access(svc, purpose="customer-support", record_ids=ids).records
        assert got == {r: f"n{i}" for i, r in enumerate(ids)}
        assert [e.outcome for e in served.journal()[-3:]] == ["released"] * 3
        assert remote.rotate()["destroyedVersions"] == [1]
        assert gw.access(svc, purpose="customer-support", record_ids=ids).records == got
        dep.governance.shred(
            dep.store.get_principal("authority-pl"), jurisdiction="PL", subject_id="anna@example.pl"
        )
        with pytest.raises(NotFound):
            gw.access(svc, purpose="customer-support", record_ids=ids[:1])
    finally:
        remote.close()
        dep.close()
        _stop(server, thread)
        served.close()


def test_a_deployment_uses_the_custodian_service_its_url_file_names(tmp_path: Path) -> None:
    root = tmp_path / "deployment"
    Deployment.init(
        root, jurisdictions=["PL", "VN"], origin="sovra.test/remote-url", custodians="in-process"
    )
    log_public = load_ed25519(root / "keys" / "log.key").public_key()
    served = LocalCustodian.open(root / "custodians" / "PL.key", "PL", log_public)
    server, thread, url = _serve(served)
    (root / "custodians" / "PL.url").write_text(url + "\n")
    write_secret(root / "custodians" / "PL.token", TOKEN)
    dep = Deployment.open(root)
    try:
        assert isinstance(dep.gateway.custodians["PL"], RemoteCustodian)
        assert isinstance(dep.gateway.custodians["VN"], LocalCustodian)
        svc = dep.store.get_principal("svc-pl")
        rid = dep.gateway.ingest(
            svc, subject_id="anna@example.pl", jurisdiction="PL", content="via the service"
        ).record_id
        got = dep.gateway.access(svc, purpose="customer-support", record_ids=[rid]).records
        assert got == {rid: "via the service"}
        assert served.journal()[-1].outcome == "released"
    finally:
        dep.close()
        _stop(server, thread)
        served.close()


# -- protected values over HTTP ----------------------------------------------------------------


def test_protect_and_reveal_over_http(remote: RemoteCustodian, service: Service) -> None:
    h = header(f"r-values-{time.monotonic_ns()}")
    token, sealed = remote.protect(
        h, [("tokenize", "pl_pesel", "44051401359"), ("seal", "iban", "PL61 1090 1014")]
    )
    assert remote.protect(h, [("tokenize", "pl_pesel", "44051401359")]) == [token]
    items = [(h, "tokenize", "pl_pesel", token), (h, "seal", "iban", sealed)]
    # A read allow is not a reveal allow.
    with pytest.raises(Denied, match="not 'reveal'"):
        remote.reveal(items, authorize(service.log_key, [h]), REQUESTER)
    with pytest.raises(Denied, match="none was presented"):
        remote.reveal(items, None, REQUESTER)
    allow = authorize(service.log_key, [h], action="reveal")
    assert remote.reveal(items, allow, REQUESTER) == ["44051401359", "PL61 1090 1014"]
    # A body that does not open stays unrevealed rather than failing the batch.
    assert remote.reveal([(h, "seal", "iban", token)], allow, REQUESTER) == [None]
    assert [e.outcome for e in service.custodian.journal()[-1:]] == ["revealed"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"mode": "erase", "kind": "iban", "value": "x"}, "mode must be"),
        ({"mode": "seal", "kind": "IBAN!", "value": "x"}, "is not a kind name"),
        ({"mode": "seal", "kind": "iban", "value": ""}, "1..1024 bytes"),
        ({"mode": "seal", "kind": "iban", "value": "x" * 1025}, "1..1024 bytes"),
        ({"mode": "seal", "kind": "iban"}, "missing value"),
    ],
)
def test_bad_protect_items_are_refused(
    service: Service, item: dict[str, Any], message: str
) -> None:
    body = {
        "requestMetadata": {"callerPrincipal": "gw", "operation": "protect", "requestId": "1"},
        "header": base64.b64encode(header().to_bytes()).decode(),
        "items": [item],
    }
    response = _raw(service, "/keys/PL/protect", body)
    assert response.status_code == 400
    assert response.json()["errorName"] == "ValidationException"
    assert message in response.json()["errorMessage"]
