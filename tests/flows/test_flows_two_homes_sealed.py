"""Subjects of two countries and client-side access: refused, precisely, with nothing logged.

Client-side access (``/v1/sealed/access``) has each record's custodian encrypt the record's
data key to the client. A two-home record has no whole key at any custodian, only two
shares, so it is read through ``/v1/access`` (both custodians release, each logged). A
sealed access that selects one, alone or among records of one home, is bad input: a 400
naming the record (not its homes), before anything is decided, logged or released. A
client-sealed ingest cannot declare a second home at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from tests.flows.two_homes import ANNA, Two, ingest

from sovra.errors import BadRequest


def _refusal(rid: str) -> str:
    return (
        f"record {rid} has two homes: its key exists only as two shares, one at "
        "each home's custodian, and client-side access releases a whole key to the client; "
        "read it through /v1/access, where both custodians release their share and each "
        "release is logged; nothing was decided or logged"
    )


def _state(two: Two) -> tuple[int, dict[str, int]]:
    return two.gw.log.size, {j: len(c.journal()) for j, c in two.served.items()}


def _recipient() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


@pytest.mark.parametrize("select", ["record", "subject"])
def test_sealed_access_to_a_two_home_record_is_refused_and_nothing_logged(
    two: Two, select: str
) -> None:
    one = two.gw.ingest(
        two.principal("svc-pl"), subject_id=ANNA, jurisdiction="PL", content="one home"
    ).record_id
    rid = ingest(two)
    before = _state(two)
    target: dict[str, Any] = (
        {"record_ids": [one, rid]} if select == "record" else {"subjects": [("PL", ANNA)]}
    )
    with pytest.raises(BadRequest, match=re.escape(_refusal(rid))):
        two.gw.access_sealed(
            two.principal("subject-anna"),
            recipient=_recipient(),
            purpose="subject-access",
            justification="subject-request",
            **target,
        )
    assert _state(two) == before
    # Her one-home record alone still goes to the client as before.
    sealed = two.gw.access_sealed(
        two.principal("subject-anna"),
        recipient=_recipient(),
        purpose="subject-access",
        justification="subject-request",
        record_ids=[one],
    )
    assert list(sealed.records) == [one]


def test_sealed_access_over_http_is_a_400_and_a_sealed_ingest_has_one_home(
    two: Two, clock: Any
) -> None:
    import base64

    from fastapi.testclient import TestClient

    from sovra.auth import make_token
    from sovra.server import create_app

    rid = ingest(two)

    def post(who: str, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        token = make_token(two.dep.principal_key(who), who, "POST", path, data, now_s=int(clock()))
        headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
        return http.post(path, content=data, headers=headers)

    with TestClient(create_app(two.dep), raise_server_exceptions=True) as http:
        before = _state(two)
        r = post(
            "subject-anna",
            "/v1/sealed/access",
            {
                "purpose": "subject-access",
                "justification": "subject-request",
                "record_ids": [rid],
                "recipient": base64.b64encode(_recipient()).decode(),
            },
        )
        assert r.status_code == 400, r.text
        assert r.json()["message"] == _refusal(rid)
        r = post(
            "svc-pl",
            "/v1/sealed/prepare",
            {"subject_id": ANNA, "jurisdiction": "PL", "other_homes": ["DE"]},
        )
        assert r.status_code in (400, 422), r.text
        assert "other_homes" in r.text
        assert _state(two) == before
