"""The principals ``sovra init`` registers are in the transparency log from the start: one
``principal`` entry (action ``add``) each, as ``sovra principal add`` writes, naming its id,
jurisdiction, role and the SHA-256 of its public key, provable like any other entry."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sovra.deployment import Deployment, default_principals
from sovra.ledger import verify_checkpoint
from sovra.model import LogEntry
from sovra_verify import verify_entry_inclusion


def test_each_principal_init_makes_has_its_add_entry(sovra, tmp_path: Path) -> None:
    root = tmp_path / "deployment"
    ran = sovra("init", root, "--custodians", "in-process", "--jurisdictions", "PL,VN")
    assert ran.code == 0, ran.err
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        registered = {p.id: p for p in dep.store.list_principals()}
        assert sorted(registered) == sorted(pid for pid, _, _ in default_principals(["PL", "VN"]))
        checkpoint = verify_checkpoint(log.checkpoint(), log.verifier_key)
        logged = {}
        for index in range(checkpoint.size):
            entry = LogEntry.from_bytes(log.entry(index))
            assert (entry.kind, entry.principal, entry.fields["action"]) == (
                "principal",
                "sovra-cli",
                "add",
            )
            verify_entry_inclusion(
                log.entry(index), index, log.inclusion_proof(index, checkpoint.size), checkpoint
            )
            logged[entry.fields["id"]] = (index, dict(entry.fields))
        assert sorted(logged) == sorted(registered)
        for pid, p in registered.items():
            index, fields = logged[pid]
            assert fields == {
                "action": "add",
                "id": pid,
                "jurisdiction": p.jurisdiction,
                "role": str(p.role),
                "key": hashlib.sha256(p.public_key).hexdigest(),
            }
            assert log.find(f"principal:{pid}") == [index]
    finally:
        dep.close()
