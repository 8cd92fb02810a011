"""The auditor's side: checkpoint verification and a full audit that finds altered entries."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import sovra_verify.verify as verify_module
from sovra.errors import BadRequest, VerificationError
from sovra.ledger import (
    MemoryLogStorage,
    NoteSigner,
    TransparencyLog,
    audit,
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_entry_inclusion,
)
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import NoteVerifier, sign_note

ORIGIN = "audit.example/log"
EXAMPLES = json.loads(
    (Path(__file__).parents[1] / "vectors" / "signed_note_examples.json").read_text("utf-8")
)


def make_log(n: int, every: int) -> TransparencyLog:
    log = TransparencyLog(
        MemoryLogStorage(), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN, lambda: 1
    )
    for i in range(n):
        log.append(f"entry number {i}".encode())
        if (i + 1) % every == 0:
            log.checkpoint()
    return log


def flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at % len(b)] ^= 0x20
    return bytes(b)


def test_a_clean_log_passes() -> None:
    log = make_log(37, every=5)
    log.checkpoint()
    report = audit(log.iter_entries(), log.checkpoints(), log.verifier_key)
    report.check()
    assert report.ok
    assert (report.entries, report.checkpoints, report.verified_size) == (37, 8, 37)
    assert report.latest == verify_checkpoint(log.latest_checkpoint() or "", log.verifier_key)
    assert report.first_bad_index is None
    assert report.first_bad_checkpoint is None


def test_audit_pinpoints_a_flipped_byte_in_any_entry() -> None:
    log = make_log(24, every=1)
    entries = list(log.iter_entries())
    checkpoints = log.checkpoints()
    for i in range(len(entries)):
        for at in (0, 7, -1):
            tampered = [*entries[:i], flip(entries[i], at), *entries[i + 1 :]]
            report = audit(tampered, checkpoints, log.verifier_key)
            assert report.first_bad_index == i
            assert report.first_bad_checkpoint == i
            assert report.verified_size == i
            with pytest.raises(VerificationError, match=f"checkpoint #{i}"):
                report.check()


def test_sparse_checkpoints_bound_the_bad_entry_and_leaf_hashes_pinpoint_it() -> None:
    log = make_log(40, every=8)
    entries = list(log.iter_entries())
    leaves = log.leaf_hashes(0, 40)
    for i in range(40):
        tampered = [*entries[:i], flip(entries[i], i), *entries[i + 1 :]]
        report = audit(tampered, log.checkpoints(), log.verifier_key)
        assert report.suspect_range is not None
        lo, hi = report.suspect_range
        assert lo <= i < hi
        assert hi - lo == 8
        assert report.first_bad_checkpoint == i // 8
        exact = audit(tampered, log.checkpoints(), log.verifier_key, leaf_hashes=leaves)
        assert exact.first_bad_index == i
        assert any(f"entry {i} does not hash" in p for p in exact.problems)


def test_claimed_leaf_hashes_that_disagree_with_signed_roots_are_reported() -> None:
    log = make_log(16, every=4)
    leaves = log.leaf_hashes(0, 16)
    forged = [*leaves[:5], bytes(32), *leaves[6:]]
    report = audit(log.iter_entries(), log.checkpoints(), log.verifier_key, leaf_hashes=forged)
    assert any("claimed leaf hashes do not reproduce" in p for p in report.problems)
    assert report.first_bad_index is None
    report = audit(log.iter_entries(), log.checkpoints(), log.verifier_key, leaf_hashes=[b"x"])
    assert any("not all 32-byte" in p for p in report.problems)


def test_forged_missing_and_foreign_checkpoints_are_reported() -> None:
    log = make_log(10, every=5)
    good = log.checkpoints()
    body, sig = good[0].split("\n\n")
    name, b64sig = sig.rstrip("\n").split(" ")[1:]
    raw = bytearray(base64.b64decode(b64sig))
    raw[10] ^= 1
    forged = f"{body}\n\n\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    report = audit(log.iter_entries(), [good[0], forged, good[1]], log.verifier_key)
    assert report.first_bad_checkpoint == 1
    assert "checkpoint #1 is not valid" in report.problems[0]
    assert report.verified_size == 10

    short = audit(list(log.iter_entries())[:7], good, log.verifier_key)
    assert short.first_bad_checkpoint == 1
    assert "covers 10 entries but only 7 exist" in short.problems[0]

    stranger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    foreign = audit(log.iter_entries(), good, stranger.vkey)
    assert foreign.first_bad_checkpoint == 0
    assert len(foreign.problems) == 2
    assert foreign.verified_size == 0

    with pytest.raises(BadRequest):
        audit(log.iter_entries(), good, "not a vkey")
    with pytest.raises(BadRequest, match="entry 0 is not bytes"):
        audit(["text"], good, log.verifier_key)  # type: ignore[list-item]


def test_verify_checkpoint_origin_rules() -> None:
    signer = NoteSigner("key.example", Ed25519PrivateKey.generate())
    note = sign_note(Checkpoint("other.example", 0, bytes(32)).to_text(), [signer])
    with pytest.raises(VerificationError, match=r"not 'key\.example'"):
        verify_checkpoint(note, signer.vkey)
    assert verify_checkpoint(note, signer.vkey, origin="other.example").size == 0
    with pytest.raises(BadRequest, match="at least 3"):
        verify_checkpoint(sign_note("just text\n", [signer]), signer.vkey)


def test_verify_published_go_checkpoint() -> None:
    ex = EXAMPLES["go_sumdb_signed_tree"]
    cp = verify_checkpoint(ex["note"], ex["vkey"], origin=ex["origin"])
    assert cp.size == ex["size"]
    with pytest.raises(VerificationError):
        verify_checkpoint(ex["note"].replace("\n6\n", "\n7\n"), ex["vkey"], origin=ex["origin"])
    with pytest.raises(VerificationError, match=r"not 'localhost\.localdev/sumdb'"):
        verify_checkpoint(ex["note"], NoteVerifier.from_vkey(ex["vkey"]))


def test_consistency_between_checkpoints_of_different_logs_is_refused() -> None:
    a = Checkpoint("a.example", 1, bytes(32))
    b = Checkpoint("b.example", 1, bytes(32))
    with pytest.raises(VerificationError, match="two logs"):
        verify_checkpoint_consistency(a, b, [])
    verify_checkpoint_consistency(a, a, [])


def test_verify_entry_inclusion_refuses_a_wrong_index() -> None:
    log = make_log(6, every=6)
    cp = verify_checkpoint(log.checkpoints()[-1], log.verifier_key)
    verify_entry_inclusion(log.entry(4), 4, log.inclusion_proof(4, 6), cp)
    with pytest.raises(VerificationError):
        verify_entry_inclusion(log.entry(4), 5, log.inclusion_proof(4, 6), cp)


def test_verify_module_needs_no_other_sovra_stage() -> None:
    tree = ast.parse(Path(verify_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    sovra = {m for m in imported if m.startswith("sovra")}
    assert sovra <= {
        "sovra_verify.errors",
        "sovra_verify._merkle",
        "sovra_verify.checkpoint",
        "sovra_verify.note",
    }
    # The audit's reference hashing must not lean on the log's own tree.
    assert "MerkleTree" not in Path(verify_module.__file__).read_text()
