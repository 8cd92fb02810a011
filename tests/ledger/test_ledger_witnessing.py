"""Synchronous witnessing: each batch's checkpoint is cosigned before its receipts return.

Witnesses are real ``sovra witness serve`` applications on loopback ports (and one aics
witness, the independent implementation of test_ledger_witness_interop.py, where it is
installed); the policy is C2SP tlog-policy text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from tests.slow_witness import SlowWitness

from sovra.errors import ConfigError, NotFound
from sovra.ledger import MemoryLogStorage, NoteSigner, SQLiteLogStorage, TransparencyLog
from sovra.ledger.cosigning import CheckpointCosignatures, cosignature_store
from sovra.ledger.witness import Witness
from sovra.ledger.witnessing import Witnessing, load_policy, open_witnessing
from sovra.server.background import running
from sovra.server.witness import create_witness_app
from sovra_verify.cosignature import CosignatureSigner
from sovra_verify.note import split_signed_note
from sovra_verify.policy import WitnessPolicy

ORIGIN = "sync.sovra.example/log"
LOG_SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


class Witnesses:
    """Three sovra witnesses served over HTTP, and a policy naming them."""

    def __init__(self, stack: ExitStack, tmp_path: Path) -> None:
        self.witnesses = [
            Witness(
                CosignatureSigner(f"w{n}.sync.example", Ed25519PrivateKey.generate()),
                [LOG_SIGNER.vkey],
                tmp_path / f"w{n}.json",
            )
            for n in (1, 2, 3)
        ]
        self.urls = [stack.enter_context(running(create_witness_app(w))) for w in self.witnesses]

    def policy(
        self, quorum: str = "group q 2 A B C\nquorum q", urls: list[str] | None = None
    ) -> str:
        urls = self.urls if urls is None else urls
        lines = [f"log {LOG_SIGNER.vkey}"]
        for name, w, url in zip("ABC", self.witnesses, urls, strict=True):
            lines.append(f"witness {name} {w.vkey} {url}".rstrip())
        return "\n".join(lines) + "\n" + quorum + "\n"


def signers(note: str) -> list[str]:
    """The key names of a note's signature lines after the log's own."""
    _, lines = split_signed_note(note, 10)
    return [name for _, name, _, _ in lines[1:]]


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[Witnesses]:
    with ExitStack() as stack:
        yield Witnesses(stack, tmp_path)


def witnessed_log(
    policy_text: str, storage: MemoryLogStorage | SQLiteLogStorage | None = None
) -> tuple[TransparencyLog, CheckpointCosignatures, Witnessing]:
    storage = storage or MemoryLogStorage()
    log = TransparencyLog(storage, LOG_SIGNER, ORIGIN, publish_after_batch=True)
    policy = WitnessPolicy.parse(policy_text)
    cosignatures = CheckpointCosignatures(log, cosignature_store(storage), policy=policy)
    witnessing = open_witnessing(log, cosignatures, timeout_s=2)
    assert witnessing is not None
    return log, cosignatures, witnessing


def test_receipts_return_after_their_checkpoint_is_cosigned(witnesses: Witnesses) -> None:
    log, cosignatures, witnessing = witnessed_log(witnesses.policy())
    policy = cosignatures.policy
    assert policy is not None
    receipts = []
    lock = threading.Lock()

    def appender(n: int) -> None:
        for i in range(15):
            receipt = log.append(b'{"kind":"decision","t":%d,"i":%d}' % (n, i))
            # By the time a receipt is back, a quorum-cosigned checkpoint covers it.
            assert witnessing.covered > receipt.index
            with lock:
                receipts.append(receipt)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(receipts) == 90 and witnessing.covered == 90
    note = witnessing.cosigned_checkpoint()
    check = policy.check(note)
    # The round went on once two had cosigned; the third may still have been answering.
    assert check.checkpoint.size == 90 and len(check.witnesses) >= 2
    # The cosignatures are kept with the checkpoint: the log serves them (ADR 0010's routes).
    served = cosignatures.cosigned_checkpoint()
    assert policy.check(served).checkpoint.size == 90
    held = {name: w.head(ORIGIN) for name, w in zip("ABC", witnesses.witnesses, strict=True)}
    assert all(held[name] == (90, log.root(90)) for name in check.witnesses)
    # Every witness holds the log's tree at some size: no request jumped another's.
    assert all(h is not None and h == (h[0], log.root(h[0])) for h in held.values())
    # Entries already covered start no round.
    rounds = witnessing.rounds
    witnessing.cover(50)
    log.append_each([])
    assert witnessing.rounds == rounds
    witnessing.close()


def test_a_proof_of_any_entry_travels(witnesses: Witnesses) -> None:
    log, _, witnessing = witnessed_log(witnesses.policy())
    log.append_many([(b'{"kind":"release","n":%d}' % i, ()) for i in range(20)])
    proof = witnessing.proof(13)
    assert proof.extra == log.entry(13)
    policy = WitnessPolicy.parse(witnesses.policy())
    checked = type(proof).parse(proof.to_text()).verify(policy)
    assert checked.index == 13 and checked.policy.checkpoint.size == 20
    with pytest.raises(NotFound, match="not covered"):
        witnessing.proof(20)
    witnessing.close()


def test_one_witness_down_is_tolerated_by_a_two_of_three_quorum(
    witnesses: Witnesses, caplog: pytest.LogCaptureFixture
) -> None:
    urls = [*witnesses.urls[:2], "http://127.0.0.1:9"]  # nothing listens on the discard port
    log, _, witnessing = witnessed_log(witnesses.policy(urls=urls))
    log.append(b"one")
    assert witnessing.covered == 1
    last = witnessing.last
    assert last is not None and last.quorum_met and last.cosigned_by == ("A", "B")
    assert [name for name, _ in last.failures] == ["C"]
    assert "cannot reach" in last.failures[0][1]
    assert "witnesses gave no cosignature for size 1" in caplog.text
    witnessing.close()


def test_below_the_quorum_the_entries_are_stored_but_not_covered(
    witnesses: Witnesses, caplog: pytest.LogCaptureFixture
) -> None:
    urls = [witnesses.urls[0], "http://127.0.0.1:9", "http://127.0.0.1:9"]
    log, cosignatures, witnessing = witnessed_log(witnesses.policy(urls=urls))
    receipt = log.append(b"stored anyway")
    assert log.entry(receipt.index) == b"stored anyway"
    assert witnessing.covered == 0
    assert witnessing.last is not None and not witnessing.last.quorum_met
    assert "below the policy's quorum" in caplog.text
    with pytest.raises(NotFound):
        witnessing.cosigned_checkpoint()
    with pytest.raises(NotFound):
        cosignatures.cosigned_checkpoint()
    # A's cosignature was kept all the same (one line, for size 1).
    assert signers(cosignatures.checkpoint()) == ["w1.sync.example"]
    # Callers covered by the failed round do not start another; new entries do.
    rounds = witnessing.rounds
    witnessing.cover(1)
    assert witnessing.rounds == rounds
    log.append(b"next")
    assert witnessing.rounds == rounds + 1
    witnessing.close()


def _bad_witness(answer: str) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        return PlainTextResponse(answer)

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])


def test_a_cosignature_over_another_checkpoint_is_not_kept(witnesses: Witnesses) -> None:
    signer = CosignatureSigner("w3.sync.example", Ed25519PrivateKey.generate())
    other = TransparencyLog(MemoryLogStorage(), LOG_SIGNER, ORIGIN)
    other.append(b"another tree")
    elsewhere = other.checkpoint()
    line = signer.cosign(elsewhere)[len(elsewhere) :]
    with running(_bad_witness(line)) as bad_url:
        # All three required, so that the round waits for C's answer.
        urls = [witnesses.urls[0], witnesses.urls[1], bad_url]
        text = witnesses.policy("group q 3 A B C\nquorum q", urls=urls)
        text = text.replace(witnesses.witnesses[2].vkey, signer.vkey)
        log, cosignatures, witnessing = witnessed_log(text)
        log.append(b"e")
        last = witnessing.last
        assert last is not None and last.cosigned_by == ("A", "B")
        assert "not over this checkpoint" in dict(last.failures)["C"]
        stored = signers(cosignatures.checkpoint())
        assert sorted(stored) == ["w1.sync.example", "w2.sync.example"]
        witnessing.close()


def test_a_restarted_log_learns_each_witness_size_from_its_409(
    witnesses: Witnesses, tmp_path: Path
) -> None:
    path = tmp_path / "log.db"
    log, _, first = witnessed_log(witnesses.policy(), SQLiteLogStorage(path))
    log.append_many([(b"a%d" % i, ()) for i in range(7)])
    first.close()
    log.close()
    log, _, again = witnessed_log(witnesses.policy(), SQLiteLogStorage(path))
    log.append_many([(b"b%d" % i, ()) for i in range(5)])
    assert again.covered == 12 and again.last is not None and not again.last.failures
    # A witness the round went on without gets there too: a later round reads its 409
    # and sends from the size it named.
    deadline = time.monotonic() + 30

    def caught_up(head: tuple[int, bytes] | None) -> bool:
        return head is not None and head[0] >= 12 and head == (head[0], log.root(head[0]))

    while not all(caught_up(w.head(ORIGIN)) for w in witnesses.witnesses):
        assert time.monotonic() < deadline
        log.append(b"more")
    again.close()
    log.close()


def test_configuration_mistakes_are_refused(witnesses: Witnesses, tmp_path: Path) -> None:
    storage = MemoryLogStorage()
    log = TransparencyLog(storage, LOG_SIGNER, ORIGIN)
    policy = WitnessPolicy.parse(witnesses.policy())
    cosignatures = CheckpointCosignatures(log, storage, policy=policy)
    a = witnesses.witnesses[0]
    stranger = Witness(
        CosignatureSigner("stranger.example", Ed25519PrivateKey.generate()), [LOG_SIGNER.vkey]
    )
    with pytest.raises(ConfigError, match="not in the policy"):
        Witnessing(log, cosignatures, policy, {"A": a, "B": stranger})
    with pytest.raises(ConfigError, match="cannot meet the policy's quorum"):
        Witnessing(log, cosignatures, policy, {"A": a})
    with pytest.raises(ConfigError, match="at least one witness"):
        Witnessing(log, cosignatures, policy, {})
    with pytest.raises(ConfigError, match="not beside it"):
        CheckpointCosignatures(log, storage, [a.vkey], policy=policy)
    # Witnesses without URLs push (ADR 0010): no synchronous witnessing, no hook.
    push_only = WitnessPolicy.parse(witnesses.policy(urls=["", "", ""]))
    pushed = CheckpointCosignatures(log, storage, policy=push_only)
    assert open_witnessing(log, pushed) is None and log.after_append is None
    bad = tmp_path / "bad.policy"
    bad.write_text("witness A not-a-key\nquorum A\n")
    with pytest.raises(ConfigError, match=r"bad\.policy: policy line 1"):
        load_policy(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "absent.policy")


def test_in_process_witnesses_take_part_as_well(witnesses: Witnesses) -> None:
    """The agreed interface: anything with add_checkpoint(note, old_size, proof) -> str."""
    storage = MemoryLogStorage()
    log = TransparencyLog(storage, LOG_SIGNER, ORIGIN, publish_after_batch=True)
    policy = WitnessPolicy.parse(witnesses.policy(quorum="quorum A"))
    cosignatures = CheckpointCosignatures(log, storage, policy=policy)
    witnessing = Witnessing(log, cosignatures, policy, {"A": witnesses.witnesses[0]})
    log.after_append = witnessing.cover
    log.append_many([(b"x", ()), (b"y", ())])
    assert witnessing.covered == 2
    assert policy.check(cosignatures.cosigned_checkpoint()).witnesses == ("A",)
    witnessing.close()


def test_a_round_runs_in_the_appending_thread(witnesses: Witnesses) -> None:
    """No pool: the remote witnesses' requests go out together from the thread whose
    append the round covers, and a witness in this process is called there too."""
    storage = MemoryLogStorage()
    log = TransparencyLog(storage, LOG_SIGNER, ORIGIN, publish_after_batch=True)
    policy = WitnessPolicy.parse(witnesses.policy(quorum="quorum A"))
    cosignatures = CheckpointCosignatures(log, storage, policy=policy)
    called_in: list[threading.Thread] = []

    class Recording(Witness):
        def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
            called_in.append(threading.current_thread())
            return super().add_checkpoint(note, old_size, proof)

    first = witnesses.witnesses[0]
    recording = Recording(first._signer, [LOG_SIGNER.vkey])
    witnessing = Witnessing(log, cosignatures, policy, {"A": recording})
    log.after_append = witnessing.cover
    log.append(b"x")
    assert witnessing.covered == 1
    assert called_in == [threading.current_thread()]
    witnessing.close()


def test_a_round_goes_on_at_quorum_and_a_slow_witness_catches_up(
    witnesses: Witnesses, tmp_path: Path
) -> None:
    """The log's own rounds go on once two of three cosigned; the slow third gets no
    other checkpoint while one is out, and once it has answered its next goes from the
    size it then holds (no 409)."""
    gate = threading.Event()
    signer = CosignatureSigner("slow.sync.example", Ed25519PrivateKey.generate())
    slow = SlowWitness(gate, signer, [LOG_SIGNER.vkey], tmp_path / "slow.json")
    with running(create_witness_app(slow)) as slow_url:
        text = witnesses.policy(urls=[*witnesses.urls[:2], slow_url])
        log, _, witnessing = witnessed_log(text.replace(witnesses.witnesses[2].vkey, signer.vkey))
        try:
            log.append(b"one")
            assert witnessing.covered == 1
            last = witnessing.last
            assert last is not None and last.cosigned_by == ("A", "B")
            assert last.pending == ("C",) and not last.failures
            log.append(b"two")  # C still busy with size 1: not asked again
            assert witnessing.covered == 2 and slow.asked == [(0, 1)]
            gate.set()
            deadline = time.monotonic() + 30
            while len(slow.asked) == 1:  # until a round finds its answer in
                assert time.monotonic() < deadline
                log.append(b"more")
            assert slow.asked[1][0] == 1  # from the size it held
            while len(slow.answered) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert slow.answered == ["200", "200"]
        finally:
            gate.set()
            witnessing.close()
