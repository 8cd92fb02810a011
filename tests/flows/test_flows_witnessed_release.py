"""Witnessed release end to end: the custodian process reads its witnesses from its own folder.

A deployment whose custodian runs as its own process (reached in frames on its socket, as
``sovra serve`` runs it), configured in ``custodians/PL/PL.witnesses`` to require 2 of 3
witnesses. The gateway hands it each allow's tlog-proof into a checkpoint real witnesses
cosigned (:class:`~sovra.release_proofs.ReleaseProofs`); without one, or with too few
cosignatures, the custodian refuses, and the refusal is in the log as well as in the
custodian's own journal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.keys import load_ed25519
from sovra.keys.remote import RemoteCustodian
from sovra.keys.witnessed import ReleasePolicy, policy_path
from sovra.ledger import CosignatureSigner, Witness
from sovra.model import Decision, LogEntry, LogReceipt, ReleaseAuthorization
from sovra.release_proofs import ReleaseProofs

TEXT = "Anna Kowalska asked for a copy of her file."


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Deployment, list[Witness]]]:
    root = tmp_path / "dep"
    Deployment.init(root, origin="sovra.test/log", jurisdictions=["PL"])
    log_vkey = Deployment.open(root)
    try:
        vkey = log_vkey.gateway.log.verifier_key
    finally:
        log_vkey.close()
    witnesses = [
        Witness(CosignatureSigner(f"witness.test/{n}", Ed25519PrivateKey.generate()), [vkey])
        for n in "abc"
    ]
    key_path = root / "custodians" / "PL" / "PL.key"
    assert key_path.exists()
    policy = ReleasePolicy.of([w.vkey for w in witnesses], 2, 60)
    policy_path(key_path).write_bytes(policy.to_json())
    dep = Deployment.open(root)
    try:
        assert isinstance(dep.gateway.custodians["PL"], RemoteCustodian)
        yield dep, witnesses
    finally:
        dep.close()


def _refusal(dep: Deployment, exc: Denied) -> str:
    assert exc.log_index is not None
    entry = LogEntry.from_bytes(dep.gateway.log.entry(exc.log_index))
    assert (entry.kind, entry.fields["effect"]) == ("decision", "deny")
    return str(entry.fields["reason"])


def test_the_custodian_process_releases_only_what_its_witnesses_saw(deployment) -> None:
    dep, witnesses = deployment
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    record = gw.ingest(svc, subject_id="anna@example.pl", jurisdiction="PL", content=TEXT)
    ask = {"purpose": "customer-support", "record_ids": [record.record_id]}

    # No proof: the allow is logged and signed, the custodian still refuses.
    with pytest.raises(Denied) as caught:
        gw.access(svc, **ask)
    reason = _refusal(dep, caught.value)
    assert "not witnessed: the allow came without a witnessed checkpoint" in reason

    # One witness of the two required.
    gw.release_proofs = ReleaseProofs(gw.log, witnesses[:1])
    with pytest.raises(Denied) as caught:
        gw.access(svc, **ask)
    assert (
        "cosigned by 1 of its witnesses (witness.test/a), short of its quorum, at least 2 of "
        "its 3 witnesses"
    ) in _refusal(dep, caught.value)

    # A quorum: released, and the key release is logged.
    gw.release_proofs = ReleaseProofs(gw.log, witnesses[1:])
    result = gw.access(svc, **ask)
    assert result.records[record.record_id] == TEXT
    released = LogEntry.from_bytes(gw.log.entry(result.release_receipt.index))
    assert released.kind == "key_release"


def test_a_forged_allow_signed_with_the_log_key_releases_nothing(deployment) -> None:
    """What an operator holding the log key can do: sign an allow no one decided, and hand
    it to the custodian's socket itself, skipping the gateway's flow."""
    dep, _ = deployment
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    record = gw.ingest(svc, subject_id="anna@example.pl", jurisdiction="PL", content=TEXT)
    meta = dep.store.get_records([record.record_id])[record.record_id]
    log_key = load_ed25519(dep.root / "keys" / "log.key")
    forged = Decision(
        "forged", True, "none", "operator", "customer-support", (record.record_id,),
        (meta.header.subject,),
    )  # fmt: skip
    entry = forged.to_entry(int(time.time() * 1000)).to_bytes()
    unsigned = LogReceipt("sovra.test/log", gw.log.size, _leaf(entry), int(time.time() * 1000))
    receipt = LogReceipt(
        unsigned.origin,
        unsigned.index,
        unsigned.leaf_hash,
        unsigned.time_ms,
        log_key.sign(unsigned.signed_bytes()),
    )
    custodian = gw.custodians["PL"]
    with pytest.raises(Denied, match="not witnessed: the allow came without"):
        custodian.unwrap(
            meta.wrapped_key,
            meta.header,
            ReleaseAuthorization.of(forged, entry, receipt),
            "operator",
        )


def _leaf(entry: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(b"\x00" + entry).digest()


def test_a_log_that_witnesses_each_batch_hands_its_proofs_to_the_custodian(
    root: Path, tmp_path: Path
) -> None:
    """``[witnesses] policy`` in sovra.toml: the log gets each batch cosigned before its
    receipts return, and the gateway hands the custodian proofs into those checkpoints; the
    custodian's own policy (the same witnesses, read from its folder) decides."""
    from contextlib import ExitStack

    from sovra.server.background import running
    from sovra.server.witness import create_witness_app

    first = Deployment.open(root)
    vkey = first.gateway.log.verifier_key
    first.close()
    witnesses = [
        Witness(CosignatureSigner(f"w{n}.flows.example", Ed25519PrivateKey.generate()), [vkey])
        for n in (1, 2, 3)
    ]
    with ExitStack() as stack:
        urls = [stack.enter_context(running(create_witness_app(w))) for w in witnesses]
        lines = [
            f"witness {n} {w.vkey} {u}" for n, w, u in zip("ABC", witnesses, urls, strict=True)
        ]
        (root / "witnesses.policy").write_text(
            "\n".join([*lines, "group two 2 A B C", "quorum two"]) + "\n"
        )
        toml = (root / "sovra.toml").read_text()
        assert "keys = []\n" in toml
        (root / "sovra.toml").write_text(
            toml.replace("keys = []\n", 'policy = "witnesses.policy"\ntimeout_s = 5\n', 1)
        )
        policy = ReleasePolicy.of([w.vkey for w in witnesses], 2, 60)
        policy_path(root / "custodians" / "PL.key").write_bytes(policy.to_json())
        dep = stack.enter_context(_closing(Deployment.open(root)))
        gw = dep.gateway
        assert gw.release_proofs is not None
        svc = dep.store.get_principal("svc-pl")
        record = gw.ingest(svc, subject_id="anna@example.pl", jurisdiction="PL", content=TEXT)
        result = gw.access(svc, purpose="customer-support", record_ids=[record.record_id])
        assert result.records[record.record_id] == TEXT
        assert gw.release_proofs.round_trips == 0  # the log's own rounds served it
        # Without the gateway's proofs, the same custodian refuses.
        gw.release_proofs = None
        with pytest.raises(Denied) as caught:
            gw.access(svc, purpose="customer-support", record_ids=[record.record_id])
        assert "not witnessed: the allow came without" in _refusal(dep, caught.value)


def _closing(dep: Deployment) -> object:
    from contextlib import closing

    return closing(dep)
