"""The gateway's side of witnessed release: logged allows proved into a cosigned checkpoint.

A custodian with a witness policy (:mod:`sovra.keys.witnessed`) releases a key only
against a C2SP tlog-proof of the allow's entry into a checkpoint a quorum of its
witnesses cosigned. :class:`ReleaseProofs` makes those proofs for the access flow: after
a batch of decisions is logged, it has the log sign a checkpoint covering them, sends it
to the witnesses (C2SP tlog-witness ``add-checkpoint``: the size each holds and a
consistency proof from it), all at once, goes on as soon as the quorum has cosigned
(a slower witness's answer is read by a later round; the round is
:class:`sovra.ledger.rounds.WitnessRounds`'s, as the log's own witnessing's), and attaches
to every allow its inclusion proof into that cosigned checkpoint. One witness round trip
serves the whole batch, and a batch already covered by the last cosigned checkpoint costs
none.

A witness is anything with ``add_checkpoint(note, old_size, proof) -> str`` returning the
cosignature line(s), or the note with them appended (:class:`sovra.ledger.Witness`).

A deployment whose log witnesses every batch itself (``[witnesses] policy``,
:class:`sovra.ledger.witnessing.Witnessing`) has had its decisions covered by then:
:meth:`ReleaseProofs.following` takes the log's cosigned checkpoint and sends nothing more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from sovra.errors import ConfigError, SovraError, Unavailable
from sovra.ledger.log import TransparencyLog
from sovra.ledger.rounds import CheckpointWitness, WitnessRounds
from sovra.model import ReleaseAuthorization
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.proof import _write_proof

__all__ = ["CheckpointWitness", "ReleaseProofs"]


class CosignedCheckpoints(Protocol):
    """A log's own witnessing (:class:`sovra.ledger.witnessing.Witnessing`)."""

    def cover(self, size: int) -> None:
        """Return once a quorum-cosigned checkpoint covers *size* entries, or a round failed."""
        ...

    def cosigned_checkpoint(self) -> str:
        """The newest quorum-cosigned checkpoint, with its cosignature lines."""
        ...


class ReleaseProofs:
    """Attaches to logged allows their inclusion proof into a witness-cosigned checkpoint.

    Safe to share between threads: one checkpoint is out to the witnesses at a time, and
    a batch whose decisions it already covers waits for it instead of sending another.
    """

    def __init__(
        self,
        log: TransparencyLog,
        witnesses: Sequence[CheckpointWitness],
        *,
        quorum: int | None = None,
        source: CosignedCheckpoints | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        """Collect cosignatures of *log*'s checkpoints from *witnesses*.

        Args:
            log: the log the decisions are in.
            witnesses: where each checkpoint is sent.
            quorum: how many must cosign before the allows go on (default: all); a
                round goes on as soon as that many have, and the others' answers are
                read when they come (a witness gets its next checkpoint only then).
            source: instead of *witnesses*, the log's own witnessing (:meth:`following`).
            timeout_s: the longest a round waits for its quorum, and a witness's
                answer is waited for before it is given up.

        Raises:
            ConfigError: no witness, an impossible quorum, or a timeout out of 0..600 s.
        """
        quorum = len(witnesses) if quorum is None else quorum
        if source is None and not 0 < quorum <= len(witnesses):
            raise ConfigError(f"a quorum of {quorum} out of {len(witnesses)} witnesses")
        if not 0 < timeout_s <= 600:
            raise ConfigError(f"a witness timeout is 0..600 s, not {timeout_s!r}")
        self._log = log
        self._quorum = quorum
        self._rounds = WitnessRounds(witnesses, log.consistency_proof, timeout_s=timeout_s)
        self._lock = threading.Lock()
        self._cosigned: tuple[int, str] | None = None
        self.round_trips = 0
        """How many checkpoints were sent to the witnesses (for benchmarks and tests)."""
        self.round_seconds = 0.0
        """The wall time those rounds took, from the first request to the last answer."""
        self._source = source

    @property
    def sends_rounds(self) -> bool:
        """Whether this sends checkpoints to witnesses itself (not :meth:`following`)."""
        return self._source is None

    @classmethod
    def following(cls, log: TransparencyLog, source: CosignedCheckpoints) -> ReleaseProofs:
        """Proofs into the checkpoints *log*'s own witnessing gets cosigned per batch."""
        return cls(log, (), source=source)

    def attach(self, authorizations: Sequence[ReleaseAuthorization]) -> list[ReleaseAuthorization]:
        """Each authorization with its entry's tlog-proof into one cosigned checkpoint.

        Raises:
            Unavailable: fewer than the quorum of witnesses cosigned (each one's reason
                in the message); nothing is attached.
        """
        if not authorizations:
            return []
        size, note = self.cosigned(max(a.receipt.index for a in authorizations) + 1)
        # The note was checked where it was made (the log's, with verified cosignatures),
        # so each proof is written without TlogProof's checks of it.
        path = self._log.inclusion_proof
        return [
            replace(a, proof=_write_proof(a.receipt.index, path(a.receipt.index, size), note))
            for a in authorizations
        ]

    def attach_all(
        self, authorizations: Sequence[ReleaseAuthorization]
    ) -> list[ReleaseAuthorization | SovraError]:
        """As :meth:`attach`, with its error in every slot if it fails (the batch's)."""
        try:
            return list(self.attach(authorizations))
        except SovraError as exc:
            return [exc] * len(authorizations)

    def cosigned(self, size: int) -> tuple[int, str]:
        """A checkpoint of at least *size* entries cosigned by the quorum, and its size.

        Raises:
            Unavailable: fewer than the quorum of witnesses cosigned.
        """
        if self._source is not None:
            self._source.cover(size)  # at once, unless the log's last round missed these
            try:
                latest = self._source.cosigned_checkpoint()
            except SovraError as exc:
                raise Unavailable(f"no witnessed checkpoint: {exc.message}") from None
            reached = _size(latest)
            if reached < size:
                raise Unavailable(
                    f"the newest checkpoint the witnesses cosigned covers {reached} entries, "
                    f"not the {size} this release needs (the log's round for them failed)"
                )
            return reached, latest
        with self._lock:
            if self._cosigned is not None and self._cosigned[0] >= size:
                return self._cosigned
            # A log that publishes after every batch has signed one already; otherwise,
            # or if it does not reach *size* yet, sign one now. Without a sync of its
            # own: the decisions it covers were durable before their receipts returned.
            note = self._log.latest_checkpoint()
            reached = -1 if note is None else _size(note)
            if note is None or reached < size:
                note = self._log.checkpoint(durable=False)
                reached = _size(note)
            started = time.perf_counter()
            quorum = self._quorum
            answers = self._rounds.run(note, reached, lambda cosigned: len(cosigned) >= quorum)
            self.round_seconds += time.perf_counter() - started
            lines = [a for a in answers if isinstance(a, str)]
            if len(lines) < self._quorum:
                why = "; ".join(
                    f"witness {n}: {a.message}"
                    for n, a in enumerate(answers)
                    if isinstance(a, SovraError)
                )
                raise Unavailable(
                    f"{len(lines)} of the {self._quorum} witness cosignatures required for "
                    f"checkpoint {reached} ({why})"
                )
            self.round_trips += 1
            self._cosigned = (reached, note + "".join(lines))
            return self._cosigned

    def close(self) -> None:
        """Close the connections of answers still out (the witnesses' clients close the
        idle ones)."""
        with self._lock:
            self._rounds.close()


def _size(note: str) -> int:
    return Checkpoint.parse(note[: note.rfind("\n\n") + 1]).size
