"""Every ``sovra principal`` change is in the transparency log before it takes effect, and
a refused request (forged or malformed: a key file holding no Ed25519 key, an id taken or
unknown, the same key again) changes neither the store nor the log."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovra.deployment import Deployment
from sovra.ledger import verify_checkpoint
from sovra.model import LogEntry
from sovra_verify import verify_entry_inclusion


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "deployment"
    shutil.copytree(template, copy)
    return copy


def _state(root: Path) -> tuple[dict[str, tuple[str, str, bytes]], list[LogEntry]]:
    """The registered principals, and every log entry."""
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        principals = {
            p.id: (p.jurisdiction, str(p.role), p.public_key) for p in dep.store.list_principals()
        }
        return principals, [LogEntry.from_bytes(e) for e in log.entries(0, log.stored_size())]
    finally:
        dep.close()


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def test_add_rotate_and_revoke_are_each_logged_with_the_key(sovra, root, tmp_path):
    ran = sovra("principal", "add", "svc-billing", "-j", "DE", "--role", "service", "-d", root)
    assert ran.code == 0, ran.err
    added = ran.json()
    principals, entries = _state(root)
    entry = entries[added["log_index"]]
    first_key = principals["svc-billing"][2]
    assert (entry.kind, entry.principal) == ("principal", "sovra-cli")
    assert dict(entry.fields) == {
        "action": "add",
        "id": "svc-billing",
        "jurisdiction": "DE",
        "role": "service",
        "key": _sha(first_key),
    }

    own = Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "new.pub.pem"
    pem.write_bytes(own.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    ran = sovra("principal", "rotate-key", "svc-billing", "--public-key", pem, "-d", root)
    assert ran.code == 0, ran.err
    principals, entries = _state(root)
    rotated = entries[ran.json()["log_index"]]
    assert rotated.fields["action"] == "rotate-key"
    assert (
        rotated.fields["key"] == _sha(own.public_bytes_raw()) == _sha(principals["svc-billing"][2])
    )
    assert rotated.fields["previous_key"] == _sha(first_key)

    ran = sovra("principal", "revoke", "svc-billing", "-d", root)
    assert ran.code == 0, ran.err
    principals, entries = _state(root)
    revoked = entries[ran.json()["log_index"]]
    assert (revoked.fields["action"], revoked.fields["id"]) == ("revoke", "svc-billing")
    assert "svc-billing" not in principals
    # The three changes are entries of the signed log like any other: provable.
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        checkpoint = verify_checkpoint(log.checkpoint(), log.verifier_key)
        for index in (added["log_index"], ran.json()["log_index"]):
            proof = log.inclusion_proof(index, checkpoint.size)
            verify_entry_inclusion(log.entry(index), index, proof, checkpoint)
        assert log.find("principal:svc-billing") == [
            added["log_index"],
            entries.index(rotated),
            ran.json()["log_index"],
        ]
    finally:
        dep.close()


def _key_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / f"{name}.pub"
    path.write_bytes(content)
    return path


def _ec_pem() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["add", "svc-pl", "-j", "PL", "--role", "service"], "already registered"),
        (["add", "svc-x", "-j", "PL", "--role", "service", "--public-key", "EC"], "not an Ed25519"),
        (["add", "svc-x", "-j", "PL", "--role", "service", "--public-key", "SHORT"], "no Ed25519"),
        (["add", "svc-x", "-j", "XX", "--role", "service"], "unknown jurisdiction"),
        (["revoke", "svc-nobody"], "svc-nobody"),
        (["rotate-key", "svc-nobody"], "svc-nobody"),
        (["rotate-key", "svc-pl", "--public-key", "SAME"], "current key already"),
        (["rotate-key", "svc-pl", "--public-key", "EC"], "not an Ed25519"),
    ],
    ids=["taken", "ec-key", "short-key", "jurisdiction", "revoke-unknown", "rotate-unknown",
         "same-key", "rotate-ec-key"],
)  # fmt: skip
def test_a_refused_request_changes_neither_store_nor_log(sovra, root, tmp_path, command, message):
    before = _state(root)
    files = {
        "EC": _key_file(tmp_path, "ec", _ec_pem()),
        "SHORT": _key_file(tmp_path, "short", b"x" * 31),
        "SAME": _key_file(tmp_path, "same", before[0]["svc-pl"][2]),
    }
    args: list[Any] = [files.get(a, a) for a in command]
    keys = {p: p.read_bytes() for p in (root / "principals").iterdir()}
    ran = sovra("principal", *args, "-d", root)
    assert ran.code != 0
    assert message in ran.message
    assert _state(root) == before
    assert {p: p.read_bytes() for p in (root / "principals").iterdir()} == keys
