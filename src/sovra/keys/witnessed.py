"""Witnessed release: a custodian releases only against a decision its own witnesses saw.

A custodian holds the log's public key, so a receipt proves the log signed an allow; but
whoever holds the log key (the operator) can sign one that was never decided. With a
:class:`WitnessPolicy` the custodian also requires, before it releases anything, that
the decision entry is included in a checkpoint that

- the log signed (the log key the custodian already holds, under the receipt's origin),
- at least ``quorum`` of *its own* configured witnesses cosigned (C2SP tlog-cosignature),
  each key read from the custodian's configuration, never from the caller, and
- is fresh: the quorum's cosignatures are at most ``max_age_ms`` old.

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

The custodian's policy lives beside its key file, ``<J>.witnesses`` (JSON)::

    {"type": "sovra-witnessed-release", "format": 1,
     "witnesses": ["<name>+<key id>+<base64(0x04 || key)>", ...],
     "quorum": 2, "max_checkpoint_age_s": 60}
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra.errors import BadRequest, ConfigError, VerificationError
from sovra.keys.files import StrPath, no_duplicate_fields
from sovra.model import LogReceipt
from sovra_verify._merkle import root_from_inclusion
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureVerifier
from sovra_verify.note import NoteVerifier, _decode_note, split_signed_note

__all__ = [
    "MAX_PROOF_BYTES",
    "POLICY_TYPE",
    "InclusionProof",
    "WitnessPolicy",
    "WitnessedRelease",
    "format_tlog_proof",
    "parse_tlog_proof",
    "policy_path",
]

POLICY_TYPE = "sovra-witnessed-release"
MAX_PROOF_BYTES = 64 * 1024
"""A tlog-proof with 64 hashes and a checkpoint cosigned by 32 witnesses is far smaller."""
MAX_WITNESSES = 32
_HEADER = "c2sp.org/tlog-proof@v1"
_MAX_HASHES = 64
# 43 characters carry 258 bits: the last one's low two bits must be zero, then the pad.
_HASH_LINE = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
_MAX_POLICY_BYTES = 64 * 1024
_CACHE_SIZE = 256
_MAX_AGE_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """A parsed C2SP tlog-proof: entry *index*, its inclusion *hashes*, the signed note."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str


def format_tlog_proof(index: int, hashes: Sequence[bytes], checkpoint: str) -> str:
    """The C2SP tlog-proof text of entry *index* (no ``extra`` line)."""
    lines = [_HEADER, f"index {index}", *(base64.b64encode(h).decode() for h in hashes)]
    return "\n".join(lines) + "\n\n" + checkpoint


def parse_tlog_proof(text: str) -> InclusionProof:
    """Parse a C2SP tlog-proof; an ``extra`` line is allowed and ignored (unauthenticated).

    Raises:
        BadRequest: over :data:`MAX_PROOF_BYTES`, not the v1 header, no index, a hash
            that is not 32 bytes of canonical base64, over 64 hashes, or no checkpoint.
    """
    if not isinstance(text, str) or len(text) > MAX_PROOF_BYTES:
        raise BadRequest(f"a tlog-proof is text of at most {MAX_PROOF_BYTES} bytes")
    head, sep, checkpoint = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != _HEADER:
        raise BadRequest(f"a tlog-proof starts with {_HEADER!r} and has a blank line")
    rest = lines[1:]
    if rest and rest[0].startswith("extra "):
        rest = rest[1:]
    if not rest or not rest[0].startswith("index "):
        raise BadRequest("a tlog-proof names its entry's index")
    digits = rest[0].removeprefix("index ")
    if (
        not digits.isascii()
        or not digits.isdigit()
        or len(digits) > 19
        or digits != str(int(digits))
    ):
        raise BadRequest(f"tlog-proof index {digits[:30]!r} is not a decimal number")
    if len(rest) - 1 > _MAX_HASHES:
        raise BadRequest(f"a tlog-proof holds at most {_MAX_HASHES} hashes")
    lines = rest[1:]
    for n, line in enumerate(lines):
        # The canonical spelling of 32 bytes only (a proof per released key: this is on
        # the hot path, so a pattern rather than a decode and re-encode per line).
        if not _HASH_LINE.fullmatch(line):
            raise BadRequest(f"tlog-proof hash {n} is not 32 bytes of base64")
    hashes = [binascii.a2b_base64(line) for line in lines]
    if not checkpoint:
        raise BadRequest("a tlog-proof ends with its checkpoint")
    return InclusionProof(int(digits), tuple(hashes), checkpoint)


def policy_path(key_path: StrPath) -> Path:
    """Where the witness policy of the custodian whose key file is *key_path* lives."""
    path = Path(key_path)
    return path.with_name(path.stem + ".witnesses")


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """Whose cosignatures a custodian requires before it releases a key, how many, how fresh."""

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int
    max_age_ms: int

    def __post_init__(self) -> None:
        count = len(self.witnesses)
        if not 0 < count <= MAX_WITNESSES:
            raise ConfigError(f"witnessed release needs 1..{MAX_WITNESSES} witnesses, got {count}")
        if len({w.name for w in self.witnesses}) != count:
            raise ConfigError("two witness keys share a name")
        q = self.quorum
        if isinstance(q, bool) or not isinstance(q, int) or not 0 < q <= count:
            raise ConfigError(f"a quorum of {q!r} out of {count} witnesses is not possible")
        age = self.max_age_ms
        if isinstance(age, bool) or not isinstance(age, int) or not 0 < age <= _MAX_AGE_S * 1000:
            raise ConfigError(f"the checkpoint age limit must be 1 ms..{_MAX_AGE_S} s, not {age!r}")

    @classmethod
    def of(cls, vkeys: Sequence[str], quorum: int, max_age_s: float) -> WitnessPolicy:
        """A policy from witness vkeys (type 0x04), a quorum and an age limit in seconds.

        Raises:
            ConfigError: a malformed key, two keys of one name, an impossible quorum or age.
        """
        try:
            witnesses = tuple(CosignatureVerifier.from_vkey(v) for v in vkeys)
        except BadRequest as exc:
            raise ConfigError(f"witness key: {exc.message}") from None
        if isinstance(max_age_s, bool) or not isinstance(max_age_s, int | float):
            raise ConfigError(f"the checkpoint age limit must be seconds, not {max_age_s!r}")
        return cls(witnesses, quorum, round(max_age_s * 1000))

    @classmethod
    def from_json(cls, data: bytes) -> WitnessPolicy:
        """Parse a policy document (unknown, missing or repeated fields are refused).

        Raises:
            ConfigError: not such a document, or a value :meth:`of` refuses.
        """
        if len(data) > _MAX_POLICY_BYTES:
            raise ConfigError(f"a witness policy is at most {_MAX_POLICY_BYTES} bytes")
        try:
            obj = json.loads(data, object_pairs_hook=no_duplicate_fields)
        except ValueError as exc:
            raise ConfigError(f"the witness policy is not JSON: {exc}") from None
        fields = {"type", "format", "witnesses", "quorum", "max_checkpoint_age_s"}
        if not isinstance(obj, dict) or set(obj) != fields:
            raise ConfigError(f"a witness policy has exactly the fields {sorted(fields)}")
        if obj["type"] != POLICY_TYPE or obj["format"] != 1:
            raise ConfigError(f"not a {POLICY_TYPE} document of format 1")
        vkeys = obj["witnesses"]
        if not isinstance(vkeys, list) or not all(isinstance(v, str) for v in vkeys):
            raise ConfigError("witnesses must be a list of vkeys")
        return cls.of(vkeys, obj["quorum"], obj["max_checkpoint_age_s"])

    def to_json(self) -> bytes:
        """The policy document :meth:`from_json` reads."""
        return json.dumps(
            {
                "type": POLICY_TYPE,
                "format": 1,
                "witnesses": [w.vkey for w in self.witnesses],
                "quorum": self.quorum,
                "max_checkpoint_age_s": self.max_age_ms / 1000,
            },
            indent=1,
        ).encode()

    @classmethod
    def load(cls, key_path: StrPath) -> WitnessPolicy | None:
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


@dataclass(frozen=True, slots=True)
class _Signed:
    """What a checkpoint note's signatures proved: its checkpoint, the configured
    witnesses whose cosignatures verified (name -> timestamp in seconds), and why any
    other line did not count."""

    checkpoint: Checkpoint
    cosigned: dict[str, int]
    problems: tuple[str, ...]
    complete: bool = True
    """False when cosignatures were left unchecked once a fresh quorum had verified."""


class WitnessedRelease:
    """The custodian's check of a tlog-proof under its :class:`WitnessPolicy`.

    Safe to share between threads.
    """

    def __init__(self, policy: WitnessPolicy, log_key: Ed25519PublicKey) -> None:
        self._policy = policy
        self._log_key = log_key
        self._witnesses = {(w.name, w.key_id): w for w in policy.witnesses}
        self._seen: OrderedDict[tuple[str, str], _Signed] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def policy(self) -> WitnessPolicy:
        """The policy checked."""
        return self._policy

    def check(self, proof_text: str, receipt: LogReceipt, now_ms: int) -> None:
        """Check that the entry *receipt* covers is in a fresh checkpoint a quorum cosigned.

        The caller MUST have checked that *receipt* covers the presented entry (its leaf
        hash) and is the log's.

        Raises:
            VerificationError: no proof, a malformed one, a proof for another index, a
                checkpoint of another log or not signed by the log key, fewer than the
                quorum of configured witnesses cosigned it, their cosignatures are older
                than the limit, or the inclusion proof does not lead to its root.
        """
        if not proof_text:
            raise VerificationError(
                "the allow came without a witnessed checkpoint, and this custodian releases "
                f"only against one cosigned by {self._quorum_words()}"
            )
        try:
            proof = parse_tlog_proof(proof_text)
        except BadRequest as exc:
            raise VerificationError(f"the inclusion proof is malformed: {exc.message}") from None
        if proof.index != receipt.index:
            raise VerificationError(
                f"the inclusion proof is for entry {proof.index}, not the logged allow at "
                f"{receipt.index}"
            )
        signed = self._signed(proof.checkpoint, receipt.origin, now_ms)
        try:
            self._check_quorum(signed, now_ms)
        except VerificationError:
            if signed.complete:
                raise
            # Remembered with a quorum fresh then, stale now: every line, for the reason.
            signed = self._verify_note(proof.checkpoint, receipt.origin, now_ms, every=True)
            self._check_quorum(signed, now_ms)
        cp = signed.checkpoint
        try:
            root = root_from_inclusion(receipt.leaf_hash, proof.index, cp.size, proof.hashes)
        except VerificationError as exc:
            raise VerificationError(f"the inclusion proof does not fit: {exc.message}") from None
        if root != cp.root_hash:
            raise VerificationError(
                f"the inclusion proof does not lead from entry {proof.index} to the root of "
                f"the witnessed checkpoint at size {cp.size} (a proof for another entry?)"
            )

    def _quorum_words(self) -> str:
        return f"{self._policy.quorum} of its {len(self._policy.witnesses)} witnesses"

    def _check_quorum(self, signed: _Signed, now_ms: int) -> None:
        quorum, limit = self._policy.quorum, self._policy.max_age_ms
        cp = signed.checkpoint
        if len(signed.cosigned) < quorum:
            why = "; ".join(signed.problems) or "no other signature line"
            raise VerificationError(
                f"the checkpoint at size {cp.size} is cosigned by {len(signed.cosigned)} of "
                f"the {quorum} witnesses this custodian requires ({why})"
            )
        # Ages of the quorum's freshest cosignatures; a timestamp ahead of the clock by
        # more than the limit does not count either (a witness's clock, or a forgery).
        ages = sorted(now_ms - ts * 1000 for ts in signed.cosigned.values())
        fresh = [a for a in ages if -limit <= a <= limit]
        if len(fresh) < quorum:
            raise VerificationError(
                f"the checkpoint at size {cp.size} is stale: {len(fresh)} of its "
                f"{len(ages)} witness cosignatures are at most {limit} ms old, and this "
                f"custodian requires {quorum} (the oldest is {ages[-1]} ms old)"
            )

    def _signed(self, note: str, origin: str, now_ms: int) -> _Signed:
        key = (note, origin)
        with self._lock:
            hit = self._seen.get(key)
            if hit is not None:
                self._seen.move_to_end(key)
                return hit
        signed = self._verify_note(note, origin, now_ms)
        with self._lock:
            self._seen[key] = signed
            if len(self._seen) > _CACHE_SIZE:
                self._seen.popitem(last=False)
        return signed

    def _verify_note(self, note: str, origin: str, now_ms: int, *, every: bool = False) -> _Signed:
        """The signature lines of *note*: the log's, and the witnesses' until a quorum of
        them verified fresh at *now_ms* (with *every*, all of them). Signature checks are
        deterministic, so the result for the same bytes may be reused."""
        quorum, limit = self._policy.quorum, self._policy.max_age_ms
        fresh = 0
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
            if fresh >= quorum and not every:
                complete = False  # enough: each check is an Ed25519 verification
                continue
            try:
                witness.verify(message, blob)
            except VerificationError:
                problems.append(
                    f"the cosignature by {name} does not verify over this checkpoint "
                    "(made for another?)"
                )
                continue
            timestamp = int.from_bytes(blob[:8], "big")
            if name not in cosigned and abs(now_ms - timestamp * 1000) <= limit:
                fresh += 1
            cosigned[name] = max(timestamp, cosigned.get(name, 0))
        if not log_signed:
            raise VerificationError("the checkpoint is not signed by the log key")
        return _Signed(checkpoint, cosigned, tuple(problems), complete)
