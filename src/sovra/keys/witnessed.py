"""Witnessed release: a custodian releases only against a decision its own witnesses saw.

A custodian holds the log's public key, so a receipt proves the log signed an allow; but
whoever holds the log key (the operator) can sign one that was never decided. With a
:class:`ReleasePolicy` the custodian also requires, before it releases anything, that
the decision entry is included in a checkpoint that

- the log signed (the log key the custodian already holds, under the receipt's origin),
- a quorum of *its own* configured witnesses cosigned (C2SP tlog-cosignature; the quorum
  rule is a C2SP tlog-policy, k of n or groups of groups), each key read from the
  custodian's configuration, never from the caller, and
- is fresh: cosignatures at most ``max_age_ms`` old meet the quorum by themselves.

The gateway hands the custodian the entry's C2SP tlog-proof (https://c2sp.org/tlog-proof:
the index, the RFC 9162 inclusion proof and the cosigned checkpoint) beside the entry and
its receipt (:attr:`~sovra.model.ReleaseAuthorization.proof`). The custodian recomputes
the entry's path to the checkpoint's root itself. A forged allow is then either not in
any checkpoint the witnesses cosigned (refused here), or it is, and every witness holds
a checkpoint that commits to it, public before any key leaves.

Each check raises :class:`~sovra.errors.VerificationError` with what failed; the
custodian turns it into its refusal (:class:`~sovra.errors.Denied`) and journals it.
A checkpoint whose signatures verified is remembered (by its exact bytes), so the
decisions of one log batch, which share a checkpoint, cost one set of signature checks;
the age is checked on every call.

The custodian's policy lives beside its key file, ``<J>.witnesses`` (JSON), its witnesses
either as a list and a k, or as a C2SP tlog-policy (``witness``, ``group``, ``quorum``
lines)::

    {"type": "sovra-witnessed-release", "format": 1,
     "witnesses": ["<name>+<key id>+<base64(0x04 || key)>", ...], "quorum": 2,
     "max_checkpoint_age_s": 60}

    {"type": "sovra-witnessed-release", "format": 1,
     "policy": "witness a <vkey>\\nwitness b <vkey>\\n...group g 2 a b c\\nquorum g\\n",
     "max_checkpoint_age_s": 60}
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra.errors import BadRequest, ConfigError, VerificationError
from sovra.keys.files import StrPath, no_duplicate_fields, write_secret
from sovra.model import LogReceipt
from sovra_verify._merkle import root_from_inclusion
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import NoteVerifier, _decode_note, split_signed_note
from sovra_verify.policy import PolicyWitness, WitnessPolicy
from sovra_verify.proof import TlogProof, _parse_head, _split_proof

__all__ = [
    "MAX_PROOF_BYTES",
    "POLICY_TYPE",
    "ReleasePolicy",
    "WitnessedCheckpoint",
    "WitnessedRelease",
    "policy_path",
]

POLICY_TYPE = "sovra-witnessed-release"
MAX_PROOF_BYTES = 64 * 1024
"""The most a custodian takes: a tlog-proof with 63 hashes and a checkpoint cosigned by 32
witnesses is far smaller."""
MAX_WITNESSES = 32
_MAX_POLICY_BYTES = 64 * 1024
_CACHE_SIZE = 256
_MAX_AGE_S = 7 * 24 * 3600


def policy_path(key_path: StrPath) -> Path:
    """Where the witness policy of the custodian whose key file is *key_path* lives."""
    path = Path(key_path)
    return path.with_name(path.stem + ".witnesses")


@dataclass(frozen=True, slots=True)
class ReleasePolicy:
    """Whose cosignatures a custodian requires before it releases a key, and how fresh.

    *witnesses* is a C2SP tlog-policy: its witnesses and its quorum rule (its ``log``
    lines, if any, must name the custodian's log key).
    """

    witnesses: WitnessPolicy
    max_age_ms: int

    def __post_init__(self) -> None:
        count = len(self.witnesses.witnesses)
        if self.witnesses.minimum() < 1:
            raise ConfigError("a witness policy for release needs a quorum, not 'none'")
        if count > MAX_WITNESSES:
            raise ConfigError(f"witnessed release takes at most {MAX_WITNESSES} witnesses")
        age = self.max_age_ms
        if isinstance(age, bool) or not isinstance(age, int) or not 0 < age <= _MAX_AGE_S * 1000:
            raise ConfigError(f"the checkpoint age limit must be 1 ms..{_MAX_AGE_S} s, not {age!r}")

    @classmethod
    def of(cls, vkeys: Sequence[str], quorum: int, max_age_s: float) -> ReleasePolicy:
        """*quorum* of the witnesses *vkeys* (type 0x04), cosigned at most *max_age_s* ago.

        Raises:
            ConfigError: a malformed key, two witnesses with one key, an impossible quorum
                or age.
        """
        if not vkeys:
            raise ConfigError(f"witnessed release needs 1..{MAX_WITNESSES} witnesses, got 0")
        try:
            policy = WitnessPolicy.k_of_n(list(vkeys), quorum)
        except BadRequest as exc:
            raise ConfigError(f"witness policy: {exc.message}") from None
        return cls(policy, _age_ms(max_age_s))

    @classmethod
    def from_json(cls, data: bytes) -> ReleasePolicy:
        """Parse a policy document (unknown, missing or repeated fields are refused).

        Raises:
            ConfigError: not such a document, or a value :meth:`of` or the tlog-policy
                parser refuses.
        """
        if len(data) > _MAX_POLICY_BYTES:
            raise ConfigError(f"a witness policy is at most {_MAX_POLICY_BYTES} bytes")
        try:
            obj = json.loads(data, object_pairs_hook=no_duplicate_fields)
        except ValueError as exc:
            raise ConfigError(f"the witness policy is not JSON: {exc}") from None
        base = {"type", "format", "max_checkpoint_age_s"}
        listed, text = base | {"witnesses", "quorum"}, base | {"policy"}
        if not isinstance(obj, dict) or set(obj) not in (listed, text):
            raise ConfigError(f"a witness policy has the fields {sorted(listed)} or {sorted(text)}")
        if obj["type"] != POLICY_TYPE or obj["format"] != 1:
            raise ConfigError(f"not a {POLICY_TYPE} document of format 1")
        if "policy" not in obj:
            vkeys = obj["witnesses"]
            if not isinstance(vkeys, list) or not all(isinstance(v, str) for v in vkeys):
                raise ConfigError("witnesses must be a list of vkeys")
            return cls.of(vkeys, obj["quorum"], obj["max_checkpoint_age_s"])
        if not isinstance(obj["policy"], str):
            raise ConfigError("policy must be the text of a C2SP tlog-policy")
        try:
            policy = WitnessPolicy.parse(obj["policy"])
        except BadRequest as exc:
            raise ConfigError(f"tlog-policy: {exc.message}") from None
        return cls(policy, _age_ms(obj["max_checkpoint_age_s"]))

    def to_json(self) -> bytes:
        """The policy document :meth:`from_json` reads (its witnesses as a tlog-policy)."""
        return json.dumps(
            {
                "type": POLICY_TYPE,
                "format": 1,
                "policy": self.witnesses.to_text(),
                "max_checkpoint_age_s": self.max_age_ms / 1000,
            },
            indent=1,
        ).encode()

    def save(self, key_path: StrPath, *, overwrite: bool = False) -> Path:
        """Write the policy beside the custodian key file *key_path*; its path.

        Atomically and 0600, as the custodian's other files; written by root, the file
        is given to the key file's owner (the custodian's own user, which reads it).

        Raises:
            ConfigError: the file exists and *overwrite* is False, or it cannot be
                written or given to the key file's owner.
        """
        path = policy_path(key_path)
        if not overwrite and os.path.lexists(path):
            raise ConfigError(f"{path} already exists; give --force to replace it")
        write_secret(path, self.to_json() + b"\n", overwrite=overwrite)
        if os.geteuid() == 0:
            try:
                st = os.lstat(key_path)
                os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
            except OSError as exc:
                raise ConfigError(
                    f"cannot give {path} to the owner of {key_path}: {exc.strerror}"
                ) from None
        return path

    def report(self) -> dict[str, object]:
        """What a custodian with this policy requires, as JSON-ready fields."""
        rules = self.witnesses
        return {
            "witnesses": [
                {"name": w.name, "vkey": w.verifier.vkey, **({"url": w.url} if w.url else {})}
                for w in rules.witnesses
            ],
            "quorum": rules.describe(),
            "minimum": rules.minimum(),
            "max_checkpoint_age_s": self.max_age_ms / 1000,
            "logs": [log.vkey for log in rules.logs],
        }

    @classmethod
    def load(cls, key_path: StrPath) -> ReleasePolicy | None:
        """The policy beside the custodian key file *key_path*, or None if it has none.

        Raises:
            ConfigError: the file exists but cannot be read or is not a valid policy.
        """
        path = policy_path(key_path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the witness policy {path}: {exc.strerror}") from None
        try:
            return cls.from_json(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}") from None


def _age_ms(seconds: object) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigError(f"the checkpoint age limit must be seconds, not {seconds!r}")
    return round(seconds * 1000)


@dataclass(slots=True)
class _Signed:
    """What a checkpoint note's signatures proved: its checkpoint, the configured
    witnesses whose cosignatures verified (name -> timestamp in seconds), and why any
    other line did not count."""

    checkpoint: Checkpoint
    cosigned: dict[str, int]
    problems: tuple[str, ...]
    complete: bool = True
    """False when cosignatures were left unchecked once a fresh quorum had verified."""
    fresh_between: tuple[int, int] = (1, 0)
    """The clock times (ms) between which a set of cosignatures found fresh and meeting
    the quorum all stay fresh (empty until one is found): a quorum only grows with more
    witnesses, so in that span the age check holds without being worked out again."""


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    """A checkpoint that meets a custodian's policy (:meth:`WitnessedRelease.check_checkpoint`).

    Attributes:
        checkpoint: the checkpoint the log key signed.
        cosigned: the policy names of its witnesses whose cosignatures verified, and
            each one's cosignature time (POSIX seconds).
        problems: why any other signature line did not count.
    """

    checkpoint: Checkpoint
    cosigned: dict[str, int]
    problems: tuple[str, ...]


class WitnessedRelease:
    """The custodian's check of a tlog-proof under its :class:`ReleasePolicy`.

    Safe to share between threads.
    """

    def __init__(self, policy: ReleasePolicy, log_key: Ed25519PublicKey) -> None:
        """Check proofs against *policy*, the log signing with *log_key*.

        Raises:
            ConfigError: the policy names logs, and *log_key* is not one of them.
        """
        logs = policy.witnesses.logs
        raw = log_key.public_bytes_raw()
        if logs and all(log.public_key.public_bytes_raw() != raw for log in logs):
            raise ConfigError("the witness policy names logs, and this custodian's log is not one")
        self._policy = policy
        self._rules = policy.witnesses
        self._log_key = log_key
        self._witnesses: dict[tuple[str, int], PolicyWitness] = {
            (w.verifier.name, w.verifier.key_id): w for w in self._rules.witnesses
        }
        self._key_names = {w.name: w.verifier.name for w in self._rules.witnesses}
        self._seen: OrderedDict[tuple[str, str], _Signed] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def policy(self) -> ReleasePolicy:
        """The policy checked."""
        return self._policy

    def check(self, proof_text: str, receipt: LogReceipt, now_ms: int) -> None:
        """Check that the entry *receipt* covers is in a fresh checkpoint a quorum cosigned.

        The caller MUST have checked that *receipt* covers the presented entry (its leaf
        hash) and is the log's.

        Raises:
            VerificationError: no proof, a malformed one, a proof for another index, a
                checkpoint of another log or not signed by the log key, its configured
                witnesses' cosignatures short of the quorum, or too old to meet it, or an
                inclusion proof that does not lead to its root.
        """
        if not proof_text:
            raise VerificationError(
                "the allow came without a witnessed checkpoint, and this custodian releases "
                f"only against one cosigned by {self._quorum_words()}"
            )
        if len(proof_text) > MAX_PROOF_BYTES:
            raise VerificationError(f"the inclusion proof is over {MAX_PROOF_BYTES} bytes")
        origin = receipt.origin
        try:
            head, note = _split_proof(proof_text)
            signed = self._remembered(note, origin)
            if signed is None:  # the whole proof, its checkpoint note too
                proof = TlogProof.parse(proof_text)
                index, path = proof.index, proof.proof
            else:  # a note that was parsed and checked before: only the head is new
                index, path, _ = _parse_head(head)
        except BadRequest as exc:
            raise VerificationError(f"the inclusion proof is malformed: {exc.message}") from None
        if index != receipt.index:
            raise VerificationError(
                f"the inclusion proof is for entry {index}, not the logged allow at {receipt.index}"
            )
        if signed is None:
            signed = self._verified(note, origin, now_ms)
        try:
            self._check_quorum(signed, now_ms)
        except VerificationError:
            if signed.complete:
                raise
            # Remembered with a quorum fresh then, stale now: every line, for the reason.
            signed = self._verify_note(note, origin, now_ms, every=True)
            self._check_quorum(signed, now_ms)
        cp = signed.checkpoint
        try:
            root = root_from_inclusion(receipt.leaf_hash, index, cp.size, path)
        except VerificationError as exc:
            raise VerificationError(f"the inclusion proof does not fit: {exc.message}") from None
        if root != cp.root_hash:
            raise VerificationError(
                f"the inclusion proof does not lead from entry {index} to the root of "
                f"the witnessed checkpoint at size {cp.size} (a proof for another entry?)"
            )

    def check_checkpoint(self, note: str, now_ms: int) -> WitnessedCheckpoint:
        """Check a checkpoint note as :meth:`check` checks a proof's, every line verified.

        Raises:
            VerificationError: as :meth:`check`, for the checkpoint: malformed, not signed
                by the log key, its witnesses short of the quorum, or too old to meet it.
        """
        origin = note.split("\n", 1)[0] if isinstance(note, str) else ""
        signed = self._verify_note(note, origin, now_ms, every=True)
        self._check_quorum(signed, now_ms)
        return WitnessedCheckpoint(signed.checkpoint, dict(signed.cosigned), signed.problems)

    def _quorum_words(self) -> str:
        rules = self._rules
        return f"at least {rules.minimum()} of its {len(rules.witnesses)} witnesses"

    def _names(self, cosigned: Sequence[str]) -> str:
        return ", ".join(self._key_names[n] for n in cosigned) or "none"

    def _check_quorum(self, signed: _Signed, now_ms: int) -> None:
        start, end = signed.fresh_between
        if start <= now_ms <= end:
            return
        limit = self._policy.max_age_ms
        cp = signed.checkpoint
        if not self._rules.satisfied_by(signed.cosigned):
            why = "; ".join(signed.problems) or "no other signature line"
            raise VerificationError(
                f"the checkpoint at size {cp.size} is cosigned by {len(signed.cosigned)} of "
                f"its witnesses ({self._names(list(signed.cosigned))}), short of its quorum, "
                f"{self._quorum_words()} ({why})"
            )
        # A cosignature dated further from the clock than the limit, either way, does not
        # count: an old checkpoint kept back, a witness's clock, or a forgery.
        ages = {n: now_ms - ts * 1000 for n, ts in signed.cosigned.items()}
        fresh = [n for n, age in ages.items() if -limit <= age <= limit]
        if not self._rules.satisfied_by(fresh):
            raise VerificationError(
                f"the checkpoint at size {cp.size} is stale: {len(fresh)} of its "
                f"{len(ages)} witness cosignatures are at most {limit} ms old, short of its "
                f"quorum, {self._quorum_words()} (the oldest is {max(ages.values())} ms old)"
            )
        stamps = [signed.cosigned[n] * 1000 for n in fresh]
        signed.fresh_between = (max(stamps) - limit, min(stamps) + limit)

    def _remembered(self, note: str, origin: str) -> _Signed | None:
        """What the signatures of *note* proved when it was last verified, if remembered."""
        key = (note, origin)
        with self._lock:
            hit = self._seen.get(key)
            if hit is not None:
                self._seen.move_to_end(key)
            return hit

    def _verified(self, note: str, origin: str, now_ms: int) -> _Signed:
        """*note*'s signatures verified now, and remembered by its exact bytes."""
        signed = self._verify_note(note, origin, now_ms)
        with self._lock:
            self._seen[(note, origin)] = signed
            if len(self._seen) > _CACHE_SIZE:
                self._seen.popitem(last=False)
        return signed

    def _verify_note(self, note: str, origin: str, now_ms: int, *, every: bool = False) -> _Signed:
        """The signature lines of *note*: the log's, and the witnesses' until those that
        verified fresh at *now_ms* meet the quorum (with *every*, all of them). Signature
        checks are deterministic, so the result for the same bytes may be reused."""
        limit = self._policy.max_age_ms
        fresh: list[str] = []
        complete = True
        try:
            body = _decode_note(note)
            text, lines = split_signed_note(body, MAX_WITNESSES + 4)
            checkpoint = Checkpoint.parse(text)
            log = NoteVerifier(origin, self._log_key)
        except BadRequest as exc:
            raise VerificationError(f"the checkpoint is malformed: {exc.message}") from None
        if checkpoint.origin != origin:
            raise VerificationError(
                f"the checkpoint is of the log {checkpoint.origin[:100]!r}, not {origin!r}"
            )
        message = text.encode()
        log_signed = False
        cosigned: dict[str, int] = {}
        problems: list[str] = []
        for n, (_, name, key_id, blob) in enumerate(lines, 1):
            if (name, key_id) == (log.name, log.key_id):
                try:
                    log.verify(message, blob)
                except VerificationError:
                    raise VerificationError(
                        "the checkpoint's signature is not the log key's"
                    ) from None
                log_signed = True
                continue
            witness = self._witnesses.get((name, key_id))
            if witness is None:
                problems.append(f"line {n} is by {name}+{key_id:08x}, not a witness it knows")
                continue
            if not every and self._rules.satisfied_by(fresh):
                complete = False  # enough: each check is an Ed25519 verification
                continue
            try:
                witness.verifier.verify(message, blob)
            except VerificationError:
                problems.append(
                    f"the cosignature by {name} does not verify over this checkpoint "
                    "(made for another?)"
                )
                continue
            timestamp = int.from_bytes(blob[:8], "big")
            if abs(now_ms - timestamp * 1000) <= limit:
                fresh.append(witness.name)
            cosigned[witness.name] = max(timestamp, cosigned.get(witness.name, 0))
        if not log_signed:
            raise VerificationError("the checkpoint is not signed by the log key")
        return _Signed(checkpoint, cosigned, tuple(problems), complete)
