"""Witnessed release: a custodian with its own witnesses releases only what they cosigned.

Everything here is real: a transparency log signing with its Ed25519 key, witnesses
(:class:`sovra.ledger.Witness`) that check consistency and cosign (C2SP tlog-cosignature),
the gateway's :class:`~sovra.release_proofs.ReleaseProofs` asking them, and a custodian
whose witness keys come from its own policy. The operator's forgeries are made the way an
operator holding the log key would make them.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.slow_witness import SlowWitness

from sovra.errors import ConfigError, Denied, Unavailable
from sovra.keys import LocalCustodian
from sovra.keys.witnessed import ReleasePolicy, policy_path
from sovra.ledger import CosignatureSigner, TransparencyLog, Witness
from sovra.ledger.storage import MemoryLogStorage
from sovra.ledger.tlog_witness import WitnessClient
from sovra.model import Decision, RecordHeader, ReleaseAuthorization, subject_commitment
from sovra.release_proofs import ReleaseProofs
from sovra.server.background import running
from sovra.server.witness import create_witness_app
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import NoteSigner, sign_note
from sovra_verify.proof import TlogProof

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


def _proof(index: int, hashes: object, checkpoint: str) -> str:
    return TlogProof(index, tuple(hashes), checkpoint).to_text()  # type: ignore[call-overload]


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
    policy = ReleasePolicy.of([w.vkey for w in witnesses], 2, MAX_AGE_S)
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


def _fork(world: World, size: int) -> TransparencyLog:
    """The operator's copy of the log's first *size* entries, signed with the real log key."""
    fork = TransparencyLog(
        MemoryLogStorage(), NoteSigner(ORIGIN, world.log_key), ORIGIN, world.clock
    )
    fork.append_many([(e, ()) for e in world.log.entries(0, size)])
    return fork


def test_a_forged_allow_signed_with_the_log_key_releases_nothing(world: World) -> None:
    """The operator signs an allow into its own branch of the log, with the real log key."""
    world.decide()
    world.decide()
    honest = ReleaseProofs(world.log, world.witnesses).cosigned(world.log.size)[1]
    fork = _fork(world, 1)
    forged = Decision("forged", True, "none", REQUESTER, "customer-support", ("rec-1",), (ALICE,))
    entry = forged.to_entry(world.clock()).to_bytes()
    receipt = fork.append(entry)
    allow = ReleaseAuthorization.of(forged, entry, receipt)
    note = fork.checkpoint()
    proof = fork.inclusion_proof(receipt.index, receipt.index + 1)
    # Log-signed only.
    world.refused(
        replace(allow, proof=_proof(receipt.index, proof, note)),
        r"cosigned by 0 of its witnesses \(none\), short of its quorum, at least 2 of its 3",
    )
    # With the witnesses' real cosignatures of the honest checkpoint (same size) pasted on.
    lines = honest[honest.rfind("\n\n") + 2 :].splitlines(keepends=True)[1:]
    pasted = note + "".join(lines)
    world.refused(
        replace(allow, proof=_proof(receipt.index, proof, pasted)),
        r"cosigned by 0 of its .*does not verify over this checkpoint \(made for another\?\)",
    )
    # And the honest witnesses refuse to cosign the branch: it is not consistent with what
    # they hold, so no quorum for it can be had at all.
    with pytest.raises(Unavailable, match=r"0 of the 3 witness cosignatures.*fork detected"):
        ReleaseProofs(fork, world.witnesses).cosigned(fork.size)


def test_below_quorum(world: World) -> None:
    allow = ReleaseProofs(world.log, world.witnesses[:1]).attach([world.decide()])[0]
    world.refused(allow, r"cosigned by 1 of its witnesses \(witness.test/a\), short of its quorum")


def test_cosignatures_by_witnesses_the_custodian_does_not_know(world: World) -> None:
    allow = ReleaseProofs(world.log, world.outsiders).attach([world.decide()])[0]
    world.refused(
        allow,
        r"cosigned by 0 of its .*line 2 is by witness.test/x\+[0-9a-f]{8}, "
        "not a witness it knows",
    )


def test_cosignatures_over_another_checkpoint(world: World) -> None:
    proofs = ReleaseProofs(world.log, world.witnesses)
    first = proofs.attach([world.decide()])[0]
    second = proofs.attach([world.decide()])[0]
    old, new = TlogProof.parse(first.proof), TlogProof.parse(second.proof)
    assert old.checkpoint != new.checkpoint
    cosigs = old.checkpoint[old.checkpoint.rfind("\n\n") + 2 :].splitlines(keepends=True)[1:]
    moved = new.checkpoint[: new.checkpoint.rfind("\n\n") + 2]
    moved += new.checkpoint[len(moved) :].splitlines(keepends=True)[0] + "".join(cosigs)
    forged = _proof(new.index, new.proof, moved)
    world.refused(
        replace(second, proof=forged),
        "the cosignature by witness.test/a does not verify over this checkpoint",
    )


def test_stale_beyond_the_age(world: World) -> None:
    allow = ReleaseProofs(world.log, world.witnesses).attach([world.decide()])[0]
    world.clock.ms += (MAX_AGE_S + 1) * 1000  # the decision itself is still fresh (5 min)
    world.refused(
        allow,
        r"is stale: 0 of its 3 witness cosignatures are at most 60000 ms old, short of its quorum",
    )
    world.clock.ms -= 2000
    assert world.unwrap(allow) == b"k" * 32


def test_an_inclusion_proof_for_another_entry(world: World) -> None:
    proofs = ReleaseProofs(world.log, world.witnesses)
    mine, other = proofs.attach([world.decide(), world.decide(record="rec-2")])
    theirs = TlogProof.parse(other.proof)
    # Another entry's proof as it is: its index gives it away.
    world.refused(
        replace(mine, proof=other.proof),
        f"the inclusion proof is for entry {theirs.index}, not the logged allow at "
        f"{mine.receipt.index}",
    )
    # Relabelled with this entry's index: the path leads elsewhere.
    relabelled = _proof(mine.receipt.index, theirs.proof, theirs.checkpoint)
    world.refused(
        replace(mine, proof=relabelled),
        f"does not lead from entry {mine.receipt.index} to the root of the witnessed checkpoint",
    )


def test_a_witnessed_deny_releases_nothing(world: World) -> None:
    deny = ReleaseProofs(world.log, world.witnesses).attach([world.decide(allow=False)])[0]
    world.refused(deny, "the logged decision's effect is 'deny', not 'allow'")


def test_a_checkpoint_not_signed_by_the_log_key(world: World) -> None:
    allow = ReleaseProofs(world.log, world.witnesses).attach([world.decide()])[0]
    parsed = TlogProof.parse(allow.proof)
    text = parsed.checkpoint[: parsed.checkpoint.rfind("\n\n") + 1]
    other = sign_note(text, [NoteSigner(ORIGIN, Ed25519PrivateKey.generate())])
    world.refused(
        replace(allow, proof=_proof(parsed.index, parsed.proof, other)),
        "the checkpoint is not signed by the log key",
    )


def test_malformed_proofs(world: World) -> None:
    allow = ReleaseProofs(world.log, world.witnesses).attach([world.decide()])[0]
    for bad, reason in [
        ("not a proof", "malformed"),
        ("c2sp.org/tlog-proof@v1\nindex x\n\ncp\n", "is not an index line"),
        ("c2sp.org/tlog-proof@v1\nindex 0\nAAAA\n\ncp\n", "line 1 is not the base64 of 32"),
        # 32 bytes, but not their canonical spelling (the last character's spare bits set).
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + "A" * 42 + "B=\n\ncp\n", "not canonical"),
        (allow.proof.replace(ORIGIN, "other.test/log"), "not 'sovra.test/log'"),
        ("x" * 70_000, "over 65536 bytes"),
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
    note = TlogProof.parse(witnessed[0].proof).checkpoint
    size = Checkpoint.parse(note.split("\n\n")[0] + "\n").size
    assert all(w.head(ORIGIN) == (size, world.log.root(size)) for w in world.witnesses)


def test_the_policy_file_is_the_custodians_own_and_fails_closed(tmp_path: Path) -> None:
    signer = CosignatureSigner("witness.test/a", Ed25519PrivateKey.generate())
    policy = ReleasePolicy.of([signer.vkey], 1, 30)
    assert ReleasePolicy.from_json(policy.to_json()).to_json() == policy.to_json()
    listed = {
        "type": "sovra-witnessed-release",
        "format": 1,
        "witnesses": [signer.vkey],
        "quorum": 1,
        "max_checkpoint_age_s": 30,
    }
    assert ReleasePolicy.from_json(json.dumps(listed).encode()).to_json() == policy.to_json()
    text = json.loads(policy.to_json())
    for doc, change, reason in [
        (listed, {"quorum": 2}, "a quorum of 2 out of 1"),
        (listed, {"quorum": 0}, "a quorum of 0 out of 1"),
        (listed, {"witnesses": []}, "needs 1..32 witnesses"),
        (listed, {"witnesses": ["nope"]}, "witness policy: "),
        (listed, {"max_checkpoint_age_s": 0}, "age limit"),
        (listed, {"extra": 1}, "has the fields"),
        (listed, {"type": "other"}, "not a sovra-witnessed-release"),
        (text, {"policy": "quorum none\n"}, "needs a quorum, not 'none'"),
        (text, {"policy": "witness a nope\nquorum a\n"}, "tlog-policy: "),
        (text, {"policy": 7}, "the text of a C2SP tlog-policy"),
        (text, {"witnesses": []}, "has the fields"),
    ]:
        with pytest.raises(ConfigError, match=reason):
            ReleasePolicy.from_json(json.dumps(doc | change).encode())
    with pytest.raises(ConfigError, match="duplicate field"):
        ReleasePolicy.from_json(b'{"quorum": 1, "quorum": 1}')
    # A policy file that does not parse stops the custodian from opening at all.
    log_key = Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "PL.key"
    LocalCustodian.create(path, "PL", log_key).close()
    policy_path(path).write_text("{")
    with pytest.raises(ConfigError, match=r"PL\.witnesses: the witness policy is not JSON"):
        LocalCustodian.open(path, "PL", log_key)


def test_a_witness_that_holds_another_size(world: World) -> None:
    """A witness that answers "not the size I hold" (tlog-witness 409) gets the checkpoint
    again from the size it named; one that holds a larger tree than the checkpoint cannot
    cosign it: too few cosign, the gateway gets a precise error, the custodian is not asked."""
    proofs = ReleaseProofs(world.log, world.witnesses[:2])
    proofs.attach([world.decide()])
    # Someone else moves witness b on; this gateway still believes it at the old size.
    world.decide()
    b, held = world.witnesses[1], world.log.size - 1
    b.add_checkpoint(world.log.checkpoint(), held, world.log.consistency_proof(held, held + 1))
    assert world.unwrap(proofs.attach([world.decide()])[0]) == b"k" * 32
    assert b.head(ORIGIN) == (world.log.size, world.log.root())
    # Now b is shown a larger tree (a branch of the operator's) than the log's.
    allow = world.decide()
    branch = _fork(world, world.log.size)
    branch.append_many([(b"{}", ()), (b"[]", ())])
    held, size = world.log.size - 1, branch.size
    b.add_checkpoint(branch.checkpoint(), held, branch.consistency_proof(held, size))
    before = world.custodian.journal()
    with pytest.raises(Unavailable) as caught:
        proofs.attach([allow])
    assert caught.value.message.startswith(
        f"1 of the 2 witness cosignatures required for checkpoint {size - 2} (witness 1: "
        f"this witness holds {ORIGIN} at size {size}, not {size - 3})"
    )
    assert world.custodian.journal() == before


def test_the_proof_travels_over_http_to_the_custodian_service(world: World) -> None:
    """``sovra custodian serve``'s app on loopback, reached by the gateway's RemoteCustodian:
    the proof goes as the authorization's ``proof`` text and is checked behind it."""
    import socket
    import threading
    import time as _time

    import httpx
    import uvicorn

    from sovra.keys.remote import RemoteCustodian
    from sovra.server.custodian import create_custodian_app

    token = b"t" * 32
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_custodian_app(world.custodian, token=token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        _time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    remote = RemoteCustodian(url, "PL", token)
    try:
        allow = ReleaseProofs(world.log, world.witnesses).attach([world.decide()])[0]
        assert remote.unwrap(world.wrapped, world.header, allow, REQUESTER) == b"k" * 32  # type: ignore[arg-type]
        with pytest.raises(Denied, match="not witnessed: the allow came without a witnessed"):
            remote.unwrap(world.wrapped, world.header, replace(allow, proof=""), REQUESTER)  # type: ignore[arg-type]
        body = remote._unwrap_body([(world.wrapped, world.header)], allow, REQUESTER)  # type: ignore[list-item]
        for bad in (7, "x" * 70_000):
            body["authorization"]["proof"] = bad
            body["requestMetadata"] = {
                "callerPrincipal": "gw",
                "operation": "unwrap",
                "requestId": "1",
            }
            answer = httpx.post(
                f"{url}/kms/xks/v1/keys/PL/unwrap",
                json=body,
                headers={"Authorization": "Bearer " + token.hex()},
            )
            assert answer.status_code == 400, answer.text
            assert answer.json()["errorName"] == "ValidationException"
            assert "authorization proof must be a tlog-proof of at most" in answer.text
    finally:
        remote.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_a_tlog_policy_with_groups(world: World, tmp_path: Path) -> None:
    """The custodian's quorum as a C2SP tlog-policy: witness a, and one of b or c."""
    a, b, c = (w.vkey for w in world.witnesses)
    text = f"witness a {a}\nwitness b {b}\nwitness c {c}\n"
    text += "group bc any b c\ngroup need all a bc\nquorum need\n"
    policy = {"type": "sovra-witnessed-release", "format": 1, "policy": text}
    document = json.dumps(policy | {"max_checkpoint_age_s": 60}).encode()
    path = tmp_path / "grouped" / "PL.key"
    path.parent.mkdir()
    LocalCustodian.create(path, "PL", world.log_key.public_key()).close()
    policy_path(path).write_bytes(document)
    world.custodian = LocalCustodian.open(path, "PL", world.log_key.public_key(), clock=world.clock)
    world.wrapped = world.custodian.wrap(b"k" * 32, world.header)
    # b and c: two witnesses, but not a.
    allow = ReleaseProofs(world.log, world.witnesses[1:]).attach([world.decide()])[0]
    world.refused(allow, r"cosigned by 2 of its witnesses \(witness.test/b, witness.test/c\)")
    allow = ReleaseProofs(world.log, world.witnesses[::2]).attach([world.decide()])[0]
    assert world.unwrap(allow) == b"k" * 32


def test_a_remembered_checkpoint_is_still_held_to_the_age_and_the_proof_format(
    world: World,
) -> None:
    """A checkpoint verified once is remembered (its signatures are not checked again),
    but every later proof into it is parsed and checked, and its age counted anew."""
    first, second, third = ReleaseProofs(world.log, world.witnesses).attach(
        [world.decide() for _ in range(3)]
    )
    assert world.unwrap(first) == b"k" * 32  # verified and remembered
    head, note = second.proof.split("\n\n", 1)
    lines = head.split("\n")
    last = lines[-1]
    spare_bits = last[:42] + ("B" if last[42] != "B" else "C") + "="  # 32 bytes, not canonical
    for bad, reason in [
        ("\n".join([*lines[:-1], spare_bits]) + "\n\n" + note, "not canonical"),
        ("\n".join([*lines[:-1], "A" * 43]) + "\n\n" + note, "not the base64 of 32 bytes"),
        ("\n".join(lines[:-1]) + "\n\n" + note, "proof has"),
        ("\n".join(["c2sp.org/tlog-proof@v2", *lines[1:]]) + "\n\n" + note, "starts with"),
        (head + "\n\n", "needs an empty line and a checkpoint"),
    ]:
        world.refused(replace(second, proof=bad), reason)
    assert world.unwrap(second) == b"k" * 32
    # The same remembered checkpoint, later than its cosignatures' age: refused, and
    # before them by more than the age (a clock set back, or stamps from the future).
    world.clock.ms += (MAX_AGE_S + 1) * 1000
    world.refused(third, "is stale: 0 of its 3 witness cosignatures")
    world.clock.ms -= 2 * (MAX_AGE_S + 1) * 1000
    world.refused(third, "is stale: 0 of its 3 witness cosignatures")
    world.clock.ms += (MAX_AGE_S + 1) * 1000
    assert world.unwrap(third) == b"k" * 32


def test_a_round_goes_on_at_quorum_and_a_slow_witness_catches_up(
    world: World, tmp_path: Path
) -> None:
    """2 of 3 witnesses over tlog-witness HTTP, one of them slow: each round goes on once
    the two quick ones cosigned, the slow one gets no second checkpoint while its first
    is out, and once its answer is read (a 200, or a 409 naming the size it holds) its
    next checkpoint goes from the size it holds, with a consistency proof."""
    gate = threading.Event()
    clock, vkey = world.clock, world.log.verifier_key
    signers = [
        CosignatureSigner(f"witness.test/q{n}", Ed25519PrivateKey.generate(), clock.seconds)
        for n in range(3)
    ]
    quick = [Witness(s, [vkey], tmp_path / f"q{n}.json") for n, s in enumerate(signers[:2])]
    slow = SlowWitness(gate, signers[2], [vkey], tmp_path / "slow.json")
    path = tmp_path / "q" / "PL.key"
    path.parent.mkdir()
    LocalCustodian.create(path, "PL", world.log_key.public_key()).close()
    policy = ReleasePolicy.of([s.vkey for s in signers], 2, MAX_AGE_S)
    policy_path(path).write_bytes(policy.to_json())
    custodian = LocalCustodian.open(path, "PL", world.log_key.public_key(), clock=clock)
    wrapped = custodian.wrap(b"q" * 32, world.header)

    def release(allow: ReleaseAuthorization) -> bytes:
        return custodian.unwrap(wrapped, world.header, allow, REQUESTER)

    def rounds_until_asked(old: int) -> tuple[int, int]:
        """Rounds (each releasing at quorum) until the slow one gets a new request from
        *old*: the round after its late answer reached this gateway; that request."""
        start, deadline = len(slow.asked), time.monotonic() + 30
        while not any(o == old for o, _ in slow.asked[start:]):
            assert time.monotonic() < deadline, slow.asked
            assert release(proofs.attach([world.decide()])[0]) == b"q" * 32
        return slow.asked[-1]

    def answers(n: int) -> list[str]:
        deadline = time.monotonic() + 30
        while len(slow.answered) < n:
            assert time.monotonic() < deadline, slow.answered
            time.sleep(0.01)
        return slow.answered[:n]  # its first n: a later round may have added one since

    with ExitStack() as stack:
        urls = [stack.enter_context(running(create_witness_app(w))) for w in [*quick, slow]]
        clients = [
            WitnessClient(u, s.vkey, consistency=world.log.consistency_proof)
            for u, s in zip(urls, signers, strict=True)
        ]
        proofs = ReleaseProofs(world.log, clients, quorum=2, timeout_s=30)
        stack.callback(gate.set)  # first out: the servers stop once their requests end
        stack.callback(lambda: [c.close() for c in clients])
        stack.callback(proofs.close)
        first = proofs.attach([world.decide()])[0]
        assert release(first) == b"q" * 32
        assert "\u2014 witness.test/q0 " in first.proof
        assert "\u2014 witness.test/q2 " not in first.proof
        size = world.log.size
        assert slow.asked == [(0, size)] and slow.head(ORIGIN) is None
        # More rounds while the slow one still holds the first: it is not asked again.
        for _ in range(2):
            assert release(proofs.attach([world.decide()])[0]) == b"q" * 32
        assert slow.asked == [(0, size)]
        gate.set()  # it answers the first checkpoint; a later round reads the answer
        _, s2 = rounds_until_asked(size)  # from the size it holds, with a proof
        assert answers(2) == ["200", "200"]  # no 409
        _, s3 = rounds_until_asked(s2)
        assert answers(3)[-1] == "200"
        assert slow.head(ORIGIN) == (s3, world.log.root(s3))
        # Another replica of the log moves it on; this gateway still believes it at s3,
        # and its next request waits at the slow one and is answered late, with a 409.
        world.decide()
        moved = world.log.size
        slow.add_checkpoint(world.log.checkpoint(), s3, world.log.consistency_proof(s3, moved))
        gate.clear()
        rounds_until_asked(s3)
        gate.set()
        _, last = rounds_until_asked(moved)  # the size its 409 named, with a proof
        assert answers(6)[3:] == ["200", "OldSizeConflict", "200"]
        assert slow.head(ORIGIN) == (last, world.log.root(last))
        proofs.attach([world.decide()])  # all three may cosign again
    assert custodian.journal()[-1].outcome == "released"
