"""Policy packs: validation with named lines, bundles, and k-of-n signing in DSSE envelopes."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from policy_cases import KEYS, PUBLIC

from sovra.errors import BadRequest, VerificationError
from sovra.policy import (
    SHIPPED_PACKS,
    ActivePack,
    Envelope,
    PackBundle,
    PolicyPack,
    default_pack,
    pae,
    shipped_bundle,
    sign_pack,
    verify_pack,
)


def _signed(bundle: PackBundle, *by: str) -> Envelope:
    envelope = Envelope.wrap(bundle)
    for j in by:
        envelope = sign_pack(envelope, j, KEYS[j])
    return envelope


def _active(bundle: PackBundle) -> ActivePack:
    return ActivePack(
        bundle.name, bundle.version, bundle.digest(), bundle.parties, bundle.threshold
    )


GDSI = shipped_bundle("gdsi")
V2 = replace(GDSI, version=2)


# -- validation ------------------------------------------------------------------------------

BAD_PACKS = {
    "unannotated": ("permit(principal, action, resource);", "needs both @id and @reason"),
    "schema violation names rule and line": (
        '@id("a") @reason("b")\npermit(principal, action, resource);\n\n'
        '@id("shoes") @reason("y")\npermit(principal, action, resource)\n'
        "when { principal.shoe_size > 3 };",
        "shoes (line 4): for policy `policy1`, attribute `shoe_size`",
    ),
    "parse error names line": (
        '@id("a") @reason("b")\npermit(principal, action, resource);\n'
        '// a comment; with a semicolon\n@id("x") @reason("y; z")\n'
        "permit(principal, action resource);",
        "policy 1 (line 4)",
    ),
    "duplicate id": (
        '@id("same") @reason("one") permit(principal, action, resource);\n'
        '@id("same") @reason("two") forbid(principal, action, resource);',
        "repeats @id('same')",
    ),
    "empty": ("// nothing", "empty policy pack"),
}


@pytest.mark.parametrize("name", list(BAD_PACKS))
def test_bad_packs_are_refused_with_a_precise_error(name: str) -> None:
    text, message = BAD_PACKS[name]
    with pytest.raises(BadRequest) as info:
        PolicyPack.load(text)
    assert message in info.value.message


@pytest.mark.parametrize("name", SHIPPED_PACKS)
def test_shipped_packs_compile_and_document_every_rule(name: str) -> None:
    bundle = shipped_bundle(name)
    pack = bundle.compile()
    assert pack.digest == bundle.digest()
    assert all(reason for reason in pack.rules().values())
    # every rule sits under a comment naming the principle or article it implements
    lines = bundle.policies.split("\n")
    for line in pack.lines.values():
        above = "\n".join(lines[max(0, line - 12) : line - 1])
        assert "//" in above


BAD_BUNDLES = {
    "unknown field": ({"extra": 1}, "unknown field(s) extra"),
    "wrong format": ({"format": "other/v9"}, "format must be"),
    "threshold above parties": ({"threshold": 6}, "threshold must be between 1 and 5"),
    "zero version": ({"version": 0}, "version must be a positive integer"),
    "bad party": ({"parties": ["pl"]}, "jurisdiction must be two upper-case letters"),
    "unknown parameter": ({"parameters": {"bulk": {"cap": 1}}}, "unknown field(s) cap"),
    "bad bulk value": ({"parameters": {"bulk": {"foreign_subject_limit": 0}}}, "positive"),
    "zero retention": ({"parameters": {"retention_days": {"PL": 0}}}, "positive integer"),
    "no regions": ({"parameters": {"regions": {"PL": []}}}, "must list regions"),
    "bad region": ({"parameters": {"regions": {"PL": ["../x"]}}}, "parameters.regions.PL"),
}


@pytest.mark.parametrize("name", list(BAD_BUNDLES))
def test_bad_bundles_are_refused(name: str) -> None:
    change, message = BAD_BUNDLES[name]
    body = GDSI.body() | change
    with pytest.raises(BadRequest) as info:
        PackBundle.from_bytes(json.dumps(body).encode()).compile()
    assert message in info.value.message


def test_bundle_and_envelope_round_trip_both_ways() -> None:
    assert PackBundle.from_bytes(GDSI.to_bytes()) == GDSI
    envelope = _signed(GDSI, "PL", "VN")
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    assert again.to_json() == envelope.to_json()
    assert again.bundle() == GDSI


def test_pack_parameters_only_lower_the_deployment_caps() -> None:
    from sovra.policy import BulkLimits

    limits = default_pack().parameters.bulk_limits(BulkLimits(10, 20_000, 60))
    assert (limits.request_limit, limits.window_limit, limits.window_s) == (10, 500, 60)
    assert limits.foreign_limit == 100


# -- k-of-n signing --------------------------------------------------------------------------


def test_three_of_five_parties_activate() -> None:
    verified = verify_pack(_signed(GDSI, "VN", "PL", "DE"), PUBLIC)
    assert verified.signers == ("DE", "PL", "VN")
    assert verified.bundle == GDSI


def test_signature_is_dsse_over_the_pre_authentication_encoding() -> None:
    envelope = _signed(GDSI, "PL")
    (_, signature), *_ = envelope.signatures
    PUBLIC["PL"].verify(signature, pae("application/vnd.sovra.policy-pack+json", GDSI.to_bytes()))
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"


def _tampered_payload(envelope: Envelope) -> Envelope:
    body = json.loads(envelope.payload)
    body["threshold"] = 1
    return replace(envelope, payload=json.dumps(body).encode())


REFUSALS = {
    "too few signers": (lambda: _signed(GDSI, "PL", "VN"), None, "signed by 2 of its 5"),
    "no signers": (lambda: _signed(GDSI), None, "(none); it needs 3"),
    "unknown key": (
        lambda: Envelope(
            GDSI.to_bytes(),
            (("PL:" + "0" * 64, Ed25519PrivateKey.generate().sign(b"x")),),
        ),
        None,
        "signed by unknown key PL:000",
    ),
    "signature over other bytes": (
        lambda: _tampered_payload(_signed(GDSI, "PL", "VN", "DE")),
        None,
        "is not over these bytes",
    ),
    "same signer twice": (
        lambda: replace(
            _signed(GDSI, "PL", "VN"),
            signatures=_signed(GDSI, "PL", "VN").signatures * 2,
        ),
        None,
        "more than once",
    ),
    "rollback to the same version": (
        lambda: _signed(GDSI, "PL", "VN", "DE"),
        _active(replace(GDSI, version=1, description="changed")),
        "not newer than the active v1; rollback refused",
    ),
    "rollback to an older version": (
        lambda: _signed(GDSI, "PL", "VN", "DE"),
        _active(V2),
        "rollback refused",
    ),
    "already active": (lambda: _signed(GDSI, "PL", "VN", "DE"), _active(GDSI), "already active"),
    "handover without the active parties": (
        lambda: _signed(replace(V2, parties=("DE", "PL", "VN"), threshold=2), "PL", "VN"),
        ActivePack("gdsi", 1, "x", ("CN", "US", "VN"), 2),
        "needs 2 of its parties (CN, US, VN); signed by VN",
    ),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_packs_are_refused(name: str) -> None:
    make, active, message = REFUSALS[name]
    with pytest.raises((BadRequest, VerificationError)) as info:
        verify_pack(make(), PUBLIC, active=active)
    assert message in info.value.message


def test_non_party_cannot_sign() -> None:
    small = replace(GDSI, parties=("PL", "VN"), threshold=2)
    with pytest.raises(BadRequest, match="not a party"):
        sign_pack(Envelope.wrap(small), "US", KEYS["US"])
    forged = Envelope.wrap(small)
    us = sign_pack(Envelope.wrap(GDSI), "US", KEYS["US"]).signatures
    with pytest.raises(BadRequest, match="is not one of its parties"):
        verify_pack(replace(forged, signatures=us), PUBLIC)


def test_newer_version_signed_by_enough_parties_replaces_the_active_one() -> None:
    verified = verify_pack(_signed(V2, "CN", "US", "VN"), PUBLIC, active=_active(GDSI))
    assert verified.bundle.version == 2


ENVELOPE_GARBAGE = {
    "not json": (b"{", "not valid JSON"),
    "extra member": (b'{"payloadType":"a","payload":"","signatures":[],"x":1}', "exactly"),
    "bad base64": (b'{"payloadType":"a","payload":"***","signatures":[]}', "base64"),
    "bad signature entry": (
        b'{"payloadType":"a","payload":"","signatures":[{"keyid":"k"}]}',
        "exactly keyid and sig",
    ),
}


@pytest.mark.parametrize("name", list(ENVELOPE_GARBAGE))
def test_envelope_parser_refuses_garbage(name: str) -> None:
    data, message = ENVELOPE_GARBAGE[name]
    with pytest.raises(BadRequest, match=message):
        Envelope.from_json(data)


def test_wrong_payload_type_is_refused() -> None:
    envelope = replace(Envelope.wrap(GDSI), payload_type="application/json")
    with pytest.raises(BadRequest, match="payloadType"):
        verify_pack(envelope, PUBLIC)
    assert base64.b64decode(json.loads(envelope.to_json())["payload"]) == GDSI.to_bytes()
