"""A deployment with ``[witnesses] policy``: each batch's checkpoint is cosigned synchronously.

Real ``sovra witness serve`` applications on loopback ports witness a real deployment:
an ingest's receipt comes back only once a checkpoint covering it is cosigned by the
policy's quorum, the gateway serves that checkpoint, and the entry exports as a C2SP
tlog-proof that verifies offline against the policy alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from sovra.deployment import Deployment
from sovra.errors import ConfigError
from sovra.ledger import CosignatureSigner, Witness
from sovra.server import create_app
from sovra.server.background import running
from sovra.server.witness import create_witness_app
from sovra_verify.policy import WitnessPolicy
from sovra_verify.proof import TlogProof


def _log_vkey(root: Path) -> str:
    d = Deployment.open(root)
    try:
        return d.gateway.log.verifier_key
    finally:
        d.close()


def _use_policy(root: Path, text: str, extra: str = "") -> None:
    (root / "witnesses.policy").write_text(text)
    path = root / "sovra.toml"
    toml = path.read_text()
    assert "keys = []\n" in toml
    path.write_text(
        toml.replace("keys = []\n", f'policy = "witnesses.policy"\ntimeout_s = 3\n{extra}', 1)
    )


@pytest.fixture
def witnessed(root: Path, tmp_path: Path) -> Iterator[tuple[Path, str, list[Witness]]]:
    log_vkey = _log_vkey(root)
    witnesses = [
        Witness(
            CosignatureSigner(f"w{n}.flows.example", Ed25519PrivateKey.generate()),
            [log_vkey],
            tmp_path / f"w{n}.json",
        )
        for n in (1, 2)
    ]
    with ExitStack() as stack:
        urls = [stack.enter_context(running(create_witness_app(w))) for w in witnesses]
        policy = (
            f"witness A {witnesses[0].vkey} {urls[0]}\n"
            f"witness B {witnesses[1].vkey} {urls[1]}\n"
            "group both all A B\n"
            "quorum both\n"
        )
        yield root, policy, witnesses


def test_an_ingest_returns_once_its_entry_is_witnessed(witnessed, clock) -> None:
    root, policy_text, witnesses = witnessed
    _use_policy(root, policy_text)
    dep = Deployment.open(root, clock=clock)
    try:
        assert dep.witnessing is not None
        principal = dep.store.get_principal("svc-pl")
        receipt = dep.gateway.ingest(
            principal, subject_id="anna@example.pl", jurisdiction="PL", content="Anna"
        ).receipt
        assert dep.witnessing.covered > receipt.index
        policy = WitnessPolicy.parse(policy_text)
        with TestClient(create_app(dep)) as http:
            served = http.get("/v1/log/checkpoint/cosigned")
            assert served.status_code == 200, served.text
            check = policy.check(served.text, dep.gateway.log.verifier_key)
            assert check.checkpoint.size > receipt.index
            assert sorted(check.witnesses) == ["A", "B"]
        proof = TlogProof.parse(dep.witnessing.proof(receipt.index).to_text())
        checked = proof.verify(policy, log_vkey=dep.gateway.log.verifier_key)
        assert checked.index == receipt.index and b'"kind":"ingest"' in (checked.entry or b"")
        for w in witnesses:
            assert w.head(dep.gateway.log.origin) is not None
    finally:
        dep.close()


def test_policy_mistakes_stop_the_start(witnessed, clock) -> None:
    root, policy_text, _ = witnessed
    _use_policy(root, policy_text.replace("group both all A B", "group both all A A"))
    refused = r"witnesses\.policy: policy line 3: .A. is a group member twice"
    with pytest.raises(ConfigError, match=refused):
        Deployment.open(root, clock=clock)
    (root / "witnesses.policy").unlink()
    with pytest.raises(ConfigError, match="cannot read the witness policy"):
        Deployment.open(root, clock=clock)


def test_a_policy_beside_keys_is_refused(root: Path, clock) -> None:
    _use_policy(root, "quorum none\n", extra="keys = []\n")
    with pytest.raises(ConfigError, match="instead of keys/quorum"):
        Deployment.open(root, clock=clock)


def test_the_page_names_the_policys_witnesses_and_quorum(witnessed, clock) -> None:
    # The page verifies cosignatures against the witnesses it is told of: with a policy
    # (and no key list) they are the policy's, and its quorum is both of them.
    root, policy_text, witnesses = witnessed
    _use_policy(root, policy_text)
    dep = Deployment.open(root, clock=clock)
    try:
        with TestClient(create_app(dep)) as http:
            summary = http.get("/v1/page/summary").json()
    finally:
        dep.close()
    assert sorted(summary["witnesses"]) == sorted(w.vkey for w in witnesses)
    assert summary["witness_quorum"] == 2
