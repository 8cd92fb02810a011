"""RFC 9162 (section 2.1) Merkle tree hashing, proofs and their verification.

The log's tree, and every other tree sovra commits to: a log batch promise
(:class:`~sovra.model.LogReceipt`) and the record and subject lists a decision names by
root (:meth:`~sovra.model.LogEntry.ids`). It sits below :mod:`sovra.model` so that those
use this hashing, not a copy of it.

Leaves are hashed as ``SHA-256(0x00 || data)`` and interior nodes as
``SHA-256(0x01 || left || right)``, so a leaf can never be passed off as a node. The
tree over ``n`` leaves splits at the largest power of two strictly below ``n`` (a
left-balanced tree), which makes every prefix of the log a tree whose root can be
proved consistent with every later root.

Verification functions return nothing or raise :class:`~sovra_verify.errors.VerificationError`
with a message that names what was wrong; they never hand back a bool a caller could
forget to test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from sovra_verify.errors import BadRequest, VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "consistency_proof_size",
    "inclusion_proof_size",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes are uint64 in every tlog format (checkpoints, tiles); refusing larger ones
# keeps hostile proofs from making the size arithmetic below unbounded.
_MAX_SIZE = 1 << 64


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than *n* (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the roots of a left-to-right run of perfect subtrees, largest first."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves; the empty tree's root is ``SHA-256("")``.

    Works bottom-up, carrying an odd last node up a level unchanged, which yields the
    same left-balanced tree as the recursive definition.

    Raises:
        BadRequest: a leaf hash is not 32 bytes.
    """
    level = list(hashes)
    for h in level:
        _check_hash(h, "leaf hash", BadRequest)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _check_hash(value: object, what: str, error: type[Exception]) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise error(f"{what} must be {HASH_SIZE} bytes, got {size}")


def inclusion_proof_size(index: int, size: int) -> int:
    """How many hashes an inclusion proof for leaf *index* in a tree of *size* holds.

    Walks the RFC 9162 PATH recursion, one hash per level descended.
    """
    count = 0
    while size > 1:
        k = _split(size)
        count += 1
        if index < k:
            size = k
        else:
            index, size = index - k, size - k
    return count


def consistency_proof_size(old_size: int, new_size: int) -> int:
    """How many hashes a consistency proof from *old_size* to *new_size* holds.

    Walks the RFC 9162 SUBPROOF recursion (``0 < old_size <= new_size``): one hash per
    level, plus the old subtree's own root when it is not a left-edge subtree.
    """
    count = 0
    on_left_edge = True
    while old_size != new_size:
        k = _split(new_size)
        count += 1
        if old_size <= k:
            new_size = k
        else:
            old_size, new_size = old_size - k, new_size - k
            on_left_edge = False
    return count if on_left_edge else count + 1


def _check_proof(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise VerificationError(
            f"{what} proof has {len(proof)} hashes; this index and size need {expected}"
        )
    for i, h in enumerate(proof):
        if type(h) is not bytes or len(h) != HASH_SIZE:  # the message is built only here
            _check_hash(h, f"{what} proof hash #{i}", VerificationError)


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that *proof* leads to from *leaf* (a leaf hash) at *index* of *size*.

    The first half of RFC 9162 section 2.1.3.2's verification; the root is only as good
    as what the caller compares it with (:func:`verify_inclusion` compares).

    Raises:
        VerificationError: index out of range, a hash of the wrong length, or a proof of
            the wrong length.
    """
    if not 0 <= index < size < _MAX_SIZE:
        raise VerificationError(f"leaf index {index} is not inside a tree of size {size}")
    _check_hash(leaf, "leaf hash", VerificationError)
    _check_proof(proof, inclusion_proof_size(index, size), "inclusion")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # pragma: no cover - unreachable once the length matched
        raise VerificationError("inclusion proof ended below the root")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that *leaf* (a leaf hash) sits at *index* in the tree of *size* with *root*.

    Follows the verification algorithm of RFC 9162 section 2.1.3.2.

    Raises:
        VerificationError: index out of range, a hash of the wrong length, a proof of
            the wrong length, or a proof that does not lead to *root*.
    """
    _check_hash(root, "root hash", VerificationError)
    r = root_from_inclusion(leaf, index, size, proof)
    if r != root:
        raise VerificationError(
            f"inclusion proof for leaf {index} leads to root {r.hex()}, "
            f"not the expected {root.hex()} at size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of *new_size* with *new_root* extends the one of *old_size*.

    Follows RFC 9162 section 2.1.4.2. Equal sizes need an empty proof and equal roots.
    A proof from the empty tree is refused: RFC 9162 defines proofs only for
    ``0 < old_size``, and every tree trivially extends the empty one, so accepting
    one would prove nothing while looking like a check.

    Raises:
        VerificationError: sizes out of order, the old size is zero, a hash of the
            wrong length, a proof of the wrong length, or either root does not match.
    """
    if not 0 <= old_size <= new_size < _MAX_SIZE:
        raise VerificationError(
            f"cannot prove size {old_size} consistent with smaller size {new_size}"
            if old_size > new_size
            else f"tree sizes {old_size} and {new_size} are out of range"
        )
    _check_hash(old_root, "old root hash", VerificationError)
    _check_hash(new_root, "new root hash", VerificationError)
    if old_size == new_size:
        _check_same_tree(old_size, old_root, new_root, proof)
        return
    if old_size == 0:
        raise VerificationError("a consistency proof from the empty tree proves nothing")
    _check_proof(proof, consistency_proof_size(old_size, new_size), "consistency")
    fr, sr = _consistency_roots(old_size, new_size, old_root, proof)
    if fr != old_root:
        raise VerificationError(
            f"consistency proof does not rebuild the old root at size {old_size}"
        )
    if sr != new_root:
        raise VerificationError(
            f"consistency proof does not rebuild the new root at size {new_size}"
        )


def _check_same_tree(size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    if proof:
        raise VerificationError("trees of equal size need an empty consistency proof")
    if old_root != new_root:
        raise VerificationError(f"two different roots for the same tree size {size}")
    if size == 0 and old_root != EMPTY_ROOT:
        raise VerificationError("the empty tree's root must be SHA-256 of nothing")


def _consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """The old and new roots a length-checked consistency proof rebuilds."""
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is itself a perfect left subtree; its root starts both chains.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # pragma: no cover - unreachable once the length matched
        raise VerificationError("consistency proof ended below the new root")
    return fr, sr


class MerkleTree:
    """An append-only in-memory RFC 9162 tree that keeps every perfect subtree's hash.

    ``_levels[k][i]`` is the root of the perfect subtree over leaves
    ``[i * 2**k, (i + 1) * 2**k)``; it is stored the moment its last leaf arrives.
    Any node of any prefix tree is then a run of at most ``log2(n)`` stored hashes,
    so roots of past sizes and proofs cost O(log^2 n) hashing instead of O(n).
    Not thread-safe: the log serialises access.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        """Start a tree, optionally from existing leaf hashes.

        Raises:
            BadRequest: a leaf hash is not 32 bytes.
        """
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def append(self, leaf: bytes) -> int:
        """Add one leaf hash; return its index.

        Raises:
            BadRequest: the leaf hash is not 32 bytes.
        """
        _check_hash(leaf, "leaf hash", BadRequest)
        # Complete the parents first and publish the leaf last, so a reader that sees
        # the new size also sees every subtree hash that size needs.
        index = len(self._levels[0])
        carry, level, pos = bytes(leaf), 0, index
        while pos & 1:
            carry = node_hash(self._levels[level][pos - 1], carry)
            level, pos = level + 1, pos >> 1
            if len(self._levels) == level:
                self._levels.append([])
            self._levels[level].append(carry)
        self._levels[0].append(bytes(leaf))
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes in order (the batched integration path).

        Same steps as :meth:`append`, inlined: this loop is the log's hot path.

        Raises:
            BadRequest: a leaf hash is not 32 bytes (earlier ones stay appended).
        """
        levels = self._levels
        leaves = levels[0]
        sha256 = hashlib.sha256
        for given in leaf_hashes:
            leaf = given
            if type(leaf) is not bytes or len(leaf) != HASH_SIZE:
                _check_hash(leaf, "leaf hash", BadRequest)
                leaf = bytes(leaf)
            pos = len(leaves)
            carry, level = leaf, 0
            while pos & 1:
                carry = sha256(b"\x01" + levels[level][pos - 1] + carry).digest()
                level, pos = level + 1, pos >> 1
                if len(levels) == level:
                    levels.append([])
                levels[level].append(carry)
            leaves.append(leaf)

    def level_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        """Hashes of the perfect subtrees of height *level*, numbered ``[start, end)``.

        These are the hashes tlog-tiles publishes; a stored one never changes.

        Raises:
            BadRequest: the range is not among the subtrees completed so far.
        """
        count = self.size >> level if level >= 0 else -1
        if not 0 <= start <= end <= count:
            raise BadRequest(
                f"subtrees [{start}, {end}) at height {level} are not complete in a tree "
                f"of size {self.size}"
            )
        return self._levels[level][start:end] if start < end else []

    def leaf(self, index: int) -> bytes:
        """The leaf hash at *index*.

        Raises:
            BadRequest: *index* is not inside the tree.
        """
        if not 0 <= index < self.size:
            raise BadRequest(f"leaf index {index} is not inside a tree of size {self.size}")
        return self._levels[0][index]

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)`` for a node of the tree (``start < end``)."""
        hashes = []
        while start < end:
            # Nodes of a left-balanced tree start at a multiple of their largest
            # power-of-two run, so each run is a stored perfect subtree.
            level = (end - start).bit_length() - 1
            hashes.append(self._levels[level][start >> level])
            start += 1 << level
        return _fold(hashes)

    def _check_size(self, size: int, what: str) -> None:
        if not 0 <= size <= self.size:
            raise BadRequest(f"{what} {size} is beyond the tree size {self.size}")

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the first *size* leaves (default: all of them).

        Raises:
            BadRequest: *size* is negative or beyond the tree.
        """
        size = self.size if size is None else size
        self._check_size(size, "tree size")
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 PATH: the audit path for leaf *index* in the tree of *size* leaves.

        Hashes are ordered from the leaf's sibling up to the root's child.

        Raises:
            BadRequest: *size* beyond the tree or *index* not below *size*.
        """
        self._check_size(size, "tree size")
        if not 0 <= index < size:
            raise BadRequest(f"leaf index {index} is not inside a tree of size {size}")
        # Below level `inner` the path climbs through siblings of the leaf's ancestors,
        # all stored perfect subtrees except possibly the last (a right sibling cut off
        # by the tree's end). Above it, the ancestors lie on the right border and their
        # left siblings are stored perfect subtrees.
        levels = self._levels
        inner = (index ^ (size - 1)).bit_length()
        path: list[bytes] = []
        for level in range(inner):
            sibling = (index >> level) ^ 1
            if (sibling + 1) << level <= size:
                path.append(levels[level][sibling])
            else:
                path.append(self._subtree(sibling << level, size))
        for level in range(inner, size.bit_length()):
            if (index >> level) & 1:
                path.append(levels[level][(index >> level) ^ 1])
        return path

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 PROOF: hashes proving the *new_size* tree extends the *old_size* one.

        Raises:
            BadRequest: sizes not in ``0 < old_size <= new_size <= size``.
        """
        self._check_size(new_size, "tree size")
        if not 0 < old_size <= new_size:
            raise BadRequest(
                f"a consistency proof needs 0 < old size <= new size, got {old_size}, {new_size}"
            )
        proof: list[bytes] = []
        start, end, m = 0, new_size, old_size
        on_left_edge = True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                m -= k
                start += k
                on_left_edge = False
        if not on_left_edge:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof
