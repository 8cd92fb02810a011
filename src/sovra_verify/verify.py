"""The auditor's side of the log: check checkpoints, proofs and the whole log.

Nothing here needs the log, its storage or any other sovra stage: an auditor holding
the published entries, checkpoint notes and the log's vkey can run it anywhere.
:func:`audit` recomputes every root with its own recursive RFC 9162 hash, written
straight from the definition and sharing no code with the log's tree, so a bug in the
log's tree cannot hide itself from the audit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sovra_verify._merkle import leaf_hash, verify_consistency, verify_inclusion
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.errors import BadRequest, VerificationError
from sovra_verify.note import NoteVerifier, open_note

__all__ = [
    "AuditReport",
    "audit",
    "verify_checkpoint",
    "verify_checkpoint_consistency",
    "verify_entry_inclusion",
]


def _verifier(vkey: str | NoteVerifier) -> NoteVerifier:
    return vkey if isinstance(vkey, NoteVerifier) else NoteVerifier.from_vkey(vkey)


def verify_checkpoint(
    note: str | bytes, vkey: str | NoteVerifier, *, origin: str | None = None
) -> Checkpoint:
    """Check a checkpoint note's signature by *vkey* and return the checkpoint.

    Args:
        note: the signed checkpoint note.
        vkey: the log's verifier key (string or parsed).
        origin: the origin the checkpoint must name; by default the key's name, as
            C2SP recommends and sovra's log guarantees.

    Raises:
        BadRequest: the vkey or the note is malformed, or the text is not a checkpoint.
        VerificationError: the log's key did not sign it, or it names another origin.
    """
    verifier = _verifier(vkey)
    text, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.parse(text)
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise VerificationError(f"checkpoint is for origin {checkpoint.origin!r}, not {expected!r}")
    return checkpoint


def verify_entry_inclusion(
    entry: bytes, index: int, proof: Sequence[bytes], checkpoint: Checkpoint
) -> None:
    """Check that *entry* is at *index* in the tree a verified *checkpoint* commits to.

    Raises:
        VerificationError: the proof does not tie the entry to the checkpoint's root.
    """
    verify_inclusion(leaf_hash(entry), index, checkpoint.size, proof, checkpoint.root_hash)


def verify_checkpoint_consistency(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that verified checkpoint *new* extends verified checkpoint *old*.

    Raises:
        VerificationError: different origins, or the proof does not link the roots.
    """
    if old.origin != new.origin:
        raise VerificationError(f"checkpoints of two logs: {old.origin!r} and {new.origin!r}")
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)


class _ReferenceTree:
    """MTH straight from RFC 9162 section 2.1.1, memoising perfect subtrees.

    The memo only saves re-hashing the left subtrees every prefix shares; the
    recursion itself is the textbook definition.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._leaves = leaves
        self._memo: dict[tuple[int, int], bytes] = {}

    def root(self, size: int) -> bytes:
        return hashlib.sha256(b"").digest() if size == 0 else self._mth(0, size)

    def _mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 1:
            return self._leaves[start]
        cached = self._memo.get((start, end))
        if cached is not None:
            return cached
        k = 1
        while k * 2 < n:
            k *= 2
        value = hashlib.sha256(
            b"\x01" + self._mth(start, start + k) + self._mth(start + k, end)
        ).digest()
        if n & (n - 1) == 0:
            self._memo[(start, end)] = value
        return value


def _reference_leaf(entry: object, index: int) -> bytes:
    if not isinstance(entry, bytes | bytearray):
        raise BadRequest(f"entry {index} is not bytes")
    return hashlib.sha256(b"\x00" + bytes(entry)).digest()


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :func:`audit` found. Call :meth:`check` to turn problems into an error.

    Attributes:
        entries: how many entries were read.
        checkpoints: how many checkpoint notes were given.
        verified_size: the largest tree size whose signed root the entries reproduce.
        latest: the checkpoint of that size, if any.
        first_bad_checkpoint: position in the given list of the first checkpoint that
            is unsigned, malformed, beyond the entries, or whose root the entries do
            not reproduce.
        first_bad_index: the first entry proven altered, when it can be pinpointed.
        suspect_range: ``[start, end)`` of entries holding the first alteration: between
            the last checkpoint that matched and the first that did not.
        problems: one line per finding, in the order found.
    """

    entries: int
    checkpoints: int
    verified_size: int
    latest: Checkpoint | None
    first_bad_checkpoint: int | None
    first_bad_index: int | None
    suspect_range: tuple[int, int] | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing was found (prefer :meth:`check` in code paths)."""
        return not self.problems

    def check(self) -> None:
        """Return if the audit found nothing.

        Raises:
            VerificationError: naming the first problem and how many there were.
        """
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise VerificationError(f"log audit failed: {self.problems[0]}{more}")


def audit(
    entries: Iterable[bytes],
    checkpoints: Sequence[str],
    vkey: str | NoteVerifier,
    *,
    origin: str | None = None,
    leaf_hashes: Sequence[bytes] | None = None,
) -> AuditReport:
    """Recompute the log from its entries and check every checkpoint against it.

    Each checkpoint must be signed by *vkey*, name the log's origin, cover no more
    entries than were given, and carry the root the entries produce at its size.
    Signed roots locate a bad entry only to the span between two checkpoints; when the
    log's claimed *leaf_hashes* are given (as tiles publish them), those that the
    signed roots authenticate pinpoint the first altered entry exactly.

    Args:
        entries: every entry from index 0, in order.
        checkpoints: published checkpoint notes.
        vkey: the log's verifier key.
        origin: the expected origin (default: the key's name).
        leaf_hashes: the leaf hashes the log publishes, from index 0, if available.

    Raises:
        BadRequest: the vkey is malformed or an entry is not bytes.
    """
    verifier = _verifier(vkey)
    leaves = [_reference_leaf(e, i) for i, e in enumerate(entries)]
    reference = _ReferenceTree(leaves)
    problems: list[str] = []
    bad_positions: list[int] = []
    signed: list[Checkpoint] = []
    matched: list[Checkpoint] = []
    mismatched_sizes: list[int] = []
    for pos, note in enumerate(checkpoints):
        try:
            cp = verify_checkpoint(note, verifier, origin=origin)
        except (BadRequest, VerificationError) as exc:
            problems.append(f"checkpoint #{pos} is not valid: {exc.message}")
            bad_positions.append(pos)
            continue
        signed.append(cp)
        if cp.size > len(leaves):
            problems.append(
                f"checkpoint #{pos} covers {cp.size} entries but only {len(leaves)} exist"
            )
            bad_positions.append(pos)
        elif reference.root(cp.size) != cp.root_hash:
            problems.append(
                f"checkpoint #{pos}: the entries do not reproduce its root at size {cp.size}"
            )
            bad_positions.append(pos)
            mismatched_sizes.append(cp.size)
        else:
            matched.append(cp)
    latest = max(matched, key=lambda c: c.size, default=None)
    suspect = None
    first_bad_index = None
    if mismatched_sizes:
        hi = min(mismatched_sizes)
        lo = max((c.size for c in matched if c.size < hi), default=0)
        suspect = (lo, hi)
        if hi - lo == 1:
            first_bad_index = lo
    if leaf_hashes is not None:
        claimed_bad = _compare_claimed(leaves, leaf_hashes, signed, problems)
        if claimed_bad is not None:
            first_bad_index = claimed_bad
    return AuditReport(
        entries=len(leaves),
        checkpoints=len(checkpoints),
        verified_size=0 if latest is None else latest.size,
        latest=latest,
        first_bad_checkpoint=min(bad_positions, default=None),
        first_bad_index=first_bad_index,
        suspect_range=suspect,
        problems=tuple(problems),
    )


def _compare_claimed(
    leaves: Sequence[bytes],
    claimed: Sequence[bytes],
    signed: Sequence[Checkpoint],
    problems: list[str],
) -> int | None:
    """First index where an entry's hash differs from a signed-root-backed leaf hash."""
    if any(not isinstance(h, bytes | bytearray) or len(h) != 32 for h in claimed):
        problems.append("the claimed leaf hashes are not all 32-byte strings")
        return None
    claimed = [bytes(h) for h in claimed]
    reference = _ReferenceTree(claimed)
    authenticated = 0
    for cp in signed:
        if cp.size > len(claimed) or reference.root(cp.size) != cp.root_hash:
            problems.append(
                f"the claimed leaf hashes do not reproduce the signed root at size {cp.size}"
            )
        else:
            authenticated = max(authenticated, cp.size)
    for i in range(min(authenticated, len(leaves))):
        if leaves[i] != claimed[i]:
            problems.append(f"entry {i} does not hash to the leaf hash the log signed")
            return i
    return None
