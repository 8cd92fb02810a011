"""Proofs that travel: C2SP tlog-proof (https://c2sp.org/tlog-proof).

A tlog-proof is one text file that a verifier checks offline, holding everything but
the keys: the entry's index, its RFC 9162 inclusion proof, and the log's checkpoint with
the witnesses' cosignatures::

    c2sp.org/tlog-proof@v1
    extra <base64 of the logged entry>
    index 1
    KhWNiv1I4/iMtBld/bKp5IF9lfpX/TREDZP5quXE+Cs=
    THnQ1i989cqIdBVfLTuHXyYl2iuzq8hrvWgz8lupDlE=

    example.sovra.dev/log
    3
    OF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=

    — example.sovra.dev/log bvyLJfMp...
    — witness.example/w1 5ohiYwAA...

sovra puts the logged entry itself (a receipt's, a decision's or a key release's
canonical JSON) in the ``extra`` line, so the proof needs nothing else to be checked.
The extra data is not trusted as such: :meth:`TlogProof.verify` hashes it and proves
that hash into the signed root, so a changed entry fails as surely as a changed proof.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sovra_verify._merkle import leaf_hash, verify_inclusion
from sovra_verify.errors import BadRequest, VerificationError
from sovra_verify.note import MAX_NOTE_BYTES, NoteVerifier, _b64decode, _decode_note
from sovra_verify.policy import MAX_POLICY_BYTES, PolicyCheck, WitnessPolicy

__all__ = [
    "MAX_PROOF_BYTES",
    "PROOF_HEADER",
    "ProofCheck",
    "TlogProof",
    "check_proof_file",
    "proof_report",
    "trust_policy",
]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_BYTES = MAX_NOTE_BYTES + 128 * 1024
_MAX_PROOF_HASHES = 63
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,19})")
_HASH_B64_LEN = 44
# 32 bytes: 42 characters, one whose last two bits are zero, and one "=" of padding.
_HASH_B64 = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


def _proof_text(text: object) -> str:
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_PROOF_BYTES:
            raise BadRequest(f"a tlog-proof is at most {MAX_PROOF_BYTES} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("a tlog-proof must be UTF-8 text") from None
    if not isinstance(text, str):
        raise BadRequest("a tlog-proof must be text")
    if len(text) > MAX_PROOF_BYTES:
        raise BadRequest(f"a tlog-proof is at most {MAX_PROOF_BYTES} bytes")
    return text


def _write_proof(
    index: int, proof: Sequence[bytes], checkpoint: str, extra: bytes | None = None
) -> str:
    """:meth:`TlogProof.to_text` of these fields, for a caller that made them itself (the
    checkpoint a signed note, each hash 32 bytes) and so skips the type's checks."""
    lines = [PROOF_HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode("ascii"))
    lines.append(f"index {index}")
    lines += [base64.b64encode(h).decode("ascii") for h in proof]
    return "".join(line + "\n" for line in lines) + "\n" + checkpoint


def _split_proof(text: str | bytes) -> tuple[str, str]:
    """A ``.tlog-proof`` file's head (header, extra, index and proof lines) and its
    checkpoint note, unchecked (:class:`TlogProof` checks the note).

    Raises:
        BadRequest: oversized, not UTF-8, or no checkpoint after an empty line.
    """
    head, sep, checkpoint = _proof_text(text).partition("\n\n")
    if not sep or not checkpoint:
        raise BadRequest("a tlog-proof needs an empty line and a checkpoint after its proof")
    return head, checkpoint


def _parse_head(head: str) -> tuple[int, tuple[bytes, ...], bytes | None]:
    """The index, inclusion proof and extra data of a ``.tlog-proof`` file's head.

    Raises:
        BadRequest: a wrong first line, a malformed ``extra`` or ``index`` line, a proof
            line that is not the base64 of 32 bytes, or more than 63 of them.
    """
    lines = head.split("\n")
    if lines[0] != PROOF_HEADER:
        raise BadRequest(f"a tlog-proof starts with the line {PROOF_HEADER!r}")
    at = 1
    extra = None
    if at < len(lines) and lines[at].startswith("extra "):
        extra = _b64decode(lines[at][len("extra ") :], "the extra line")
        at += 1
    if at >= len(lines):
        raise BadRequest("a tlog-proof has no index line")
    match = _INDEX.fullmatch(lines[at])
    if match is None:
        raise BadRequest(f"{lines[at][:40]!r} is not an index line ('index <decimal>')")
    hashes = lines[at + 1 :]
    if len(hashes) > _MAX_PROOF_HASHES:
        raise BadRequest(f"an inclusion proof has at most {_MAX_PROOF_HASHES} hashes")
    proof = []
    for n, line in enumerate(hashes, 1):
        if len(line) != _HASH_B64_LEN:
            raise BadRequest(f"inclusion proof line {n} is not the base64 of 32 bytes")
        # The canonical spelling of 32 bytes, checked by one pattern (a proof per
        # release is parsed on a custodian's hot path); anything else gets the reason.
        proof.append(
            binascii.a2b_base64(line)
            if _HASH_B64.fullmatch(line)
            else _b64decode(line, f"inclusion proof line {n}")
        )
    return int(match.group(1)), tuple(proof), extra


@dataclass(frozen=True, slots=True)
class ProofCheck:
    """What :meth:`TlogProof.verify` established.

    Attributes:
        index: the entry's index in the log.
        entry: the entry the proof carries (its ``extra`` data), or the one given.
        policy: the checkpoint, the log key that signed it, and the witnesses that
            cosigned it with their timestamps.
    """

    index: int
    entry: bytes | None
    policy: PolicyCheck


@dataclass(frozen=True, slots=True)
class TlogProof:
    """An entry's index, its inclusion proof and the (cosigned) checkpoint it proves into.

    Attributes:
        index: the entry's zero-based index.
        proof: the inclusion proof, from the leaf's sibling up to the root's child.
        checkpoint: the signed checkpoint note, verbatim, with any cosignature lines.
        extra: opaque data carried beside the proof (sovra: the logged entry).
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise BadRequest("a tlog-proof index must be an integer")
        if not 0 <= self.index < 1 << 64:
            raise BadRequest(f"a tlog-proof index of {self.index} is outside 0..2**64-1")
        if not isinstance(self.proof, tuple) or len(self.proof) > _MAX_PROOF_HASHES:
            raise BadRequest(f"an inclusion proof is a tuple of at most {_MAX_PROOF_HASHES} hashes")
        if any(not isinstance(h, bytes) or len(h) != 32 for h in self.proof):
            raise BadRequest("every inclusion proof hash must be 32 bytes")
        if self.extra is not None and not isinstance(self.extra, bytes):
            raise BadRequest("tlog-proof extra data must be bytes")
        body = _decode_note(self.checkpoint)
        if not body.endswith("\n") or "\n\n" not in body:
            raise BadRequest("the checkpoint of a tlog-proof must be a signed note")

    def to_text(self) -> str:
        """The proof as a ``.tlog-proof`` file."""
        return _write_proof(self.index, self.proof, self.checkpoint, self.extra)

    @classmethod
    def parse(cls, text: str | bytes) -> TlogProof:
        """Parse a ``.tlog-proof`` file, accepting only its canonical spelling.

        Raises:
            BadRequest: oversized, not UTF-8, a wrong first line, a malformed ``extra``
                or ``index`` line, a proof line that is not the base64 of 32 bytes,
                more than 63 of them, or no checkpoint after the empty line.
        """
        head, checkpoint = _split_proof(text)
        index, proof, extra = _parse_head(head)
        return cls(index, proof, checkpoint, extra)

    def verify(
        self,
        policy: WitnessPolicy,
        *,
        log_vkey: str | NoteVerifier | None = None,
        entry: bytes | None = None,
    ) -> ProofCheck:
        """Check the proof offline: the log's signature, the quorum, the inclusion.

        Args:
            policy: the logs and witnesses the verifier trusts, and the quorum.
            log_vkey: a log key to accept beside the policy's own logs.
            entry: the entry the verifier expects (default: the proof's ``extra``).

        Raises:
            BadRequest: no entry (neither given nor carried), or a malformed checkpoint.
            VerificationError: the checkpoint is not signed by an accepted log key, its
                cosignatures do not meet the quorum, an entry given differs from the
                one carried, the index is not below the checkpoint's size, or the
                inclusion proof does not tie the entry's hash to the signed root.
        """
        data = entry if entry is not None else self.extra
        if data is None:
            raise BadRequest("the proof carries no entry (extra line) and none was given")
        if entry is not None and self.extra is not None and entry != self.extra:
            raise VerificationError("the proof carries another entry than the one given")
        checked = policy.check(self.checkpoint, log_vkey)
        size = checked.checkpoint.size
        if self.index >= size:
            raise VerificationError(
                f"entry {self.index} is not in the checkpoint, which covers {size} entries"
            )
        try:
            verify_inclusion(
                leaf_hash(data), self.index, size, self.proof, checked.checkpoint.root_hash
            )
        except (BadRequest, VerificationError) as exc:
            raise VerificationError(
                f"the inclusion proof of entry {self.index} does not reach the root of the "
                f"checkpoint at size {size}: {exc.message}"
            ) from None
        return ProofCheck(self.index, data, checked)


def _read(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise BadRequest(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise BadRequest(f"{path} is over {limit} bytes, too large for a {what}")
    return data


def trust_policy(
    witnesses: Sequence[str] = (), quorum: int | None = None, policy: Path | None = None
) -> WitnessPolicy:
    """The trust a command line states: ``--policy FILE`` or ``--witness ... --quorum k``.

    Raises:
        BadRequest: both forms at once, an unreadable or malformed policy file, a
            malformed witness key or an impossible quorum.
    """
    if policy is not None:
        if witnesses or quorum is not None:
            raise BadRequest("give either a policy file or --witness/--quorum, not both")
        return WitnessPolicy.parse(_read(policy, MAX_POLICY_BYTES, "witness policy"))
    return WitnessPolicy.k_of_n(list(witnesses), quorum)


def check_proof_file(
    path: Path,
    policy: WitnessPolicy,
    *,
    log_vkey: NoteVerifier | None = None,
    entry: Path | None = None,
) -> ProofCheck:
    """Read the ``.tlog-proof`` at *path* and verify it offline (:meth:`TlogProof.verify`).

    Raises:
        BadRequest: an unreadable or malformed file, or no log key at all.
        VerificationError: as :meth:`TlogProof.verify`.
    """
    proof = TlogProof.parse(_read(path, MAX_PROOF_BYTES, "tlog-proof"))
    expected = None if entry is None else _read(entry, MAX_PROOF_BYTES, "entry")
    return proof.verify(policy, log_vkey=log_vkey, entry=expected)


def proof_report(checked: ProofCheck) -> dict[str, object]:
    """What a verified proof established, as the JSON the two command lines print."""
    entry: object = None
    if checked.entry is not None:
        try:
            entry = json.loads(checked.entry)
        except ValueError:
            entry = {"base64": base64.b64encode(checked.entry).decode("ascii")}
    policy = checked.policy
    return {
        "verified": True,
        "index": checked.index,
        "origin": policy.checkpoint.origin,
        "size": policy.checkpoint.size,
        "log": policy.log,
        "witnesses": list(policy.witnesses),
        "timestamps": policy.timestamps,
        "entry": entry,
    }
