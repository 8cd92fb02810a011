"""The page is told the log's witness quorum as a C2SP tlog-policy (``witness_policy`` of
``/v1/page/summary``), which it holds a proof's cosignatures to: ``[witnesses] keys`` and
``quorum`` read as k of n, and a deployment with no witnesses as ``quorum none``."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from sovra.deployment import Deployment
from sovra.server import create_app
from sovra_verify.cosignature import CosignatureSigner
from sovra_verify.policy import WitnessPolicy


def _summary(root: Path) -> dict[str, object]:
    dep = Deployment.open(root)
    try:
        with TestClient(create_app(dep)) as http:
            answer = http.get("/v1/page/summary")
            assert answer.status_code == 200, answer.text
            return dict(answer.json())
    finally:
        dep.close()


def test_no_witnesses_is_quorum_none(root: Path) -> None:
    summary = _summary(root)
    policy = WitnessPolicy.parse(str(summary["witness_policy"]))
    assert policy.quorum == "none" and policy.witnesses == ()
    assert summary["witnesses"] == [] and summary["witness_quorum"] == 0


def test_keys_and_quorum_are_k_of_n(root: Path) -> None:
    keys = [
        CosignatureSigner(f"w{n}.page.example", Ed25519PrivateKey.generate()).vkey for n in range(3)
    ]
    toml = root / "sovra.toml"
    text = toml.read_text()
    assert "keys = []\n" in text
    listed = ", ".join(f'"{k}"' for k in keys)
    toml.write_text(text.replace("keys = []\n", f"keys = [{listed}]\nquorum = 2\n", 1))
    summary = _summary(root)
    policy = WitnessPolicy.parse(str(summary["witness_policy"]))
    assert sorted(w.verifier.vkey for w in policy.witnesses) == sorted(keys)
    names = [w.name for w in policy.witnesses]
    assert policy.minimum() == 2 == summary["witness_quorum"]
    assert policy.satisfied_by(names[:2]) and not policy.satisfied_by(names[:1])
