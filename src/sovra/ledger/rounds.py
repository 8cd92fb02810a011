"""One witness round at a time: a checkpoint to every free witness, answers until enough.

Both the log's own witnessing (:class:`sovra.ledger.witnessing.Witnessing`, a C2SP
tlog-policy's quorum) and the gateway's witnessed release
(:class:`sovra.release_proofs.ReleaseProofs`, a custodian's k) run their rounds here. A
round sends the checkpoint to every witness not still busy with an earlier one (C2SP
tlog-witness ``add-checkpoint``, from the size each holds, with a consistency proof), a
remote witness's request on the wire before any answer is awaited, then reads the answers
in the order they come until the caller's quorum has cosigned, in the caller's thread. A
witness whose answer is still out is sent nothing more until a later round has read that
answer (a 200: it holds that size; a 409: the size it names), so a slow witness costs
neither a 409 nor a thread. A witness in this process is called in turn once the remote
requests are out.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from sovra.errors import SovraError, Unavailable
from sovra.ledger.tlog_witness import PendingCosignature, WitnessClient
from sovra.ledger.witness import OldSizeConflict

__all__ = ["CheckpointWitness", "WitnessRounds"]


class CheckpointWitness(Protocol):
    """A witness a log submits its checkpoints to (C2SP tlog-witness)."""

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        """Cosign *note* if it extends the checkpoint of *old_size* the witness holds."""
        ...


class WitnessRounds:
    """The witnesses of a log, the size each holds, and the requests still out.

    Not safe to share between threads: the caller runs one round at a time.
    """

    def __init__(
        self,
        witnesses: Sequence[CheckpointWitness],
        consistency: Callable[[int, int], Sequence[bytes]],
        *,
        timeout_s: float,
    ) -> None:
        """Rounds over *witnesses*, with consistency proofs from *consistency(old, new)*;
        a round waits at most *timeout_s* for its quorum, and an answer still out that
        long after its round is given up."""
        self._witnesses = list(witnesses)
        self._consistency = consistency
        self._timeout_s = timeout_s
        self._held = [0] * len(witnesses)  # the size each witness holds, as far as known
        # Requests a round went on without (by witness): C2SP tlog-witness wants each
        # request from the size the witness holds, so one gets no other before its answer.
        self._late: dict[int, tuple[PendingCosignature, float]] = {}

    @property
    def pending(self) -> frozenset[int]:
        """The witnesses (by position) whose answer to an earlier request is still out."""
        return frozenset(self._late)

    def run(
        self, note: str, size: int, enough: Callable[[Sequence[int]], bool]
    ) -> list[str | SovraError]:
        """Send *note* (a checkpoint of *size* entries) to every witness not still busy
        with an earlier one, then read their answers as they come until *enough* of the
        witnesses that cosigned (by position), or the timeout.

        Returns:
            By witness: its new cosignature lines, or its error (:class:`Unavailable`
            for a witness whose answer is still out, to this request or an earlier one:
            :attr:`pending`).
        """
        deadline = time.monotonic() + self._timeout_s
        free = self._settle_late(deadline, enough)
        pending = {n: self._send(n, note, size) for n in free}
        answers: dict[int, str | SovraError] = {}
        remote: dict[int, PendingCosignature] = {}
        for n, p in pending.items():
            if isinstance(p, PendingCosignature):
                remote[n] = p
            else:  # in this process, or refused before sending: at once
                answers[n] = self._answer(n, note, size, p)

        def cosigned() -> list[int]:
            return [n for n, a in answers.items() if isinstance(a, str)]

        with selectors.DefaultSelector() as selector:
            for n, p in remote.items():
                selector.register(p, selectors.EVENT_READ, n)
            while remote and not enough(cosigned()):
                ready = selector.select(max(deadline - time.monotonic(), 0.0))
                if not ready:
                    break
                for key, _ in ready:
                    n = key.data
                    selector.unregister(remote[n])
                    answers[n] = self._answer(n, note, size, remote.pop(n).cosigned)
        for n, p in remote.items():  # read by a later round
            self._late[n] = (p, deadline)
            answers[n] = Unavailable(f"no answer within {self._timeout_s} s yet")
        for n in range(len(self._witnesses)):
            answers.setdefault(n, Unavailable("still busy with an earlier checkpoint"))
        return [answers[n] for n in range(len(self._witnesses))]

    def close(self) -> None:
        """Close the connections of answers still out (the witnesses' clients close the
        idle ones)."""
        for pending, _ in self._late.values():
            pending.abandon()
        self._late.clear()

    def _settle_late(self, deadline: float, enough: Callable[[Sequence[int]], bool]) -> list[int]:
        """Read the answers of earlier rounds' requests that have come; the witnesses
        free for a new request. If those cannot meet the quorum, wait for busy ones
        until they can, or until *deadline*."""
        now = time.monotonic()
        for n, (pending, given_up) in list(self._late.items()):
            if pending.ready():
                self._read_late(n)
            elif now > given_up + self._timeout_s:
                pending.abandon()  # its next request learns the size it holds by a 409
                del self._late[n]

        def free() -> list[int]:
            return [n for n in range(len(self._witnesses)) if n not in self._late]

        while self._late and not enough(free()):
            with selectors.DefaultSelector() as selector:
                for n, (pending, _) in self._late.items():
                    selector.register(pending, selectors.EVENT_READ, n)
                ready = selector.select(max(deadline - time.monotonic(), 0.0))
            if not ready:
                break
            for key, _ in ready:
                self._read_late(key.data)
        return free()

    def _read_late(self, n: int) -> None:
        """Witness *n*'s answer to a checkpoint a round went on without: the size it
        holds now (the one sent, or the one its 409 names; unknown after another error,
        which the next request's 409 corrects)."""
        pending, _ = self._late.pop(n)
        try:
            pending.settle()
        except OldSizeConflict as conflict:
            self._held[n] = conflict.size
        except SovraError:
            pass
        else:
            self._held[n] = pending.size

    def _send(
        self, n: int, note: str, size: int
    ) -> PendingCosignature | Callable[[], str] | SovraError:
        """Start asking witness *n* (a remote one is sent its request now)."""
        held = self._held[n]
        witness = self._witnesses[n]
        try:
            proof = self._consistency(held, size) if 0 < held < size else []
            if isinstance(witness, WitnessClient):
                return witness.send(note, held, proof)
        except SovraError as exc:
            return exc
        return lambda: witness.add_checkpoint(note, held, proof)

    def _answer(
        self, n: int, note: str, size: int, pending: Callable[[], str] | SovraError
    ) -> str | SovraError:
        held = self._held[n]
        try:
            if isinstance(pending, SovraError):
                raise pending
            answer = pending()
        except SovraError as exc:
            # A 409 names the size the witness holds (OldSizeConflict.size): once, send
            # the checkpoint again from there (a restart, another replica).
            named = getattr(exc, "size", None)
            if not _resumable(named, held, size):
                if isinstance(named, int) and not isinstance(named, bool):
                    self._held[n] = named  # what it holds, for its next request
                return exc
            held = self._held[n] = cast("int", named)
            try:
                proof = self._consistency(held, size) if 0 < held < size else []
                answer = self._witnesses[n].add_checkpoint(note, held, proof)
            except SovraError as again:
                return again
        self._held[n] = size
        return answer.removeprefix(note)


def _resumable(named: object, held: int, size: int) -> bool:
    """Whether a witness's answer names a size to send a checkpoint of *size* from."""
    return isinstance(named, int) and not isinstance(named, bool) and held != named <= size
