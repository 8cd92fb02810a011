"""The log's side of witnessing: collect cosignatures, publish cosigned checkpoints.

A witness that cosigned one of the log's checkpoints submits the note with its
cosignature lines (C2SP tlog-cosignature) appended. :meth:`CheckpointCosignatures.submit`
keeps those lines only if every one of them is a valid cosignature, by a configured
witness, of a checkpoint this log published byte for byte; one bad line refuses the
whole submission and nothing is stored. The published notes then carry the stored
lines, so a client checks the log's signature and the witnesses' in one signed note
(:func:`~sovra.ledger.witness.verify_cosignatures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sovra.errors import BadRequest, ConfigError, Denied, NotFound, VerificationError
from sovra.ledger.log import TransparencyLog
from sovra.ledger.storage import CosignatureRow, CosignatureStore, LogStorage
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureVerifier
from sovra_verify.note import NoteVerifier, _decode_note, split_signed_note
from sovra_verify.policy import WitnessPolicy

__all__ = [
    "MAX_SUBMISSION_BYTES",
    "MAX_WITNESSES",
    "CheckpointCosignatures",
    "Submission",
    "cosignature_store",
]

MAX_SUBMISSION_BYTES = 64 * 1024
MAX_WITNESSES = 32


@dataclass(frozen=True, slots=True)
class Submission:
    """What a submission stored: the checkpoint, who cosigned it, and how many have now."""

    checkpoint: Checkpoint
    accepted: tuple[str, ...]
    cosigned_by: int
    quorum: int


def cosignature_store(storage: LogStorage) -> CosignatureStore:
    """*storage* as the place the log's cosignatures live.

    Raises:
        ConfigError: this storage backend keeps no cosignatures.
    """
    if not isinstance(storage, CosignatureStore):
        raise ConfigError(f"{type(storage).__name__} cannot keep witness cosignatures")
    return storage


class CheckpointCosignatures:
    """Cosignatures of one log's checkpoints by a configured set of witnesses.

    Safe to share between threads: the state lives in the store.
    """

    def __init__(
        self,
        log: TransparencyLog,
        store: CosignatureStore,
        witnesses: Sequence[str | CosignatureVerifier] = (),
        *,
        quorum: int | None = None,
        policy: WitnessPolicy | None = None,
    ) -> None:
        """Collect cosignatures of *log*'s checkpoints by *witnesses* into *store*.

        Args:
            log: the log whose checkpoints are cosigned.
            store: where the lines are kept (the log's own storage).
            witnesses: the witnesses' vkeys (type 0x04); none means nothing is accepted.
            quorum: how many must cosign a checkpoint for :meth:`cosigned_checkpoint`
                (default: all of them).
            policy: a C2SP tlog-policy instead of *witnesses* and *quorum*: its
                witnesses are accepted and its quorum rule (groups, k of n) chooses
                what :meth:`cosigned_checkpoint` serves.

        Raises:
            ConfigError: a malformed key, two keys of one name, too many witnesses, an
                impossible quorum, or a policy given with witnesses or a quorum.
        """
        self._policy = policy
        if policy is not None:
            if witnesses or quorum is not None:
                raise ConfigError("give the witnesses and quorum in the policy, not beside it")
            witnesses = [w.verifier for w in policy.witnesses]
            quorum = max(policy.minimum(), 1) if witnesses else 0
        try:
            verifiers = [
                w if isinstance(w, CosignatureVerifier) else CosignatureVerifier.from_vkey(w)
                for w in witnesses
            ]
        except BadRequest as exc:
            raise ConfigError(f"witness key: {exc.message}") from None
        if len(verifiers) > MAX_WITNESSES:
            raise ConfigError(f"at most {MAX_WITNESSES} witnesses, got {len(verifiers)}")
        self._witnesses: dict[tuple[str, int], CosignatureVerifier] = {}
        for v in verifiers:
            if any(name == v.name for name, _ in self._witnesses):
                raise ConfigError(f"two witness keys are named {v.name!r}")
            self._witnesses[(v.name, v.key_id)] = v
        quorum = len(verifiers) if quorum is None else quorum
        if isinstance(quorum, bool) or not isinstance(quorum, int):
            raise ConfigError(f"the witness quorum must be an integer, not {quorum!r}")
        if verifiers and not 0 < quorum <= len(verifiers):
            raise ConfigError(f"a quorum of {quorum} out of {len(verifiers)} witnesses")
        if not verifiers and quorum != 0:
            raise ConfigError("a witness quorum needs witness keys")
        self._quorum = quorum
        self._log = log
        self._log_key = NoteVerifier.from_vkey(log.verifier_key)
        self._store = store

    @property
    def witnesses(self) -> list[str]:
        """The configured witnesses' vkeys."""
        return [v.vkey for v in self._witnesses.values()]

    @property
    def policy(self) -> WitnessPolicy | None:
        """The tlog-policy that decides the quorum, if one was given."""
        return self._policy

    @property
    def quorum(self) -> int:
        """How many witnesses must cosign a checkpoint (0 when none is configured; with
        a policy, the fewest that can meet its quorum)."""
        return self._quorum

    def submit(self, note: str | bytes) -> Submission:
        """Verify a cosigned checkpoint note and keep its cosignature lines.

        Lines by the log itself are checked and dropped; every other line must be a
        valid cosignature by a configured witness. Where one witness signed twice the
        newest timestamp is kept.

        Raises:
            BadRequest: malformed note, a checkpoint for another origin, or no
                cosignature in it.
            Denied: a line by a key that is not a configured witness, or a signature
                (the log's or a witness's) that does not verify.
            NotFound: this log published no checkpoint with that text (size and root).
        """
        if isinstance(note, bytes) and len(note) > MAX_SUBMISSION_BYTES:
            raise BadRequest(f"a cosigned checkpoint is at most {MAX_SUBMISSION_BYTES} bytes")
        body = _decode_note(note)
        if len(body.encode()) > MAX_SUBMISSION_BYTES:
            raise BadRequest(f"a cosigned checkpoint is at most {MAX_SUBMISSION_BYTES} bytes")
        text, lines = _split(body)
        checkpoint = Checkpoint.parse(text)
        if checkpoint.origin != self._log.origin:
            raise BadRequest(
                f"this is the log {self._log.origin!r}, not {checkpoint.origin[:100]!r}"
            )
        signed = self._signers(lines)
        if all(w is None for _, _, w in signed):
            raise BadRequest("the note carries no witness cosignature")
        published = self._store.checkpoint_at(checkpoint.size)
        if published is None or _split(_decode_note(published))[0] != text:
            raise NotFound(
                f"this log published no checkpoint of size {checkpoint.size} with that root"
            )
        message = text.encode()
        rows: list[CosignatureRow] = []
        for line, blob, witness in signed:
            try:
                if witness is None:
                    self._log_key.verify(message, blob)
                else:
                    witness.verify(message, blob)
            except VerificationError as exc:
                raise Denied(exc.message) from None
            if witness is not None:
                rows.append((witness.vkey, int.from_bytes(blob[:8], "big"), line))
        self._store.add_cosignatures(checkpoint.size, rows)
        names = tuple(dict.fromkeys(self._name_of(vkey) for vkey, _, _ in rows))
        held = {vkey for vkey, _ in self._store.cosignatures(checkpoint.size)}
        return Submission(checkpoint, names, len(held & set(self.witnesses)), self._quorum)

    def _signers(
        self, lines: list[tuple[str, str, int, bytes]]
    ) -> list[tuple[str, bytes, CosignatureVerifier | None]]:
        """Each line with its witness (None: the log's own signature), or Denied."""
        signed: list[tuple[str, bytes, CosignatureVerifier | None]] = []
        for n, (line, name, key_id, blob) in enumerate(lines, 1):
            if (name, key_id) == (self._log_key.name, self._log_key.key_id):
                signed.append((line, blob, None))
                continue
            witness = self._witnesses.get((name, key_id))
            if witness is None:
                raise Denied(
                    f"signature line {n} is by {name}+{key_id:08x}, "
                    "not a witness this log collects cosignatures from"
                )
            signed.append((line, blob, witness))
        return signed

    def checkpoint(self, *, sign: bool = True) -> str:
        """The log's latest checkpoint (published now if the log grew, unless not to
        *sign*: then the newest stored), with its cosignatures.

        Raises:
            NotFound: not to *sign*, and the log has no checkpoint yet.
        """
        note = self._log.checkpoint() if sign else self._log.latest_checkpoint()
        if note is None:
            raise NotFound("the log has no checkpoint yet")
        return self._with_cosignatures(note)

    def cosigned_checkpoint(self) -> str:
        """The newest published checkpoint cosigned by a quorum of the witnesses.

        Raises:
            NotFound: no witness is configured, or no checkpoint has a quorum yet.
        """
        if not self._witnesses:
            raise NotFound("this log has no witnesses configured")
        size = self._store.latest_cosigned_size(self.witnesses, self._quorum)
        note = None if size is None else self._store.checkpoint_at(size)
        if note is None:
            raise NotFound(
                f"no checkpoint is cosigned by {self._quorum} of the "
                f"{len(self._witnesses)} witnesses yet"
            )
        cosigned = self._with_cosignatures(note)
        if self._policy is not None:
            # The newest checkpoint with enough lines; with nested groups those lines may
            # still miss the rule, and then no older one is searched for.
            try:
                self._policy.check(cosigned, self._log_key)
            except VerificationError as exc:
                raise NotFound(f"no checkpoint meets the witness policy: {exc.message}") from None
        return cosigned

    def _with_cosignatures(self, note: str) -> str:
        size = Checkpoint.parse(_split(note)[0]).size
        known = set(self.witnesses)
        lines = [line for vkey, line in self._store.cosignatures(size) if vkey in known]
        return note + "".join(line + "\n" for line in lines)

    def _name_of(self, vkey: str) -> str:
        return next(v.name for v in self._witnesses.values() if v.vkey == vkey)


def _split(body: str) -> tuple[str, list[tuple[str, str, int, bytes]]]:
    """A note's text and its signature lines: the log's own and the witnesses'."""
    return split_signed_note(body, MAX_WITNESSES + 4)
