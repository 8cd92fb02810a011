"""Client-side sealing over HTTP: records sealed and opened on the client only.

Requests go through the real ASGI application (and, in one test, a real uvicorn server)
with real signed tokens. The gateway must never hold a data key or a plaintext.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.initial_log import logged_by_init

from sovra.client import Client
from sovra.deployment import Deployment
from sovra.errors import BadRequest, Denied, IntegrityError, NotFound
from sovra.keys import _aead, transport
from sovra.model import LogEntry, RecordHeader
from sovra.server import create_app
from sovra.server.background import running

SECRET = "Anna's sealed note: diagnosis F32.1, tel. +48 601 234 567"


@pytest.fixture
def app_client(dep):
    with TestClient(create_app(dep), raise_server_exceptions=True) as http:
        yield http


def _client(app_client: TestClient, dep: Deployment, clock: Any, who: str) -> Client:
    client = Client("http://testserver", who, dep.principal_key(who), clock=clock)
    client._http = app_client  # the ASGI app in process, through the client's own signing
    return client


@pytest.fixture
def svc(app_client, dep, clock) -> Client:
    return _client(app_client, dep, clock, "svc-pl")


def _entries(dep: Deployment) -> list[LogEntry]:
    """The entries logged after those of ``sovra init``."""
    log = dep.gateway.log
    return [LogEntry.from_bytes(log.entry(i)) for i in range(logged_by_init(dep), log.size)]


def _released(dep: Deployment, rid: str) -> list[Any]:
    return [
        j
        for j in dep.gateway.custodians["PL"].journal()  # type: ignore[attr-defined]
        if j.record_id == rid and j.outcome == "released"
    ]


def test_round_trip_logs_ingest_allow_and_release(svc, dep):
    receipt = svc.ingest_sealed("anna@example.pl", "PL", SECRET)
    rid = receipt["record_id"]
    result = svc.access_sealed("customer-support", record_ids=[rid])
    assert result["records"] == {rid: SECRET.encode()}
    assert result["decision"]["effect"] == "allow"
    kinds = [(e.kind, e.fields.get("effect")) for e in _entries(dep)]
    assert kinds == [("ingest", None), ("decision", "allow"), ("key_release", None)]
    ingest, _, release = _entries(dep)
    assert ingest.fields["kinds"] == "client-sealed"
    assert release.fields["records"] == [rid] and release.fields["to"] == "client"
    assert result["release_receipt"]["index"] == logged_by_init(dep) + 2
    assert len(_released(dep, rid)) == 1


def test_gateway_and_disk_hold_no_plaintext_and_no_data_key(svc, dep, root, monkeypatch):
    made: list[bytes] = []
    real = _aead.new_key

    def spy() -> bytes:
        key = real()
        made.append(key)
        return key

    monkeypatch.setattr(_aead, "new_key", spy)
    rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    assert svc.access_sealed("customer-support", record_ids=[rid])["records"][rid]
    assert made  # the client's data key (and the subject key the custodian made)
    meta = dep.gateway.store.get_record(rid)
    blob = dep.gateway.blobs[meta.header.region].get(rid)
    assert SECRET.encode() not in blob
    dep.close()  # flush every store to its files
    needles = [SECRET.encode(), b"F32.1"]
    for key in made:
        needles += [key, key.hex().encode(), base64.b64encode(key)]
    files = [path.read_bytes() for path in Path(root).rglob("*") if path.is_file()]
    assert any(blob in data for data in files)  # the scan covers the blob store
    for data in files:
        for needle in needles:
            assert needle not in data


def test_the_gateway_refuses_to_open_a_client_sealed_record(svc, app_client, dep, clock):
    rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    with pytest.raises(BadRequest, match="client"):
        svc.access("customer-support", record_ids=[rid])
    assert [e.kind for e in _entries(dep)] == ["ingest"]
    assert not _released(dep, rid)


def _tampering(svc: Client, field: str, change: Any) -> None:
    real = svc._call

    def call(method: str, path: str, body: Any = None, **options: Any) -> Any:
        result = real(method, path, body, **options)
        if path == "/v1/sealed/access":
            for sealed in result["records"].values():
                sealed[field] = base64.b64encode(change(base64.b64decode(sealed[field]))).decode()
        return result

    svc._call = call  # type: ignore[method-assign]


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _other_version(data: bytes) -> bytes:
    changed = data.replace(b'"kek_version":1', b'"kek_version":2')
    assert changed != data
    RecordHeader.from_bytes(changed)  # still a well-formed header
    return changed


@pytest.mark.parametrize(
    ("field", "change"),
    [("blob", _flip_last), ("header", _other_version), ("key", _flip_last)],
    ids=["blob", "header", "released-key"],
)
def test_tampering_fails_on_the_client(svc, field, change):
    rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    _tampering(svc, field, change)
    with pytest.raises(IntegrityError, match=r"failed authentication|does not open"):
        svc.access_sealed("customer-support", record_ids=[rid])


def test_a_tampered_stored_blob_fails_on_the_client(svc, dep):
    rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    meta = dep.gateway.store.get_record(rid)
    store = dep.gateway.blobs[meta.header.region]
    blob = store.get(rid)
    store.delete(rid)
    store.put(rid, _flip_last(blob))
    with pytest.raises(IntegrityError, match="failed authentication"):
        svc.access_sealed("customer-support", record_ids=[rid])


def test_deny_releases_nothing_and_is_logged(svc, app_client, dep, clock):
    rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    us = _client(app_client, dep, clock, "authority-us")
    with pytest.raises(Denied) as info:
        us.access_sealed("foreign-legal-process", record_ids=[rid])
    entry = _entries(dep)[info.value.log_index - logged_by_init(dep)]
    assert entry.kind == "decision" and entry.fields["effect"] == "deny"
    assert "key_release" not in [e.kind for e in _entries(dep)]
    assert not _released(dep, rid)
    key = base64.b64encode(transport.public_bytes(transport.new_recipient())).decode()
    raw = us._http.post(
        "/v1/sealed/access",
        json={"recipient": key, "purpose": "foreign-legal-process", "record_ids": [rid]},
    )
    assert raw.status_code == 401 and "records" not in raw.json()


def _prepare(svc: Client, subject: str) -> dict[str, Any]:
    body = {"subject_id": subject, "jurisdiction": "PL"}
    result: dict[str, Any] = svc._call("POST", "/v1/sealed/prepare", body)
    return result


def _submit(svc: Client, prepared: dict[str, Any], blob: bytes, envelope: bytes) -> Any:
    return svc._submit_sealed(prepared, blob, envelope)


def _header(prepared: dict[str, Any]) -> RecordHeader:
    return RecordHeader.from_bytes(base64.b64decode(prepared["header"]))


def test_an_envelope_for_another_record_or_subject_is_refused(svc, dep):
    anna, bob = _prepare(svc, "anna@example.pl"), _prepare(svc, "bob@example.pl")
    assert _header(anna).subject != _header(bob).subject
    custodian = base64.b64decode(anna["custodian_key"])
    blob, envelope = transport.seal_record(_header(anna), SECRET.encode(), custodian)
    with pytest.raises(BadRequest, match="does not open"):
        _submit(svc, bob, blob, envelope)
    anna2 = _prepare(svc, "anna@example.pl")  # same subject, another record
    with pytest.raises(BadRequest, match="does not open"):
        _submit(svc, anna2, blob, envelope)
    with pytest.raises(NotFound):
        dep.gateway.store.get_record(_header(bob).record_id)
    assert dep.gateway.log.size == logged_by_init(dep)
    assert _submit(svc, anna, blob, envelope)["record_id"] == _header(anna).record_id


def test_a_header_the_gateway_did_not_prepare_is_refused(svc, dep):
    anna = _prepare(svc, "anna@example.pl")
    bob = _header(_prepare(svc, "bob@example.pl"))
    forged = dict(
        anna,
        header=base64.b64encode(
            RecordHeader(
                record_id=_header(anna).record_id,
                subject=bob.subject,
                jurisdiction="PL",
                region=bob.region,
                kek_version=bob.kek_version,
                content_type=transport.CLIENT_SEALED_CONTENT_TYPE,
            ).to_bytes()
        ).decode(),
    )
    custodian = base64.b64decode(anna["custodian_key"])
    blob, envelope = transport.seal_record(_header(forged), b"x", custodian)
    with pytest.raises(BadRequest, match="not prepared"):
        _submit(svc, forged, blob, envelope)
    assert dep.gateway.log.size == logged_by_init(dep)


def test_a_jurisdiction_that_refuses_kinds_refuses_client_sealing(root, clock):
    config = (root / "sovra.toml").read_text()
    (root / "sovra.toml").write_text(config.replace('pl_pesel = "tokenize"', 'pl_pesel = "refuse"'))
    dep = Deployment.open(root, clock=clock)
    try:
        svc = dep.store.get_principal("svc-pl")
        with pytest.raises(Denied, match="cannot be scanned") as info:
            dep.gateway.prepare_sealed(svc, subject_id="anna@example.pl", jurisdiction="PL")
        entry = LogEntry.from_bytes(dep.gateway.log.entry(info.value.log_index))
        assert (entry.kind, entry.fields["effect"]) == ("decision", "deny")
    finally:
        dep.close()


def test_client_sealing_against_a_real_server(dep, clock):
    clock.now = time.time()  # the client signs with the wall clock
    with running(create_app(dep)) as url:
        with Client(url, "svc-pl", dep.principal_key("svc-pl")) as svc:
            rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET.encode())["record_id"]
            assert svc.access_sealed("billing", record_ids=[rid])["records"] == {
                rid: SECRET.encode()
            }
        with (
            Client(url, "authority-us", dep.principal_key("authority-us")) as us,
            pytest.raises(Denied),
        ):
            us.access_sealed("foreign-legal-process", record_ids=[rid])
        with Client(url) as anyone:
            keys = json.loads(json.dumps(anyone._call("GET", "/v1/sealed/custodians", auth=False)))
            assert set(keys["custodians"]) >= {"PL"}
    assert len(_released(dep, rid)) == 1


def test_sealed_access_refuses_reveal_and_logs_nothing(svc, dep):
    rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    size = dep.gateway.log.size
    key = base64.b64encode(transport.public_bytes(transport.new_recipient())).decode()
    body = {"recipient": key, "purpose": "customer-support", "record_ids": [rid], "reveal": True}
    with pytest.raises(BadRequest, match="reveal"):
        svc._call("POST", "/v1/sealed/access", body)
    assert dep.gateway.log.size == size
