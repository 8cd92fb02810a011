"""Witnessed release: a custodian with its own witnesses releases only what they cosigned.

Everything here is real: a transparency log signing with its Ed25519 key, witnesses
(:class:`sovra.ledger.Witness`) that check consistency and cosign (C2SP tlog-cosignature),
the gateway's :class:`~sovra.release_proofs.ReleaseProofs` asking them, and a custodian
whose witness keys come from its own policy. The operator's forgeries are made the way an
operator holding the log key would make them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, ConfigError, Denied, Unavailable
from sovra.keys import LocalCustodian
from sovra.keys.witnessed import (
    WitnessPolicy,
    format_tlog_proof,
    parse_tlog_proof,
    policy_path,
)
from sovra.ledger import CosignatureSigner, TransparencyLog, Witness
from sovra.ledger.storage import MemoryLogStorage
from sovra.model import Decision, RecordHeader, ReleaseAuthorization, subject_commitment
from sovra.release_proofs import ReleaseProofs
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import NoteSigner, sign_note

ORIGIN = "sovra.test/log"
ALICE = subject_commitment(b"c" * 32, "PL", "alice")
REQUESTER = "svc-support"
START_MS = 1_790_000_000_000
MAX_AGE_S = 60


@dataclass
class Clock:
    ms: int = START_MS

    def __call__(self) -> int:
        return self.ms

    def seconds(self) -> int:
        return self.ms // 1000


@dataclass
class World:
    clock: Clock
    log_key: Ed25519PrivateKey
    log: TransparencyLog
    witnesses: list[Witness]
    outsiders: list[Witness]
    custodian: LocalCustodian
    header: RecordHeader
    wrapped: object

    def decide(self, *, allow: bool = True, record: str = "rec-1") -> ReleaseAuthorization:
        """A decision logged as the gateway logs it, with the log's receipt."""
        decision = Decision(
            decision_id=f"d-{self.log.size}",
            allow=allow,
            reason="test",
            principal=REQUESTER,
            purpose="customer-support",
            records=(record,),
            subjects=(ALICE,),
        )
        entry = decision.to_entry(self.clock()).to_bytes()
        receipt = self.log.append(entry)
        return ReleaseAuthorization.of(decision, entry, receipt)

    def unwrap(self, authorization: ReleaseAuthorization) -> bytes:
        return self.custodian.unwrap(self.wrapped, self.header, authorization, REQUESTER)  # type: ignore[arg-type]

    def refused(self, authorization: ReleaseAuthorization, reason: str) -> None:
        """The custodian refuses, releases nothing, and journals the refusal."""
        before = len(self.custodian.journal())
        with pytest.raises(Denied, match=reason) as info:
            self.unwrap(authorization)
        assert "not witnessed" in info.value.message or "effect" in info.value.message
        entries = self.custodian.journal()[before:]
        assert [(e.outcome, e.record_id) for e in entries] == [("denied", "rec-1")]
        assert entries[0].reason == info.value.message
        assert all(e.outcome != "released" for e in entries)


def _witness(clock: Clock, name: str, log_vkey: str) -> Witness:
    signer = CosignatureSigner(f"witness.test/{name}", Ed25519PrivateKey.generate(), clock.seconds)
    return Witness(signer, [log_vkey])


@pytest.fixture
def world(tmp_path: Path) -> World:
    clock = Clock()
    log_key = Ed25519PrivateKey.generate()
    log = TransparencyLog(MemoryLogStorage(), NoteSigner(ORIGIN, log_key), ORIGIN, clock)
    witnesses = [_witness(clock, n, log.verifier_key) for n in ("a", "b", "c")]
    outsiders = [_witness(clock, n, log.verifier_key) for n in ("x", "y")]
    path = tmp_path / "PL.key"
    LocalCustodian.create(path, "PL", log_key.public_key()).close()
    # The custodian's own policy, in its own folder: 2 of a, b, c; 60 s.
    policy = WitnessPolicy.of([w.vkey for w in witnesses], 2, MAX_AGE_S)
    policy_path(path).write_bytes(policy.to_json())
    custodian = LocalCustodian.open(path, "PL", log_key.public_key(), clock=clock)
    header = RecordHeader("rec-1", ALICE, "PL", "eu-central", 1)
    wrapped = custodian.wrap(b"k" * 32, header)
    return World(clock, log_key, log, witnesses, outsiders, custodian, header, wrapped)


def test_the_same_decision_releases_once_a_quorum_witnessed_it(world: World) -> None:
    allow = world.decide()
    # Receipt alone (what a custodian without witnesses needs): refused here.
    world.refused(allow, "came without a witnessed checkpoint")
    proofs = ReleaseProofs(world.log, world.witnesses[:2])
    witnessed = proofs.attach([allow])[0]
    assert world.unwrap(witnessed) == b"k" * 32
    assert world.custodian.journal()[-1].outcome == "released"


def test_a_forged_allow_signed_with_the_log_key_releases_nothing(world: World) -> None:
    """The operator signs an allow into its own log view, never shown to the witnesses."""
    world.decide()
    honest = ReleaseProofs(world.log, world.witnesses).cosigned(world.log.size)[1]
    # A forked log: the operator's copy with a forged allow, signed with the real log key.
    fork = TransparencyLog(
        MemoryLogStorage(), NoteSigner(ORIGIN, world.log_key), ORIGIN, world.clock
    )
    fork.append_many([(e, ()) for e in world.log.entries(0, world.log.size)])
    forged = Decision("forged", True, "none", REQUESTER, "customer-support", ("rec-1",), (ALICE,))
    entry = forged.to_entry(world.clock()).to_bytes()
    receipt = fork.append(entry)
    allow = ReleaseAuthorization.of(forged, entry, receipt)
    note = fork.checkpoint()
    proof = fork.inclusion_proof(receipt.index, receipt.index + 1)
    # Log-signed only.
    world.refused(
        replace(allow, proof=format_tlog_proof(receipt.index, proof, note)),
        "cosigned by 0 of the 2 witnesses",
    )
    # With the witnesses' real cosignatures of the honest checkpoint pasted on.
    lines = honest[honest.rfind("\n\n") + 2 :].splitlines(keepends=True)[1:]
    pasted = note + "".join(lines)
    world.refused(
        replace(allow, proof=format_tlog_proof(receipt.index, proof, pasted)),
        r"cosigned by 0 of the 2 .*does not verify over this checkpoint \(made for another\?\)",
    )
    # And the honest witnesses refuse to cosign the fork: it is not consistent with
    # what they hold, so no quorum for it can be had at all.
    with pytest.raises(Unavailable, match="0 of the 3 witness cosignatures"):
        ReleaseProofs(fork, world.witnesses).cosigned(fork.size)


def test_below_quorum(world: World) -> None:
    allow = ReleaseProofs(world.log, world.witnesses[:1]).attach([world.decide()])[0]
    world.refused(allow, "cosigned by 1 of the 2 witnesses this custodian requires")


def test_cosignatures_by_witnesses_the_custodian_does_not_know(world: World) -> None:
    allow = ReleaseProofs(world.log, world.outsiders).attach([world.decide()])[0]
    world.refused(
        allow,
        r"cosigned by 0 of the 2 .*line 2 is by witness.test/x\+[0-9a-f]{8}, "
        "not a witness it knows",
    )


def test_cosignatures_over_another_checkpoint(world: World) -> None:
    proofs = ReleaseProofs(world.log, world.witnesses)
    first = proofs.attach([world.decide()])[0]
    second = proofs.attach([world.decide()])[0]
    old, new = parse_tlog_proof(first.proof), parse_tlog_proof(second.proof)
    assert old.checkpoint != new.checkpoint
    cosigs = old.checkpoint[old.checkpoint.rfind("\n\n") + 2 :].splitlines(keepends=True)[1:]
    moved = new.checkpoint[: new.checkpoint.rfind("\n\n") + 2]
    moved += new.checkpoint[len(moved) :].splitlines(keepends=True)[0] + "".join(cosigs)
    forged = format_tlog_proof(new.index, new.hashes, moved)
    world.refused(
        replace(second, proof=forged),
        "the cosignature by witness.test/a does not verify over this checkpoint",
    )


def test_stale_beyond_the_age(world: World) -> None:
    allow = ReleaseProofs(world.log, world.witnesses).attach([world.decide()])[0]
    world.clock.ms += (MAX_AGE_S + 1) * 1000  # the decision itself is still fresh (5 min)
    world.refused(allow, r"is stale: 0 of its 3 witness cosignatures are at most 60000 ms old")
    world.clock.ms -= 2000
    assert world.unwrap(allow) == b"k" * 32


def test_an_inclusion_proof_for_another_entry(world: World) -> None:
    proofs = ReleaseProofs(world.log, world.witnesses)
    mine, other = proofs.attach([world.decide(), world.decide(record="rec-2")])
    theirs = parse_tlog_proof(other.proof)
    # Another entry's proof as it is: its index gives it away.
    world.refused(
        replace(mine, proof=other.proof),
        f"the inclusion proof is for entry {theirs.index}, not the logged allow at "
        f"{mine.receipt.index}",
    )
    # Relabelled with this entry's index: the path leads elsewhere.
    relabelled = format_tlog_proof(mine.receipt.index, theirs.hashes, theirs.checkpoint)
    world.refused(
        replace(mine, proof=relabelled),
        f"does not lead from entry {mine.receipt.index} to the root of the witnessed checkpoint",
    )


def test_a_witnessed_deny_releases_nothing(world: World) -> None:
    deny = ReleaseProofs(world.log, world.witnesses).attach([world.decide(allow=False)])[0]
    world.refused(deny, "the logged decision's effect is 'deny', not 'allow'")


def test_a_checkpoint_not_signed_by_the_log_key(world: World) -> None:
    allow = ReleaseProofs(world.log, world.witnesses).attach([world.decide()])[0]
    parsed = parse_tlog_proof(allow.proof)
    text = parsed.checkpoint[: parsed.checkpoint.rfind("\n\n") + 1]
    other = sign_note(text, [NoteSigner(ORIGIN, Ed25519PrivateKey.generate())])
    world.refused(
        replace(allow, proof=format_tlog_proof(parsed.index, parsed.hashes, other)),
        "the checkpoint is not signed by the log key",
    )


def test_malformed_proofs(world: World) -> None:
    allow = ReleaseProofs(world.log, world.witnesses).attach([world.decide()])[0]
    for bad, reason in [
        ("not a proof", "starts with 'c2sp.org/tlog-proof@v1'"),
        ("c2sp.org/tlog-proof@v1\nindex x\n\ncp\n", "is not a decimal number"),
        ("c2sp.org/tlog-proof@v1\nindex 0\nAAAA\n\ncp\n", "hash 0 is not 32 bytes"),
        # 32 bytes, but not their canonical spelling (the last character's spare bits set).
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + "A" * 42 + "B=\n\ncp\n", "hash 0 is not 32"),
        (allow.proof.replace(ORIGIN, "other.test/log"), "malformed|not 'sovra.test/log'"),
        ("x" * 70_000, "at most 65536 bytes"),
    ]:
        world.refused(replace(allow, proof=bad), reason)


def test_one_round_trip_serves_a_batch(world: World) -> None:
    proofs = ReleaseProofs(world.log, world.witnesses)
    batch = [world.decide(record="rec-1") for _ in range(20)]
    witnessed = proofs.attach(batch)
    assert proofs.round_trips == 1
    for allow in witnessed:
        assert world.unwrap(allow) == b"k" * 32
    # Covered already: no second round trip.
    proofs.attach(batch[:3])
    assert proofs.round_trips == 1
    # Every witness holds the checkpoint the custodian accepted: it was public first.
    note = parse_tlog_proof(witnessed[0].proof).checkpoint
    size = Checkpoint.parse(note.split("\n\n")[0] + "\n").size
    assert all(w.head(ORIGIN) == (size, world.log.root(size)) for w in world.witnesses)


def test_the_tlog_proof_round_trips() -> None:
    hashes = [bytes([n]) * 32 for n in range(3)]
    text = format_tlog_proof(7, hashes, "o\n1\nAA==\n\n\u2014 o AAAA\n")
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 7\n")
    parsed = parse_tlog_proof(text)
    assert (parsed.index, parsed.hashes) == (7, tuple(hashes))
    assert format_tlog_proof(parsed.index, parsed.hashes, parsed.checkpoint) == text
    extra = text.replace("index 7", "extra " + base64.b64encode(b"x").decode() + "\nindex 7")
    assert parse_tlog_proof(extra) == parsed
    with pytest.raises(BadRequest, match="not a decimal number"):
        parse_tlog_proof(text.replace("index 7", "index 07"))


def test_the_policy_file_is_the_custodians_own_and_fails_closed(tmp_path: Path) -> None:
    signer = CosignatureSigner("witness.test/a", Ed25519PrivateKey.generate())
    policy = WitnessPolicy.of([signer.vkey], 1, 30)
    assert WitnessPolicy.from_json(policy.to_json()).to_json() == policy.to_json()
    doc = json.loads(policy.to_json())
    for change, reason in [
        ({"quorum": 2}, "a quorum of 2 out of 1"),
        ({"quorum": 0}, "a quorum of 0 out of 1"),
        ({"witnesses": []}, "needs 1..32 witnesses"),
        ({"witnesses": ["nope"]}, "witness key"),
        ({"max_checkpoint_age_s": 0}, "age limit"),
        ({"extra": 1}, "exactly the fields"),
        ({"type": "other"}, "not a sovra-witnessed-release"),
    ]:
        with pytest.raises(ConfigError, match=reason):
            WitnessPolicy.from_json(json.dumps(doc | change).encode())
    with pytest.raises(ConfigError, match="duplicate field"):
        WitnessPolicy.from_json(b'{"quorum": 1, "quorum": 1}')
    # A policy file that does not parse stops the custodian from opening at all.
    log_key = Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "PL.key"
    LocalCustodian.create(path, "PL", log_key).close()
    policy_path(path).write_text("{")
    with pytest.raises(ConfigError, match=r"PL\.witnesses: the witness policy is not JSON"):
        LocalCustodian.open(path, "PL", log_key)


def test_a_witness_that_holds_another_size_cosigns_nothing(world: World) -> None:
    """A witness that answers "not the size I hold" (tlog-witness 409): too few cosign, the
    gateway gets a precise error and the custodian is never asked."""
    proofs = ReleaseProofs(world.log, world.witnesses[:2])
    proofs.attach([world.decide()])
    # Someone else moves witness b on; this gateway still believes it at the old size.
    world.decide()
    b, held = world.witnesses[1], world.log.size - 1
    b.add_checkpoint(world.log.checkpoint(), held, world.log.consistency_proof(held, held + 1))
    allow = world.decide()
    before = world.custodian.journal()
    with pytest.raises(Unavailable) as caught:
        proofs.attach([allow])
    assert caught.value.message.startswith(
        f"1 of the 2 witness cosignatures required for checkpoint {world.log.size} "
        f"(witness 1: this witness holds {ORIGIN} at size "
    )
    assert [e.message for e in proofs.attach_all([allow])] == [caught.value.message]  # type: ignore[union-attr]
    assert world.custodian.journal() == before
