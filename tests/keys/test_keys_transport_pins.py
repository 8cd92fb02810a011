"""Pinned custodian transport keys (sovra.keys.transport.TransportPins): parse, serialize, check."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.errors import BadRequest, VerificationError
from sovra.keys import transport
from sovra.keys.transport import TransportPins


def _key() -> bytes:
    return transport.public_bytes(transport.new_recipient())


PL1, PL2, DE1 = _key(), _key(), _key()


def _doc(*pins: dict[str, Any], **changes: Any) -> bytes:
    body: dict[str, Any] = {"type": "sovra-transport-keys", "format": 1, "keys": list(pins)}
    body.update(changes)
    return json.dumps(body).encode()


def _pin(jurisdiction: str = "PL", version: Any = 1, key: Any = None) -> dict[str, Any]:
    return {
        "jurisdiction": jurisdiction,
        "kek_version": version,
        "key": base64.b64encode(PL1).decode() if key is None else key,
    }


def test_round_trip_and_check() -> None:
    pins = TransportPins({("PL", 1): PL1, ("PL", 2): PL2, ("DE", 1): DE1})
    again = TransportPins.from_json(pins.to_json())
    assert again == pins
    assert again.to_json() == pins.to_json()
    again.check("PL", 1, PL1)
    again.check("PL", 2, PL2)
    again.check("DE", 1, DE1)


@pytest.mark.parametrize(
    ("jurisdiction", "version", "offered", "match"),
    [
        ("PL", 1, PL2, "not the pinned one"),
        ("PL", 1, DE1, "not the pinned one"),
        ("DE", 1, PL1, "not the pinned one"),
        ("PL", 3, PL1, r"KEK version 3 \(pinned versions: 1, 2\)"),
        ("VN", 1, PL1, r"pinned versions: none.*sovra keys transport-key -j VN"),
    ],
    ids=["another key", "another custodian's key", "swapped", "unpinned version", "unpinned"],
)
def test_anything_but_the_pinned_key_is_refused(
    jurisdiction: str, version: int, offered: bytes, match: str
) -> None:
    pins = TransportPins({("PL", 1): PL1, ("PL", 2): PL2, ("DE", 1): DE1})
    with pytest.raises(VerificationError, match=match):
        pins.check(jurisdiction, version, offered)


def test_no_pins_accept_nothing() -> None:
    with pytest.raises(VerificationError):
        TransportPins().check("PL", 1, PL1)


REFUSED: dict[str, tuple[bytes, str]] = {
    "not json": (b"{", "not valid JSON"),
    "not an object": (b"[]", "must be a JSON object"),
    "another type": (_doc(type="sovra-custodian-keys"), "not a pins document"),
    "another format": (_doc(format=2), "not a pins document"),
    "format as a boolean": (_doc(format=True), "not a pins document"),
    "unknown field": (_doc(note="x"), "unknown field"),
    "missing keys": (
        json.dumps({"type": "sovra-transport-keys", "format": 1}).encode(),
        "missing keys",
    ),
    "keys not a list": (_doc(keys={}), "list"),
    "pin not an object": (_doc("PL"), "must be a JSON object"),
    "pin with an unknown field": (_doc({**_pin(), "x": 1}), "unknown field"),
    "pin missing its key": (_doc({"jurisdiction": "PL", "kek_version": 1}), "missing key"),
    "bad jurisdiction": (_doc(_pin(jurisdiction="pl")), "jurisdiction"),
    "version zero": (_doc(_pin(version=0)), "kek_version"),
    "version as a string": (_doc(_pin(version="1")), "kek_version"),
    "version as a boolean": (_doc(_pin(version=True)), "kek_version"),
    "key not base64": (_doc(_pin(key="not base64!")), "not base64"),
    "key not text": (_doc(_pin(key=7)), "base64 text"),
    "key too short": (_doc(_pin(key=base64.b64encode(b"x" * 31).decode())), "31 bytes is of no"),
    "key of low order": (_doc(_pin(key=base64.b64encode(bytes(32)).decode())), "usable"),
    "pinned twice": (_doc(_pin(), _pin()), "pinned twice"),
    "duplicate field": (
        b'{"type": "sovra-transport-keys", "format": 1, "keys": [], "keys": []}',
        "duplicate",
    ),
    "oversized": (b" " * (1024 * 1024 + 1), "at most"),
}


@pytest.mark.parametrize(("data", "match"), REFUSED.values(), ids=REFUSED.keys())
def test_malformed_pins_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        TransportPins.from_json(data)


def test_pins_made_in_code_are_checked_too() -> None:
    with pytest.raises(BadRequest):
        TransportPins({("PL", 0): PL1})
    with pytest.raises(BadRequest):
        TransportPins({("pl", 1): PL1})
    with pytest.raises(BadRequest):
        TransportPins({("PL", 1): b"short"})


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.tuples(st.sampled_from(["PL", "DE", "VN", "US", "CN"]), st.integers(1, 2**40)),
        st.just(PL1) | st.just(PL2) | st.just(DE1),
        max_size=8,
    )
)
def test_serialize_then_parse_is_the_identity(keys: dict[tuple[str, int], bytes]) -> None:
    pins = TransportPins(keys)
    data = pins.to_json()
    assert TransportPins.from_json(data) == pins
    assert TransportPins.from_json(data).to_json() == data
