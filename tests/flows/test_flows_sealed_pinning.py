"""Client-side sealing with pinned custodian keys, and large records in the segmented format.

A client given the custodians' transport keys out of band refuses a gateway that offers
another key, before it seals or sends anything. Records over one segment (1 MiB) are
sealed in format 2; a stored blob whose segments were dropped, reordered or cut fails on
the client. Requests go through the real ASGI application, or a real server on loopback.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.initial_log import logged_by_init

from sovra.client import Client
from sovra.deployment import Deployment
from sovra.errors import BadRequest, IntegrityError, PayloadTooLarge, VerificationError
from sovra.keys import LocalCustodian, _stream, open_blob, transport
from sovra.keys.envelope import STREAM_PREFIX
from sovra.keys.transport import TransportPins
from sovra.model import RecordHeader
from sovra.server import create_app
from sovra.server.background import running

SECRET = b"Anna's sealed note: diagnosis F32.1, tel. +48 601 234 567"
SEGMENT = _stream.DEFAULT_SEGMENT_SIZE
SEALED_SEGMENT = SEGMENT + 16


def _pins(dep: Deployment, *codes: str) -> TransportPins:
    """What ``sovra keys transport-key`` prints, read here from the custodians directly."""
    keys = {}
    for code in codes:
        custodian = dep.gateway.custodians[code]
        assert isinstance(custodian, LocalCustodian)
        version, key = custodian.transport_key()
        keys[(code, version)] = key
    return TransportPins(keys)


@pytest.fixture
def app_client(dep: Deployment) -> Iterator[TestClient]:
    with TestClient(create_app(dep), raise_server_exceptions=True) as http:
        yield http


class Recorded:
    """A client on the in-process app that records the paths it sends requests to, and can
    have the gateway's answer to ``/v1/sealed/prepare`` changed on the way."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.paths: list[str] = []
        self.prepare: Callable[[dict[str, Any]], dict[str, Any]] = lambda p: p
        real = client._call

        def call(method: str, path: str, body: Any = None, **options: Any) -> Any:
            self.paths.append(path)
            result = real(method, path, body, **options)
            return self.prepare(result) if path == "/v1/sealed/prepare" else result

        client._call = call  # type: ignore[method-assign]


def _recorded(
    app_client: TestClient, dep: Deployment, clock: Any, pins: TransportPins | None
) -> Recorded:
    client = Client(
        "http://testserver", "svc-pl", dep.principal_key("svc-pl"), clock=clock, transport_pins=pins
    )
    client._http = app_client
    return Recorded(client)


def _stored(dep: Deployment, subject: str = "anna@example.pl") -> list[str]:
    commitment = dep.gateway.commitment("PL", subject)
    return [m.header.record_id for m in dep.store.records_for_subject(commitment)]


def test_a_pinned_client_seals_and_opens(app_client, dep, clock):
    svc = _recorded(app_client, dep, clock, _pins(dep, "PL", "DE")).client
    rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    assert svc.access_sealed("customer-support", record_ids=[rid])["records"] == {rid: SECRET}


def test_a_gateway_offering_its_own_key_reads_the_data_key_unless_it_is_pinned(
    app_client, dep, clock
):
    gateway_key = transport.new_recipient()

    def swap(prepared: dict[str, Any]) -> dict[str, Any]:
        return {
            **prepared,
            "custodian_key": base64.b64encode(transport.public_bytes(gateway_key)).decode(),
        }

    # Without pins the client believes the gateway, and seals the data key to it...
    trusting = _recorded(app_client, dep, clock, None)
    trusting.prepare = swap
    sent: list[bytes] = []
    real_request = trusting.client._http.request

    def request(method: str, url: str, **kwargs: Any) -> Any:
        if url == "/v1/sealed/records":
            sent.append(kwargs["content"])
        return real_request(method, url, **kwargs)

    trusting.client._http.request = request  # type: ignore[method-assign]
    with pytest.raises(BadRequest, match="does not open"):  # the real custodian cannot
        trusting.client.ingest_sealed("anna@example.pl", "PL", SECRET)
    (submitted,) = sent
    body = json.loads(submitted)
    header = RecordHeader.from_bytes(base64.b64decode(body["header"]))
    envelope = base64.b64decode(body["key_envelope"])
    data_key = transport.open_key(gateway_key, envelope, "to-custodian", header)
    assert open_blob(header, base64.b64decode(body["blob"]), data_key) == SECRET  # ...it reads

    # With pins the client refuses, and sends nothing after the preparation.
    pinned = _recorded(app_client, dep, clock, _pins(dep, "PL"))
    pinned.prepare = swap
    with pytest.raises(VerificationError, match="not the pinned one; nothing was sealed or sent"):
        pinned.client.ingest_sealed("anna@example.pl", "PL", SECRET)
    assert pinned.paths == ["/v1/sealed/prepare"]
    assert _stored(dep) == []
    assert dep.gateway.log.size == logged_by_init(dep)


def test_a_header_for_another_jurisdiction_is_refused(app_client, dep, clock):
    client = _recorded(app_client, dep, clock, _pins(dep, "PL", "DE"))
    de_key = _pins(dep, "DE").keys
    ((_, de_version), de_public) = next(iter(de_key.items()))

    def elsewhere(prepared: dict[str, Any]) -> dict[str, Any]:
        header = RecordHeader.from_bytes(base64.b64decode(prepared["header"]))
        moved = RecordHeader(
            header.record_id,
            header.subject,
            "DE",
            header.region,
            de_version,
            content_type=header.content_type,
        )
        return {
            **prepared,
            "header": base64.b64encode(moved.to_bytes()).decode(),
            "custodian_key": base64.b64encode(de_public).decode(),
        }

    client.prepare = elsewhere
    with pytest.raises(VerificationError, match="jurisdiction DE, not PL"):
        client.client.ingest_sealed("anna@example.pl", "PL", SECRET)
    assert client.paths == ["/v1/sealed/prepare"]


def test_a_pin_of_a_rotated_away_version_is_refused_until_the_new_one_is_pinned(
    app_client, dep, clock
):
    old = _pins(dep, "PL")
    custodian = dep.gateway.custodians["PL"]
    assert isinstance(custodian, LocalCustodian)
    custodian.rotate()
    client = _recorded(app_client, dep, clock, old)
    with pytest.raises(VerificationError, match=r"KEK version 2 \(pinned versions: 1\)"):
        client.client.ingest_sealed("anna@example.pl", "PL", SECRET)
    assert client.paths == ["/v1/sealed/prepare"]
    renewed = _recorded(
        app_client, dep, clock, TransportPins({**old.keys, **_pins(dep, "PL").keys})
    )
    rid = renewed.client.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    assert renewed.client.access_sealed("billing", record_ids=[rid])["records"][rid] == SECRET


def test_pinned_client_against_a_real_server(dep, clock):
    clock.now = time.time()  # the client signs with the wall clock
    with running(create_app(dep)) as url:
        with Client(
            url, "svc-pl", dep.principal_key("svc-pl"), transport_pins=_pins(dep, "PL")
        ) as svc:
            rid = svc.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
            assert svc.access_sealed("billing", record_ids=[rid])["records"] == {rid: SECRET}
        wrong = TransportPins({("PL", 1): transport.public_bytes(transport.new_recipient())})
        with (
            Client(url, "svc-pl", dep.principal_key("svc-pl"), transport_pins=wrong) as svc,
            pytest.raises(VerificationError),
        ):
            svc.ingest_sealed("anna@example.pl", "PL", SECRET)
    assert _stored(dep) == [rid]


# -- large records: the segmented format ------------------------------------------------------


@pytest.fixture
def big(root: Path, clock: Any) -> Iterator[Deployment]:
    """A deployment that takes records of up to 4 MiB."""
    path = root / "sovra.toml"
    text = re.sub(r"(?m)^max_record_bytes = \d+", "max_record_bytes = 4194304", path.read_text())
    text = re.sub(r"(?m)^max_body_bytes = \d+", "max_body_bytes = 8388608", text)
    path.write_text(text)
    d = Deployment.open(root, clock=clock)
    assert d.config.max_record_bytes == 4 * 1024 * 1024
    yield d
    d.close()


@pytest.fixture
def big_client(big: Deployment, clock: Any) -> Iterator[Client]:
    with TestClient(create_app(big), raise_server_exceptions=True) as http:
        client = Client(
            "http://testserver",
            "svc-pl",
            big.principal_key("svc-pl"),
            clock=clock,
            transport_pins=_pins(big, "PL"),
        )
        client._http = http
        yield client


LARGE = bytes(range(256)) * (SEGMENT * 5 // 2 // 256)  # two and a half segments


def _segments(blob: bytes) -> tuple[bytes, list[bytes]]:
    head, body = blob[: _stream.HEADER_SIZE], blob[_stream.HEADER_SIZE :]
    return head, [body[i : i + SEALED_SEGMENT] for i in range(0, len(body), SEALED_SEGMENT)]


def _restore(dep: Deployment, rid: str, blob: bytes) -> None:
    meta = dep.gateway.store.get_record(rid)
    store = dep.gateway.blobs[meta.header.region]
    store.delete(rid)
    store.put(rid, blob)


def test_a_large_record_is_sealed_in_segments_and_opens(big_client, big):
    rid = big_client.ingest_sealed("anna@example.pl", "PL", LARGE)["record_id"]
    meta = big.gateway.store.get_record(rid)
    blob = big.gateway.blobs[meta.header.region].get(rid)
    assert blob.startswith(STREAM_PREFIX)
    _, segments = _segments(blob)
    assert [len(s) for s in segments] == [SEALED_SEGMENT, SEALED_SEGMENT, SEGMENT // 2 + 16]
    opened = big_client.access_sealed("billing", record_ids=[rid])["records"][rid]
    assert opened == LARGE


def _cut_at_a_boundary(head: bytes, s: list[bytes]) -> bytes:
    return head + s[0] + s[1]


def _reordered(head: bytes, s: list[bytes]) -> bytes:
    return head + s[1] + s[0] + s[2]


def _dropped(head: bytes, s: list[bytes]) -> bytes:
    return head + s[0] + s[2]


def _repeated(head: bytes, s: list[bytes]) -> bytes:
    return head + s[0] + s[0] + s[1] + s[2]


def _appended(head: bytes, s: list[bytes]) -> bytes:
    return head + s[0] + s[1] + s[2] + s[2]


def _cut_inside(head: bytes, s: list[bytes]) -> bytes:
    return head + s[0] + s[1] + s[2][:-1]


@pytest.mark.parametrize(
    "change",
    [_cut_at_a_boundary, _reordered, _dropped, _repeated, _appended, _cut_inside],
    ids=["truncated at a segment boundary", "reordered", "dropped", "repeated", "appended", "cut"],
)
def test_a_changed_segment_stream_fails_on_the_client(big_client, big, change):
    rid = big_client.ingest_sealed("anna@example.pl", "PL", LARGE)["record_id"]
    meta = big.gateway.store.get_record(rid)
    head, segments = _segments(big.gateway.blobs[meta.header.region].get(rid))
    _restore(big, rid, change(head, segments))
    with pytest.raises(IntegrityError, match="failed authentication"):
        big_client.access_sealed("billing", record_ids=[rid])


def test_a_record_over_the_limit_is_refused_before_it_is_stored(big_client, big):
    with pytest.raises(PayloadTooLarge):
        big_client.ingest_sealed("anna@example.pl", "PL", b"x" * (4 * 1024 * 1024 + 1))
    assert _stored(big) == []
    assert big.gateway.log.size == logged_by_init(big)


# -- the recipient key is in the log --------------------------------------------------------


def _swapping(app_client: TestClient, dep: Deployment, clock: Any, **kw: Any) -> Client:
    """A client whose gateway has the keys released to a key of its own, not the client's:
    it runs the real access flow with its own recipient and answers with what that gives."""
    from sovra.server.sealed import _access

    client = Client("http://testserver", "svc-pl", dep.principal_key("svc-pl"), clock=clock, **kw)
    client._http = app_client
    real = client._call
    stolen = transport.new_recipient()

    def call(method: str, path: str, body: Any = None, **options: Any) -> Any:
        if path != "/v1/sealed/access":
            return real(method, path, body, **options)
        principal = dep.store.get_principal("svc-pl")
        result = dep.gateway.access_sealed(
            principal,
            recipient=transport.public_bytes(stolen),
            purpose=body["purpose"],
            record_ids=body["record_ids"],
        )
        return _access(result)

    client._call = call  # type: ignore[method-assign]
    return client


def test_a_gateway_that_swaps_the_recipient_is_caught_by_the_logged_decision(
    app_client: TestClient, dep: Deployment, clock: Any
) -> None:
    honest = _recorded(app_client, dep, clock, _pins(dep, "PL")).client
    rid = honest.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    opened = honest.access_sealed("customer-support", record_ids=[rid])
    assert opened["records"] == {rid: SECRET}

    swapped = _swapping(app_client, dep, clock)
    with pytest.raises(VerificationError, match="names another recipient key") as info:
        swapped.access_sealed("customer-support", record_ids=[rid])
    # The swap is in the public log for anyone to see: the decision names the other key.
    index = int(re.search(r"log index (\d+)", info.value.message)[1])  # type: ignore[index]
    entry = json.loads(dep.gateway.log.entry(index))
    assert entry["kind"] == "decision" and len(bytes.fromhex(entry["recipient"])) == 32


def test_a_decision_entry_the_receipt_does_not_cover_is_refused(
    app_client: TestClient, dep: Deployment, clock: Any
) -> None:
    client = _recorded(app_client, dep, clock, None)
    rid = client.client.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    real = client.client._call

    def forged(method: str, path: str, body: Any = None, **options: Any) -> Any:
        result = real(method, path, body, **options)
        if path == "/v1/sealed/access":
            entry = json.loads(base64.b64decode(result["decision_entry"]))
            entry["reason"] = "edited"
            result["decision_entry"] = base64.b64encode(json.dumps(entry).encode()).decode()
        return result

    client.client._call = forged  # type: ignore[method-assign]
    with pytest.raises(VerificationError, match="not the logged one"):
        client.client.access_sealed("customer-support", record_ids=[rid])


def test_with_the_log_key_a_receipt_not_signed_by_the_log_is_refused(
    app_client: TestClient, dep: Deployment, clock: Any
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    rid = _recorded(app_client, dep, clock, None).client.ingest_sealed(
        "anna@example.pl", "PL", SECRET
    )["record_id"]
    log_key = dep.gateway.log.public_key
    good = Client(
        "http://testserver", "svc-pl", dep.principal_key("svc-pl"), clock=clock, log_key=log_key
    )
    good._http = app_client
    assert good.access_sealed("customer-support", record_ids=[rid])["records"] == {rid: SECRET}
    wrong = Client(
        "http://testserver",
        "svc-pl",
        dep.principal_key("svc-pl"),
        clock=clock,
        log_key=Ed25519PrivateKey.generate().public_key(),
    )
    wrong._http = app_client
    with pytest.raises(VerificationError, match="is not the log's"):
        wrong.access_sealed("customer-support", record_ids=[rid])
