"""The custodian as its own service: a real HTTP connection on loopback, every bad input."""

from __future__ import annotations

import base64
import contextlib
import json
import os
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
from sovra.gateway import IngestItem, IngestReceipt
from sovra.keys import Custodian, LocalCustodian, load_ed25519, open_blob, seal, write_secret
from sovra.keys.envelope import new_data_key
from sovra.keys.remote import API_PREFIX, RemoteCustodian
from sovra.model import (
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    subject_commitment,
)
from sovra.server.custodian import (
    CustodianCalls,
    RateLimiter,
    Throttled,
    create_custodian_app,
)
from sovra.server.custodian_socket import serve_frames

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
    socket_url: str = ""
    """The same custodian on a Unix socket, in frames (as ``sovra serve`` reaches it)."""


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
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path.parent / "PL.sock"))
    listener.listen(16)
    stop = threading.Event()
    frames = threading.Thread(
        target=serve_frames,
        args=(listener, CustodianCalls(custodian), TOKEN),
        kwargs={"peers": frozenset({os.geteuid()}), "stop": stop},
    )
    frames.start()
    try:
        yield Service(url, custodian, log_key, f"unix:{path.parent / 'PL.sock'}")
    finally:
        stop.set()
        frames.join(timeout=10)
        _stop(server, thread)
        custodian.close()


@pytest.fixture(params=["http", "unix"])
def remote(service: Service, request: pytest.FixtureRequest) -> Iterator[RemoteCustodian]:
    """The service's client over HTTP, and over the local socket: every test of it runs
    on both carriers."""
    url = service.url if request.param == "http" else service.socket_url
    with RemoteCustodian(url, "PL", TOKEN, timeout_s=_PATIENT_S) as r:
        yield r


_PATIENT_S = 120.0
"""How long a call may take before the test gives up: a 16 MiB body, or a thousand keys,
takes seconds on a busy machine, and the client's 5 s default is for production."""


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
    carol = subject_commitment(b"c" * 32, "PL", f"carol-{time.time_ns()}")
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
        timeout=_PATIENT_S,
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
        timeout=_PATIENT_S,
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


@contextlib.contextmanager
def _remote_pl(
    tmp_path: Path, origin: str
) -> Iterator[tuple[Deployment, RemoteCustodian, LocalCustodian]]:
    """A deployment whose gateway asks PL's custodian over HTTP: the deployment, the
    gateway's client and the custodian the service serves."""
    root = tmp_path / "deployment"
    Deployment.init(root, jurisdictions=["PL", "VN"], origin=origin, custodians="in-process")
    log_public = load_ed25519(root / "keys" / "log.key").public_key()
    served = LocalCustodian.open(root / "custodians" / "PL.key", "PL", log_public)
    server, thread, url = _serve(served)
    dep = Deployment.open(root)
    remote = RemoteCustodian(url, "PL", TOKEN)
    try:
        dep.gateway.custodians = {**dep.gateway.custodians, "PL": remote}
        yield dep, remote, served
    finally:
        remote.close()
        dep.close()
        _stop(server, thread)
        served.close()


def test_gateway_flows_through_a_remote_custodian(tmp_path: Path) -> None:
    with _remote_pl(tmp_path, "sovra.test/remote") as (dep, remote, served):
        gw = dep.gateway
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


# -- batched calls: wrap_many, protect_many, unwrap_batches, one round trip each -------------


def _count_posts(remote: RemoteCustodian) -> list[str]:
    """Record the path of every request *remote* sends from now on."""
    paths: list[str] = []
    if remote._client is not None:
        remote._client.event_hooks["request"].append(lambda r: paths.append(r.url.path))
        return paths
    frames = remote._frames
    assert frames is not None
    call = frames.call

    def counted(body: bytes, limit: int) -> tuple[int, bytes]:
        operation = json.loads(body)["requestMetadata"]["operation"]
        paths.append(f"{API_PREFIX}/keys/PL/{operation}")  # the path it would have over HTTP
        return call(body, limit)

    frames.call = counted  # type: ignore[method-assign]
    return paths


def test_batched_calls_over_http_are_one_round_trip_each(
    remote: RemoteCustodian, service: Service
) -> None:
    people = [subject_commitment(b"c" * 32, "PL", f"batch-{i}-{time.time_ns()}") for i in range(4)]
    headers = [header(f"r-many-{i}-{time.time_ns()}", people[i % 4]) for i in range(12)]
    sealed = [seal(h, f"text {i}".encode()) for i, h in enumerate(headers)]
    remote.current_kek_version  # noqa: B018 - cached before counting
    before = service.custodian.status().subjects
    paths = _count_posts(remote)
    wrapped = remote.wrap_many([(key, h) for h, (_, key) in zip(headers, sealed, strict=True)])
    protected = remote.protect_many(
        [(h, [("tokenize", "pl_pesel", "44051401359")]) for h in headers]
    )
    results = remote.unwrap_batches(
        [
            ([(w, h)], authorize(service.log_key, [h]), REQUESTER)
            for w, h in zip(wrapped, headers, strict=True)
        ]
    )
    assert paths == [
        f"{API_PREFIX}/keys/PL/wrap",
        f"{API_PREFIX}/keys/PL/protect-many",
        f"{API_PREFIX}/keys/PL/unwrap-batches",
    ]
    assert service.custodian.status().subjects == before + 4
    assert protected[0] == protected[4] != protected[1]
    for i, (h, (blob, _), result) in enumerate(zip(headers, sealed, results, strict=True)):
        assert isinstance(result, list)
        assert open_blob(h, blob, result[0]) == f"text {i}".encode()


def test_unwrap_batches_over_http_gives_each_refusal_its_slot(
    remote: RemoteCustodian, service: Service
) -> None:
    dave = subject_commitment(b"c" * 32, "PL", f"dave-{time.time_ns()}")
    headers = [header(f"r-slots-{i}-{time.time_ns()}") for i in range(5)]
    headers[3] = replace(headers[3], subject=dave)
    wrapped = remote.wrap_many([(bytes([i]) * 32, h) for i, h in enumerate(headers)])
    remote.shred(dave)
    bad = replace(wrapped[2], blob=bytes(60))
    forged = authorize(service.log_key, [headers[1]], signer=Ed25519PrivateKey.generate())
    stale = authorize(service.log_key, [headers[4]], time_ms=int(time.time() * 1000) - 3_600_000)
    results = remote.unwrap_batches(
        [
            ([(wrapped[0], headers[0])], authorize(service.log_key, [headers[0]]), REQUESTER),
            ([(wrapped[1], headers[1])], forged, REQUESTER),
            ([(bad, headers[2])], authorize(service.log_key, [headers[2]]), REQUESTER),
            ([(wrapped[3], headers[3])], authorize(service.log_key, [headers[3]]), REQUESTER),
            ([(wrapped[4], headers[4])], stale, REQUESTER),
            ([(wrapped[0], headers[0])], None, REQUESTER),
        ]
    )
    assert results[0] == [bytes(32)]
    assert isinstance(results[1], Denied) and "signature is not the log's" in results[1].message
    assert isinstance(results[2], IntegrityError) and "tag" not in results[2].message
    assert isinstance(results[3], NotFound) and "crypto-shredded" in results[3].message
    assert isinstance(results[4], Denied) and "ms old" in results[4].message
    assert isinstance(results[5], Denied) and "none was presented" in results[5].message


def test_a_justification_that_is_not_the_logged_purpose_is_denied_in_its_slot(
    remote: RemoteCustodian, service: Service
) -> None:
    h = header(f"r-why-{time.time_ns()}")
    wrapped = remote.wrap(b"w" * 32, h)
    good = _unwrap_request(wrapped, h, authorize(service.log_key, [h]))
    body = {
        "requestMetadata": BATCH_META,
        "requests": [{**good, "justification": "marketing"}, good],
    }
    response = _raw(service, "/keys/PL/unwrap-batches", body)
    assert response.status_code == 200
    denied, released = response.json()["results"]
    assert denied["errorName"] == "AccessDeniedException"
    assert "justification 'marketing' is not the purpose" in denied["errorMessage"]
    assert base64.b64decode(released["items"][0]["dataKey"]) == b"w" * 32


def test_wrap_many_over_http_is_all_or_none(remote: RemoteCustodian, service: Service) -> None:
    before = service.custodian.status().subjects
    people = [subject_commitment(b"c" * 32, "PL", f"eve-{i}-{time.time_ns()}") for i in range(3)]
    items = [(b"k" * 32, header(f"r-eve-{i}", p)) for i, p in enumerate(people)]
    items.append((b"k" * 31, header("r-eve-short", people[0])))
    with pytest.raises(BadRequest, match=r"ValidationException: item 3: record r-eve-short"):
        remote.wrap_many(items)
    assert service.custodian.status().subjects == before


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unwrap_request(
    wrapped: WrappedKey, h: RecordHeader, auth: ReleaseAuthorization, **changes: Any
) -> dict[str, Any]:
    return {
        "items": [{"header": _b64(h.to_bytes()), "kekVersion": 1, "wrapped": _b64(wrapped.blob)}],
        "authorization": {"entry": _b64(auth.entry), "receipt": auth.receipt.to_dict()},
        "justification": "customer-support",
        "requester": REQUESTER,
        **changes,
    }


BATCH_META = {"callerPrincipal": "test", "operation": "unwrap-batches", "requestId": "req-b"}


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("ok", 200, ""),
        ("no requests", 400, "requests must be a list of 1..1000"),
        ("too many requests", 400, "requests must be a list of 1..1000"),
        ("too many keys", 400, "at most 10000 keys"),
        ("not a list", 400, "requests must be a list"),
        ("unknown field", 400, "unwrap request 0 has unknown field(s) extra"),
        ("missing field", 400, "unwrap request 0 is missing requester"),
        ("bad base64", 400, "unwrap request 0: wrapped is not valid base64"),
        ("bad justification", 400, "unwrap request 0: justification must be"),
        ("bad version", 400, "unwrap request 0: kekVersion must be an integer"),
        ("forged receipt", 400, "unwrap request 0: "),
        ("replayed to unwrap", 400, "operation is 'unwrap-batches', but this is unwrap"),
        ("replayed from unwrap", 400, "operation is 'unwrap', but this is unwrap-batches"),
        ("oversized", 400, "bytes, over the 16777216-byte limit"),
    ],
)
def test_hostile_unwrap_batches_bodies_get_a_precise_4xx_and_change_nothing(
    remote: RemoteCustodian, service: Service, case: str, status: int, message: str
) -> None:
    h = header(f"r-hostile-{time.time_ns()}")
    wrapped = remote.wrap(b"h" * 32, h)
    good = _unwrap_request(wrapped, h, authorize(service.log_key, [h]))
    before = (service.custodian.status(), len(service.custodian.journal()))
    path = "/keys/PL/unwrap-batches"
    body: Any = {"requestMetadata": BATCH_META, "requests": [good]}
    if case == "no requests":
        body["requests"] = []
    elif case == "too many requests":
        body["requests"] = [good] * 1001
    elif case == "too many keys":
        body["requests"] = [{**good, "items": good["items"] * 1000}] * 11
    elif case == "not a list":
        body["requests"] = good
    elif case == "unknown field":
        body["requests"] = [{**good, "extra": 1}]
    elif case == "missing field":
        body["requests"] = [{k: v for k, v in good.items() if k != "requester"}]
    elif case == "bad base64":
        body["requests"] = [{**good, "items": [{**good["items"][0], "wrapped": "%%%"}]}]
    elif case == "bad justification":
        body["requests"] = [{**good, "justification": "Not A Code"}]
    elif case == "bad version":
        body["requests"] = [{**good, "items": [{**good["items"][0], "kekVersion": True}]}]
    elif case == "forged receipt":
        receipt = {**good["authorization"]["receipt"], "signature": 7}
        body["requests"] = [
            {**good, "authorization": {**good["authorization"], "receipt": receipt}}
        ]
    elif case == "replayed to unwrap":
        path = "/keys/PL/unwrap"
        body = {"requestMetadata": BATCH_META, **good}
    elif case == "replayed from unwrap":
        body = {"requestMetadata": {**BATCH_META, "operation": "unwrap"}, "requests": [good]}
    elif case == "oversized":
        body["requests"] = [{**good, "requester": "x" * (17 * 1024 * 1024)}]
    response = _raw(service, path, body)
    assert response.status_code == status, response.text
    if status == 200:
        (slot,) = response.json()["results"]
        assert base64.b64decode(slot["items"][0]["dataKey"]) == b"h" * 32
        return
    assert response.json()["errorName"] == "ValidationException"
    assert message in response.json()["errorMessage"]
    after = (service.custodian.status(), len(service.custodian.journal()))
    assert after == before
    # Nothing was released, and the record still opens for a good request.
    assert remote.unwrap(wrapped, h, authorize(service.log_key, [h]), REQUESTER) == b"h" * 32


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "requests must be a list of 1..1000"),
        ([{"header": "AAAA", "items": []}], "protect request 0: "),
        ([{"items": []}], "protect request 0 is missing header"),
        ("x", "requests must be a list"),
    ],
)
def test_hostile_protect_many_bodies_get_a_precise_4xx(
    service: Service, requests: Any, message: str
) -> None:
    before = service.custodian.status()
    meta = {**BATCH_META, "operation": "protect-many"}
    response = _raw(
        service, "/keys/PL/protect-many", {"requestMetadata": meta, "requests": requests}
    )
    assert response.status_code == 400
    assert response.json()["errorName"] == "ValidationException"
    assert message in response.json()["errorMessage"]
    assert service.custodian.status() == before


def test_remote_batches_are_bounded_before_any_request(remote: RemoteCustodian) -> None:
    paths = _count_posts(remote)
    item = (WrappedKey("PL", 1, bytes(60)), header("r-bound"))
    with pytest.raises(BadRequest, match=r"1\.\.1000 requests"):
        remote.unwrap_batches([])
    with pytest.raises(BadRequest, match="at most 10000 keys"):
        remote.unwrap_batches([([item] * 1000, None, REQUESTER)] * 11)
    with pytest.raises(BadRequest, match=r"1\.\.1000 keys"):
        remote.wrap_many([])
    with pytest.raises(BadRequest, match=r"1\.\.1000 requests"):
        remote.protect_many([])
    (result,) = remote.unwrap_batches([([item], None, REQUESTER)])
    assert isinstance(result, Denied)
    assert paths == []


def test_an_oversized_body_is_refused_before_it_is_read_whole(service: Service) -> None:
    """Sent in chunks without a declared length: refused once the limit is passed (a body
    declaring a length over it is refused on that: the "oversized" case above)."""

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * (1024 * 1024)

    streamed = httpx.post(
        service.url + API_PREFIX + "/keys/PL/unwrap-batches",
        content=chunks(),
        headers={"Authorization": "Bearer " + TOKEN.hex()},
        timeout=_PATIENT_S,
    )
    assert streamed.status_code == 400
    assert streamed.json()["errorName"] == "ValidationException"
    assert "request body is over the 16777216-byte limit" in streamed.json()["errorMessage"]


# -- protect and wrap in one call (an ingest batch) ------------------------------------------


def test_protect_and_wrap_many_is_one_round_trip_that_gives_what_the_two_calls_give(
    remote: RemoteCustodian, service: Service
) -> None:
    people = [subject_commitment(b"c" * 32, "PL", f"pw-{i}-{time.time_ns()}") for i in range(3)]
    headers = [header(f"r-pw-{i}-{time.time_ns()}", people[i % 3]) for i in range(6)]
    keys = [new_data_key() for _ in headers]
    asked = [[("tokenize", "pl_pesel", "44051401359")] if i % 2 == 0 else [] for i in range(6)]
    remote.current_kek_version  # noqa: B018 - cached before counting
    before = service.custodian.status().subjects
    paths = _count_posts(remote)
    answers = remote.protect_and_wrap_many(
        [(k, h, items) for k, h, items in zip(keys, headers, asked, strict=True)]
    )
    assert paths == [f"{API_PREFIX}/keys/PL/protect-wrap"]
    assert service.custodian.status().subjects == before + 3
    # The tokens are those protect gives; the records without items got none.
    assert [bodies for bodies, _ in answers] == [
        remote.protect(h, items) if items else [] for h, items in zip(headers, asked, strict=True)
    ]
    # Each wrapped key is its record's data key, released against a logged allow.
    results = remote.unwrap_batches(
        [
            ([(w, h)], authorize(service.log_key, [h]), REQUESTER)
            for (_, w), h in zip(answers, headers, strict=True)
        ]
    )
    assert results == [[k] for k in keys]
    outcomes = [(e.operation, e.outcome) for e in service.custodian.journal()]
    assert outcomes.count(("wrap", "wrapped")) >= 6


def test_protect_and_wrap_many_refuses_the_whole_call_for_one_bad_request(
    remote: RemoteCustodian, service: Service
) -> None:
    carol = subject_commitment(b"c" * 32, "PL", f"pw-carol-{time.time_ns()}")
    remote.wrap(b"k" * 32, header(f"r-pw-carol-{time.time_ns()}", carol))
    assert remote.shred(carol) is True
    dave = subject_commitment(b"c" * 32, "PL", f"pw-dave-{time.time_ns()}")
    before = service.custodian.status().subjects
    good = (new_data_key(), header(f"r-pw-dave-{time.time_ns()}", dave), [])
    shredded = (new_data_key(), header("r-pw-carol-2", carol), [])
    with pytest.raises(BadRequest, match=r"item 1: record r-pw-carol-2: .*crypto-shredded"):
        remote.protect_and_wrap_many([good, shredded])
    with pytest.raises(BadRequest, match=r"item 0: .*a data key is 32 bytes, got 3"):
        remote.protect_and_wrap_many([(b"key", good[1], []), good])
    with pytest.raises(BadRequest, match="mode must be"):
        remote.protect_and_wrap_many([(good[0], good[1], [("erase", "iban", "x")])])
    assert service.custodian.status().subjects == before  # nothing made for dave


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"items": []}, "missing dataKey"),
        ({"dataKey": "%%", "items": []}, "dataKey is not valid base64"),
        ({"dataKey": "a2V5", "items": {}}, "items must be a list of 0..100"),
        ({"dataKey": "a2V5", "items": [{"mode": "seal", "kind": "iban"}]}, "missing value"),
    ],
)
def test_bad_protect_wrap_requests_are_refused_with_the_field(
    service: Service, request_body: dict[str, Any], message: str
) -> None:
    body = {
        "requestMetadata": {"callerPrincipal": "gw", "operation": "protect-wrap", "requestId": "1"},
        "requests": [{"header": base64.b64encode(header().to_bytes()).decode(), **request_body}],
    }
    response = _raw(service, "/keys/PL/protect-wrap", body)
    assert response.status_code == 400
    assert response.json()["errorName"] == "ValidationException"
    assert "protect-wrap request 0" in response.json()["errorMessage"]
    assert message in response.json()["errorMessage"]


def test_an_ingest_batch_asks_its_custodian_once_to_protect_and_wrap(tmp_path: Path) -> None:
    with _remote_pl(tmp_path, "sovra.test/remote-pw") as (dep, remote, _):
        gw = dep.gateway
        svc = dep.store.get_principal("svc-pl")
        remote.current_kek_version  # noqa: B018 - cached before counting
        paths = _count_posts(remote)
        texts = [f"note {i}" + (", PESEL 44051401359" if i % 2 else "") for i in range(6)]
        items = [IngestItem(f"pw-{i}@example.pl", "PL", text) for i, text in enumerate(texts)]
        receipts = gw.ingest_many(svc, items)
        assert paths == [f"{API_PREFIX}/keys/PL/protect-wrap"]
        ids = [r.record_id for r in receipts if isinstance(r, IngestReceipt)]
        assert len(ids) == 6
        assert [r.actions for r in receipts if isinstance(r, IngestReceipt)][1] == {
            "pl_pesel": "tokenize"
        }
        got = gw.access(svc, purpose="customer-support", record_ids=ids).records
        assert [got[r] for r in ids[::2]] == texts[::2]
        assert "44051401359" not in got[ids[1]]


@pytest.mark.parametrize("carrier", ["http", "unix"])
def test_a_custodian_of_an_earlier_release_is_asked_in_two_calls(
    service: Service, carrier: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A custodian without protect-wrap (no route over HTTP; a body naming no operation it
    knows over frames) is asked protect-many and wrap instead, from then on."""
    from sovra.server import custodian as served

    monkeypatch.setattr(
        served, "KEY_OPERATIONS", tuple(set(served.KEY_OPERATIONS) - {"protect-wrap"})
    )
    monkeypatch.delitem(served._OPERATION_FIELDS, "protect-wrap")
    server, thread, url = _serve(service.custodian)
    try:
        with RemoteCustodian(url if carrier == "http" else service.socket_url, "PL", TOKEN) as r:
            r.current_kek_version  # noqa: B018 - cached before counting
            paths = _count_posts(r)
            subject = subject_commitment(b"c" * 32, "PL", f"old-{time.time_ns()}")
            hs = [header(f"r-old-{n}-{time.time_ns()}", subject) for n in range(3)]
            asked = [[("tokenize", "pl_pesel", "44051401359")], [], []]
            keys = [new_data_key() for _ in hs]
            first = r.protect_and_wrap_many(list(zip(keys, hs, asked, strict=True)))
            again = r.protect_and_wrap_many([(keys[1], hs[1], [])])
            assert [p.rsplit("/", 1)[1] for p in paths] == [
                "protect-wrap",
                "protect-many",
                "wrap",
                "wrap",
            ]
            assert [b for b, _ in first] == [r.protect(hs[0], asked[0]), [], []]
            assert again[0][0] == []
            released = r.unwrap_batches(
                [
                    ([(w, h)], authorize(service.log_key, [h]), REQUESTER)
                    for (_, w), h in zip(first, hs, strict=True)
                ]
            )
            assert released == [[k] for k in keys]
    finally:
        _stop(server, thread)
