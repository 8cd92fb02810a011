"""Client-side sealing over HTTP with a post-quantum hybrid KEM set for one jurisdiction
(``key_transport = "mlkem768-x25519"`` in sovra.toml): both hops of the data key use it,
and a client that asks for less gets nothing released."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sovra.client import Client
from sovra.config import Config
from sovra.deployment import Deployment
from sovra.errors import BadRequest, ConfigError
from sovra.keys import transport
from sovra.keys.transport import TransportPins
from sovra.model import LogEntry
from sovra.server import create_app

SECRET = "Anna's sealed note, kept from quantum-era eavesdroppers"
HYBRID = "mlkem768-x25519"


def _set_pl(root: Path, line: str) -> None:
    path = root / "sovra.toml"
    text = path.read_text()
    path.write_text(text.replace("[jurisdictions.PL]\n", f"[jurisdictions.PL]\n{line}\n", 1))


@pytest.fixture
def hybrid(root: Path, clock: Any) -> Iterator[Deployment]:
    _set_pl(root, f'key_transport = "{HYBRID}"')
    d = Deployment.open(root, clock=clock)
    yield d
    d.close()


@pytest.fixture
def http(hybrid: Deployment) -> Iterator[TestClient]:
    with TestClient(create_app(hybrid), raise_server_exceptions=True) as client:
        yield client


def _client(http: TestClient, dep: Deployment, clock: Any, **options: Any) -> Client:
    client = Client(
        "http://testserver", "svc-pl", dep.principal_key("svc-pl"), clock=clock, **options
    )
    client._http = http
    return client


def _released(dep: Deployment) -> list[Any]:
    custodian = dep.gateway.custodians["PL"]
    return [j for j in custodian.journal() if j.outcome == "released"]  # type: ignore[attr-defined]


def test_the_setting_is_read_and_a_bad_one_refused(root: Path) -> None:
    _set_pl(root, 'key_transport = "kyber512"')
    with pytest.raises(
        ConfigError, match=r"\[jurisdictions.PL\] key_transport: unknown HPKE suite"
    ):
        Config.load(root / "sovra.toml")


def test_both_hops_use_the_hybrid_kem(http, hybrid, clock) -> None:
    offered = base64.b64decode(http.get("/v1/sealed/custodians").json()["custodians"]["PL"]["key"])
    assert transport.check_public(offered) == HYBRID
    client = _client(http, hybrid, clock, key_transport=HYBRID)
    rid = client.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    result = client.access_sealed("customer-support", record_ids=[rid])
    assert result["records"] == {rid: SECRET.encode()}
    decision = LogEntry.from_bytes(base64.b64decode(result["decision_entry"]))
    assert transport.check_public(bytes.fromhex(decision.fields["recipient"])) == HYBRID
    assert len(_released(hybrid)) == 1


def test_pins_of_hybrid_keys_are_checked(http, hybrid, clock) -> None:
    version, key = hybrid.gateway.custodians["PL"].transport_key()  # type: ignore[attr-defined]
    pins = TransportPins({("PL", version): key})
    assert TransportPins.from_json(pins.to_json()) == pins
    client = _client(http, hybrid, clock, key_transport=HYBRID, transport_pins=pins)
    assert client.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]


def test_a_classical_recipient_gets_nothing_released(http, hybrid, clock) -> None:
    client = _client(http, hybrid, clock, key_transport=HYBRID)
    rid = client.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
    classical = _client(http, hybrid, clock)
    with pytest.raises(BadRequest, match=f"only to {HYBRID} recipient keys or stronger"):
        classical.access_sealed("customer-support", record_ids=[rid])
    assert not _released(hybrid)


def test_the_largest_suite_fits_every_limit_on_the_way(root: Path, clock: Any) -> None:
    _set_pl(root, 'key_transport = "mlkem1024-p384"')
    dep = Deployment.open(root, clock=clock)
    try:
        with TestClient(create_app(dep), raise_server_exceptions=True) as http:
            client = _client(http, dep, clock, key_transport="mlkem1024-p384")
            rid = client.ingest_sealed("anna@example.pl", "PL", SECRET)["record_id"]
            result = client.access_sealed("customer-support", record_ids=[rid])
        assert result["records"] == {rid: SECRET.encode()}
        assert len(_released(dep)) == 1
    finally:
        dep.close()
