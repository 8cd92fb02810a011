"""Synchronous witnessing: each batch's checkpoint is cosigned before its receipts return.

With a C2SP tlog-policy in ``sovra.toml`` (``[witnesses] policy``), the log submits its
newest checkpoint to every policy witness that has a URL (C2SP tlog-witness, every
request on the wire before any answer is awaited, one round trip, a timeout) after a
batch is integrated and before that batch's callers get their receipts; the round ends
once the policy's quorum has cosigned, and a slower witness gets its next checkpoint
only after a later round has read its answer, from the size it then holds (the round is
:class:`sovra.ledger.rounds.WitnessRounds`'s, as witnessed release's). The cosignatures
are kept with the checkpoint (the log's cosignature store, where pushed ones go too: ADR
0010), so the newest cosigned checkpoint covers every entry whose receipt was handed
out, and a custodian can demand it before it releases a key (ADR 0022).

Rounds are group-committed like the appends themselves: one round at a time, each for
the newest published checkpoint, so batches integrated while a round is in flight are
covered together by the next one, and a caller whose entries an earlier round already
covered returns at once. A round that misses the quorum (a witness down, slow, or
refusing) is logged and counted; it fails no append, since the entries are stored and
their receipts signed, but no checkpoint covering them is cosigned until a later round
succeeds, which is what a custodian that requires witnesses checks.

Nothing of this runs when no policy is configured: the log's hook stays ``None``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sovra.errors import ConfigError, NotFound, SovraError, Unavailable
from sovra.ledger.cosigning import CheckpointCosignatures
from sovra.ledger.log import TransparencyLog
from sovra.ledger.rounds import WitnessRounds
from sovra.ledger.tlog_witness import WitnessClient
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import _note_text
from sovra_verify.policy import MAX_POLICY_BYTES, WitnessPolicy
from sovra_verify.proof import TlogProof

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "Round",
    "WitnessLike",
    "Witnessing",
    "load_policy",
    "open_witnessing",
]

DEFAULT_TIMEOUT_S = 5.0
_logger = logging.getLogger("sovra.ledger")


class WitnessLike(Protocol):
    """Anything that cosigns like :class:`~sovra.ledger.Witness`: in process or remote."""

    @property
    def vkey(self) -> str:
        """The witness's cosignature vkey."""
        ...

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        """*note* with the witness's cosignature lines appended (see Witness)."""
        ...


@dataclass(frozen=True, slots=True)
class Round:
    """The outcome of one witnessing round.

    Attributes:
        size: the size of the checkpoint submitted.
        cosigned_by: the policy names of the witnesses whose cosignatures were kept.
        failures: each witness's policy name that refused or could not be reached, and why.
        quorum_met: whether the policy's quorum cosigned the checkpoint.
        pending: the witnesses whose answer (to this checkpoint or an earlier one) was
            still out when the round ended: it went on without them once the quorum had
            cosigned, or gave up at the timeout.
    """

    size: int
    cosigned_by: tuple[str, ...]
    failures: tuple[tuple[str, str], ...]
    quorum_met: bool
    pending: tuple[str, ...] = ()


def load_policy(path: Path) -> WitnessPolicy:
    """The tlog-policy file at *path*.

    Raises:
        ConfigError: unreadable, oversized or not a valid policy (naming the line).
    """
    try:
        with path.open("rb") as f:
            data = f.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the witness policy {path}: {exc.strerror}") from None
    try:
        return WitnessPolicy.parse(data)
    except SovraError as exc:
        raise ConfigError(f"witness policy {path}: {exc.message}") from None


def open_witnessing(
    log: TransparencyLog,
    cosignatures: CheckpointCosignatures,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Witnessing | None:
    """Synchronous witnessing of *log* under its cosignatures' policy, hooked into the
    log's appends; None (and no hook) when there is no policy or no witness in it has
    a URL, so those witnesses push (ADR 0010).

    Raises:
        ConfigError: as :meth:`Witnessing.__init__`.
    """
    policy = cosignatures.policy
    if policy is None or not any(w.url for w in policy.witnesses):
        return None
    witnessing = Witnessing.from_policy(log, cosignatures, policy, timeout_s=timeout_s)
    log.after_append = witnessing.cover
    return witnessing


class Witnessing:
    """Submits the log's checkpoints to the policy's witnesses, one round at a time.

    Safe to share between threads. :meth:`cover` is the log's ``after_append`` hook.
    """

    def __init__(
        self,
        log: TransparencyLog,
        cosignatures: CheckpointCosignatures,
        policy: WitnessPolicy,
        witnesses: dict[str, WitnessLike],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Witness *log* with *witnesses* (policy name -> witness) under *policy*.

        Args:
            log: the log whose checkpoints are submitted.
            cosignatures: where the cosignatures are kept; it must accept every policy
                witness's key.
            policy: the quorum a round must meet.
            witnesses: the witnesses to submit to, by their policy names.
            timeout_s: the longest a round waits for its witnesses.

        Raises:
            ConfigError: a witness that is not in the policy or whose key differs from
                the policy's, a witness the cosignature store does not accept, no
                witness at all, or a quorum these witnesses cannot meet.
        """
        known = {w.name: w.verifier.vkey for w in policy.witnesses}
        for name, witness in witnesses.items():
            if known.get(name) != witness.vkey:
                raise ConfigError(f"witness {name!r} is not in the policy with that key")
            if witness.vkey not in cosignatures.witnesses:
                raise ConfigError(f"the cosignature store does not accept witness {name!r}")
        if not witnesses:
            raise ConfigError("synchronous witnessing needs at least one witness with a URL")
        if not policy.satisfied_by(witnesses):
            raise ConfigError(
                "the witnesses with a URL cannot meet the policy's quorum on their own"
            )
        if not 0 < timeout_s <= 600:
            raise ConfigError(f"a witness timeout is 0..600 s, not {timeout_s!r}")
        self._log = log
        self._cosignatures = cosignatures
        self._policy = policy
        self._witnesses = dict(witnesses)
        self._timeout_s = timeout_s
        self._names = list(witnesses)
        self._rounds = WitnessRounds(
            list(witnesses.values()), log.consistency_proof, timeout_s=timeout_s
        )
        self._round_lock = threading.Lock()
        self._covered = 0  # the largest size a round got cosigned by the quorum
        self._latest: str | None = None  # that checkpoint, with its cosignatures
        self._attempted = 0  # the largest size a round was run for
        self.rounds = 0
        """How many rounds ran (for metrics and tests)."""
        self.last: Round | None = None
        """The last round's outcome."""

    @classmethod
    def from_policy(
        cls,
        log: TransparencyLog,
        cosignatures: CheckpointCosignatures,
        policy: WitnessPolicy,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Witnessing:
        """Witness with every policy witness that has a URL, over tlog-witness.

        Raises:
            ConfigError: as :meth:`__init__`, or a malformed witness URL.
        """
        clients: dict[str, WitnessLike] = {}
        for w in policy.witnesses:
            if w.url is None:
                continue
            try:
                clients[w.name] = WitnessClient(
                    w.url, w.verifier, timeout_s=timeout_s, consistency=log.consistency_proof
                )
            except SovraError as exc:
                raise ConfigError(f"witness {w.name!r}: {exc.message}") from None
        return cls(log, cosignatures, policy, clients, timeout_s=timeout_s)

    @property
    def covered(self) -> int:
        """How many entries the newest quorum-cosigned checkpoint this process got covers."""
        return self._covered

    def cover(self, size: int) -> None:
        """Return once a quorum-cosigned checkpoint covers the first *size* entries, or
        once a round that tried failed; never raises (the log's ``after_append`` hook).

        A caller whose entries a finished round covered returns at once; otherwise one
        caller at a time runs a round for the newest checkpoint, which covers every
        entry integrated before it began.
        """
        if self._covered >= size:
            return
        with self._round_lock:
            if self._covered >= size or self._attempted >= size:
                return
            try:
                self._round(size)
            except SovraError as exc:
                _logger.error(  # noqa: TRY400 - an expected failure, said in one line
                    "witnessing the checkpoint for %d entries failed: %s", size, exc.diagnostics()
                )
            except Exception:
                _logger.exception("witnessing the checkpoint for %d entries failed", size)

    def _round(self, size: int) -> None:
        note = self._log.latest_checkpoint()
        if note is None or Checkpoint.parse(_note_text(note)).size < size:
            # No sync of its own: the entries it covers were stored before this hook ran.
            note = self._log.checkpoint(durable=False)
        text = _note_text(note)
        cp = Checkpoint.parse(text)
        self._attempted = max(self._attempted, cp.size)
        self.rounds += 1
        log_signed = _log_signed(note, text)
        names = self._names
        answers = self._rounds.run(
            log_signed,
            cp.size,
            lambda cosigned: self._policy.satisfied_by([names[n] for n in cosigned]),
        )
        busy = self._rounds.pending  # still out: this round went on without them
        lines: list[str] = []
        cosigned: list[str] = []
        failures: list[tuple[str, str]] = []
        for n, answer in enumerate(answers):
            if n in busy:
                continue
            if isinstance(answer, str):
                lines.append(answer)
                cosigned.append(names[n])
            else:
                failures.append((names[n], answer.message))
        if lines:
            self._cosignatures.submit(log_signed + "".join(lines))
        met = self._policy.satisfied_by(cosigned)
        pending = tuple(names[n] for n in sorted(busy))
        self.last = Round(cp.size, tuple(cosigned), tuple(failures), met, pending)
        if not met:
            raise Unavailable(
                f"the checkpoint at size {cp.size} was cosigned by "
                f"{', '.join(cosigned) or 'no witness'}, below the policy's quorum"
                + "".join(f"; {name}: {why}" for name, why in failures)
                + "".join(f"; {name}: no answer within {self._timeout_s} s" for name in pending)
            )
        if failures:
            _logger.warning(
                "witnesses gave no cosignature for size %d: %s",
                cp.size,
                "; ".join(f"{n}: {why}" for n, why in failures),
            )
        if cp.size > self._covered:
            self._covered = cp.size
            self._latest = log_signed + "".join(lines)

    def cosigned_checkpoint(self) -> str:
        """The newest checkpoint this process got cosigned by the quorum, with its lines.

        Raises:
            NotFound: no round has met the quorum yet.
        """
        latest = self._latest
        if latest is None:
            raise NotFound("no checkpoint has been cosigned by the witness quorum yet")
        return latest

    def proof(self, index: int) -> TlogProof:
        """Entry *index* as a C2SP tlog-proof against the newest quorum-cosigned checkpoint.

        Raises:
            NotFound: no cosigned checkpoint covers the entry yet (or it does not exist).
        """
        note = self.cosigned_checkpoint()
        size = Checkpoint.parse(_note_text(note)).size
        if not 0 <= index < size:
            raise NotFound(
                f"entry {index} is not covered by the newest cosigned checkpoint (size {size})"
            )
        path = tuple(self._log.inclusion_proof(index, size))
        return TlogProof(index, path, note, self._log.entry(index))

    def close(self) -> None:
        """Close the witnesses' connections, those of answers still out too."""
        with self._round_lock:
            self._rounds.close()
        for witness in self._witnesses.values():
            if isinstance(witness, WitnessClient):
                witness.close()


def _log_signed(note: str, text: str) -> str:
    """*note* as the log signed it: its text and its first signature line (the log's).

    Cosignatures already attached (pushed ones) are left out of the submission: each
    witness answers with its own lines only, and the store keeps every line anyway.
    """
    signatures = note[len(text) + 1 :]
    first = signatures.split("\n", 1)[0]
    return text + "\n" + first + "\n"
