"""Property tests: every proof the tree makes verifies, and every altered one fails."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.errors import VerificationError
from sovra_verify._merkle import MerkleTree, verify_consistency, verify_inclusion

MAX = 5000
LEAVES = [hashlib.sha256(b"\x00%d" % i).digest() for i in range(MAX)]
TREE = MerkleTree(LEAVES)  # every prefix of it is a tree of that size


def _flip(h: bytes, bit: int) -> bytes:
    return h[: bit // 8] + bytes([h[bit // 8] ^ (1 << (bit % 8))]) + h[bit // 8 + 1 :]


@st.composite
def inclusion_case(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX))
    return draw(st.integers(0, size - 1)), size


@settings(max_examples=300, deadline=None)
@given(inclusion_case(), st.data())
def test_inclusion_proofs_verify_and_alterations_fail(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    root, proof = TREE.root(size), TREE.inclusion_proof(index, size)
    verify_inclusion(LEAVES[index], index, size, proof, root)
    bit = data.draw(st.integers(0, 255))
    altered = [
        (_flip(LEAVES[index], bit), index, size, proof, root),
        (LEAVES[index], index, size, proof, _flip(root, bit)),
        (LEAVES[index], index, size, [*proof, root], root),
    ]
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        altered += [
            (
                LEAVES[index],
                index,
                size,
                [*proof[:at], _flip(proof[at], bit), *proof[at + 1 :]],
                root,
            ),
            (LEAVES[index], index, size, proof[:at] + proof[at + 1 :], root),
            (LEAVES[index], index, size, [*proof[:at], proof[at][:31], *proof[at + 1 :]], root),
        ]
    other = data.draw(st.integers(0, size))
    if other != index:
        altered.append((LEAVES[index], other, size, proof, root))
    for args in altered:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)


@st.composite
def consistency_case(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, MAX))
    return draw(st.integers(1, new)), new


@settings(max_examples=300, deadline=None)
@given(consistency_case(), st.data())
def test_consistency_proofs_verify_and_alterations_fail(
    case: tuple[int, int], data: st.DataObject
) -> None:
    old, new = case
    a, b = TREE.root(old), TREE.root(new)
    proof = TREE.consistency_proof(old, new)
    verify_consistency(old, new, a, b, proof)
    bit = data.draw(st.integers(0, 255))
    altered = [
        (old, new, _flip(a, bit), b, proof),
        (old, new, a, _flip(b, bit), proof),
        (old, new, a, b, [*proof, a]),
    ]
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        altered += [
            (old, new, a, b, [*proof[:at], _flip(proof[at], bit), *proof[at + 1 :]]),
            (old, new, a, b, proof[:at] + proof[at + 1 :]),
        ]
    # Sizes are not altered here: a proof of one shape can fit two size pairs (1 to 3
    # and 1 to 4 both take two hashes); roots are bound to sizes by signed checkpoints.
    for args in altered:
        with pytest.raises(VerificationError):
            verify_consistency(*args)


def test_the_tree_agrees_with_the_audits_reference_over_200000_leaves() -> None:
    # Two implementations that share no code: the log's incremental tree and the
    # auditor's recursive MTH, over as many leaves as tessera's integration test uses.
    from sovra_verify.verify import _ReferenceTree

    leaves = [hashlib.sha256(b"\x00big %d" % i).digest() for i in range(200_000)]
    tree = MerkleTree(leaves)
    reference = _ReferenceTree(leaves)
    for size in (1, 2, 3, 255, 256, 257, 65_535, 65_536, 65_537, 131_071, 199_999, 200_000):
        assert tree.root(size) == reference.root(size), size
