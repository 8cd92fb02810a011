"""RFC 9162 hashing, proofs and the in-memory tree, against outside vectors and a reference."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from sovra.errors import BadRequest, VerificationError
from sovra_verify._merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof_size,
    inclusion_proof_size,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc6962_merkle_transparency_dev.json").read_text()
)
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaf_inputs_hex"]]
ROOTS = [bytes.fromhex(h) for h in VECTORS["root_hashes_hex"]]

# Probes where sovra is deliberately stricter than the reference implementation: it
# refuses "roots" that are not 32 bytes even when no hashing would touch them.
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def proof_of(probe: dict[str, Any]) -> list[bytes]:
    return [b64(h) for h in probe["proof"] or []]


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 section 2.1.1 writes it, over leaf hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(
        b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])
    ).digest()


def random_leaves(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [leaf_hash(rng.randbytes(rng.randrange(0, 40))) for _ in range(n)]


# --- hashing -----------------------------------------------------------------------


def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(b"\x01" + a + a) != node_hash(a, a)
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert bytes.fromhex(empty) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_roots_match_published_vectors(size: int) -> None:
    hashes = [leaf_hash(x) for x in LEAVES[:size]]
    assert MerkleTree(hashes).root() == ROOTS[size]
    assert root_from_leaf_hashes(hashes) == ROOTS[size]
    assert MerkleTree(leaf_hash(x) for x in LEAVES).root(size) == ROOTS[size]


# --- published proof probes --------------------------------------------------------


@pytest.mark.parametrize("probe", VECTORS["inclusion"], ids=lambda p: p["file"][9:])
def test_inclusion_probe(probe: dict[str, Any]) -> None:
    args = (b64(probe["leafHash"]), probe["leafIdx"], probe["treeSize"], proof_of(probe))
    if probe["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args, b64(probe["root"]))
    else:
        verify_inclusion(*args, b64(probe["root"]))


@pytest.mark.parametrize("probe", VECTORS["consistency"], ids=lambda p: p["file"][9:])
def test_consistency_probe(probe: dict[str, Any]) -> None:
    args = (probe["size1"], probe["size2"], b64(probe["root1"]), b64(probe["root2"]))
    if probe["wantErr"] or probe["file"] in STRICTER:
        with pytest.raises(VerificationError):
            verify_consistency(*args, proof_of(probe))
    else:
        verify_consistency(*args, proof_of(probe))


def test_stricter_probes_still_exist() -> None:
    files = {p["file"] for p in VECTORS["consistency"]}
    assert files >= STRICTER


def test_generated_proofs_equal_published_happy_paths() -> None:
    tree = MerkleTree(leaf_hash(x) for x in LEAVES)
    leaf_index = {leaf_hash(x): i for i, x in enumerate(LEAVES)}
    checked = 0
    for probe in VECTORS["inclusion"]:
        leaf = b64(probe["leafHash"])
        if probe["wantErr"] or leaf_index.get(leaf) != probe["leafIdx"]:
            continue
        size = probe["treeSize"]
        if b64(probe["root"]) != ROOTS[size]:
            continue
        assert tree.inclusion_proof(probe["leafIdx"], size) == proof_of(probe)
        checked += 1
    for probe in VECTORS["consistency"]:
        m, n = probe["size1"], probe["size2"]
        if probe["wantErr"] or not 0 < m <= n <= 8 or b64(probe["root2"]) != ROOTS[n]:
            continue
        assert tree.consistency_proof(m, n) == proof_of(probe)
        checked += 1
    assert checked >= 8


# --- tampering ---------------------------------------------------------------------


def flipped(proof: list[bytes], i: int, byte: int) -> list[bytes]:
    h = bytearray(proof[i])
    h[byte] ^= 0x01
    return [*proof[:i], bytes(h), *proof[i + 1 :]]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 13, 16, 21])
def test_inclusion_fails_when_anything_is_altered(size: int) -> None:
    leaves = random_leaves(2 * size + 1, seed=size)
    tree = MerkleTree(leaves)
    root = tree.root(size)
    for index in range(size):
        proof = tree.inclusion_proof(index, size)
        assert len(proof) == inclusion_proof_size(index, size)
        verify_inclusion(leaves[index], index, size, proof, root)
        for i in range(len(proof)):
            for byte in (0, 17, 31):
                with pytest.raises(VerificationError, match="leads to root"):
                    verify_inclusion(leaves[index], index, size, flipped(proof, i, byte), root)
        with pytest.raises(VerificationError):
            verify_inclusion(leaf_hash(b"other"), index, size, proof, root)
        for other in {index - 1, index + 1, index ^ 1} - {index}:
            with pytest.raises(VerificationError):
                verify_inclusion(leaves[index], other, size, proof, root)
        # A root commits to its leaves, and a checkpoint pairs it with its size: the
        # proof must not pass for any other size together with that size's root.
        for other_size in {size - 1, size + 1, size * 2, size * 2 + 1} - {size}:
            if index < other_size:
                with pytest.raises(VerificationError):
                    verify_inclusion(leaves[index], index, other_size, proof, tree.root(other_size))
        with pytest.raises(VerificationError, match="proof has"):
            verify_inclusion(leaves[index], index, size, [*proof, root], root)
        if proof:
            with pytest.raises(VerificationError, match="proof has"):
                verify_inclusion(leaves[index], index, size, proof[:-1], root)
        with pytest.raises(VerificationError):
            verify_inclusion(leaves[index], index, size, proof, flipped([root], 0, 5)[0])


def test_inclusion_rejects_bad_lengths_and_ranges() -> None:
    tree = MerkleTree(random_leaves(5, seed=1))
    proof, root, leaf = tree.inclusion_proof(2, 5), tree.root(), tree.inclusion_proof(3, 5)[0]
    with pytest.raises(VerificationError, match="not inside a tree of size 5"):
        verify_inclusion(leaf, 5, 5, proof, root)
    with pytest.raises(VerificationError, match="not inside"):
        verify_inclusion(leaf, -1, 5, proof, root)
    with pytest.raises(VerificationError, match="leaf hash must be 32 bytes, got 31"):
        verify_inclusion(leaf[:31], 2, 5, proof, root)
    with pytest.raises(VerificationError, match="root hash must be 32 bytes"):
        verify_inclusion(leaf, 2, 5, proof, root + b"\x00")
    with pytest.raises(VerificationError, match="proof hash #1 must be 32 bytes"):
        verify_inclusion(leaf, 2, 5, [proof[0], proof[1][:-1], *proof[2:]], root)


@pytest.mark.parametrize("new_size", range(1, 65))
def test_consistency_for_every_pair_up_to_64(new_size: int) -> None:
    leaves = random_leaves(64, seed=64)
    tree = MerkleTree(leaves)
    new_root = tree.root(new_size)
    assert new_root == reference_root(leaves[:new_size])
    for old_size in range(1, new_size + 1):
        old_root = tree.root(old_size)
        proof = tree.consistency_proof(old_size, new_size)
        assert len(proof) == consistency_proof_size(old_size, new_size)
        verify_consistency(old_size, new_size, old_root, new_root, proof)
        if old_size == new_size:
            assert proof == []
            continue
        for i in range(len(proof)):
            with pytest.raises(VerificationError, match="rebuild"):
                verify_consistency(old_size, new_size, old_root, new_root, flipped(proof, i, i))
        # A perfect old tree's root seeds both chains, so a wrong one shows in either.
        with pytest.raises(VerificationError, match=r"rebuild the (old|new) root"):
            verify_consistency(old_size, new_size, leaf_hash(b"x"), new_root, proof)
        with pytest.raises(VerificationError, match="rebuild the new root"):
            verify_consistency(old_size, new_size, old_root, leaf_hash(b"x"), proof)
        with pytest.raises(VerificationError, match="proof has"):
            verify_consistency(old_size, new_size, old_root, new_root, proof[:-1])
        with pytest.raises(VerificationError, match="proof has"):
            verify_consistency(old_size, new_size, old_root, new_root, [*proof, old_root])


def test_consistency_edge_cases() -> None:
    tree = MerkleTree(random_leaves(7, seed=6))
    r3, r6 = tree.root(3), tree.root(6)
    proof = tree.consistency_proof(3, 6)
    with pytest.raises(VerificationError, match="smaller size"):
        verify_consistency(6, 3, r6, r3, proof)
    with pytest.raises(VerificationError, match="proves nothing"):
        verify_consistency(0, 6, EMPTY_ROOT, r6, [])
    with pytest.raises(VerificationError, match="empty consistency proof"):
        verify_consistency(6, 6, r6, r6, proof)
    with pytest.raises(VerificationError, match="two different roots"):
        verify_consistency(6, 6, r6, r3, [])
    with pytest.raises(VerificationError, match="SHA-256 of nothing"):
        verify_consistency(0, 0, r3, r3, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(VerificationError, match="old root hash must be 32 bytes"):
        verify_consistency(3, 6, r3[:16], r6, proof)
    with pytest.raises(VerificationError, match="out of range"):
        verify_consistency(-1, 6, r3, r6, proof)
    for other in (2, 4, 5, 7):
        with pytest.raises(VerificationError):
            verify_consistency(3, other, r3, tree.root(other), proof)
    for other in (1, 2, 4, 5):
        with pytest.raises(VerificationError):
            verify_consistency(other, 6, tree.root(other), r6, proof)


# --- the tree against an independent reference -------------------------------------


def test_tree_agrees_with_reference_over_2000_leaves() -> None:
    leaves = random_leaves(2000, seed=2000)
    tree = MerkleTree()
    rng = random.Random(7)
    samples = {1, 2, 3, 4, 1023, 1024, 1025, 1999, 2000}
    samples |= {rng.randrange(1, 2001) for _ in range(40)}
    for h in leaves:
        tree.append(h)
        if tree.size in samples:
            assert tree.root() == reference_root(leaves[: tree.size])
    assert root_from_leaf_hashes(leaves) == tree.root()
    for size in sorted(samples):
        root = reference_root(leaves[:size])
        assert tree.root(size) == root
        for index in {0, size - 1, rng.randrange(size)}:
            verify_inclusion(leaves[index], index, size, tree.inclusion_proof(index, size), root)
        old = rng.randrange(1, size + 1)
        verify_consistency(
            old, size, reference_root(leaves[:old]), root, tree.consistency_proof(old, size)
        )


def test_tree_stores_each_perfect_subtree_once() -> None:
    tree = MerkleTree(random_leaves(13, seed=13))
    # 13 = 8 + 4 + 1: levels hold 13, 6, 3, 1 perfect subtrees.
    assert [len(level) for level in tree._levels] == [13, 6, 3, 1]


# --- requests beyond the tree ------------------------------------------------------


def test_requests_beyond_the_tree_are_bad_requests() -> None:
    tree = MerkleTree(random_leaves(4, seed=4))
    before = tree.root()
    with pytest.raises(BadRequest, match="beyond the tree size 4"):
        tree.root(5)
    with pytest.raises(BadRequest):
        tree.root(-1)
    with pytest.raises(BadRequest, match="beyond the tree size 4"):
        tree.inclusion_proof(0, 5)
    with pytest.raises(BadRequest, match="not inside a tree of size 3"):
        tree.inclusion_proof(3, 3)
    with pytest.raises(BadRequest):
        tree.inclusion_proof(-1, 3)
    with pytest.raises(BadRequest, match="beyond the tree size"):
        tree.consistency_proof(2, 5)
    with pytest.raises(BadRequest, match="0 < old size <= new size"):
        tree.consistency_proof(0, 4)
    with pytest.raises(BadRequest, match="0 < old size <= new size"):
        tree.consistency_proof(4, 3)
    with pytest.raises(BadRequest, match="not inside a tree of size 4"):
        tree.leaf(4)
    assert tree.leaf(3) == random_leaves(4, seed=4)[3]
    with pytest.raises(BadRequest, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(BadRequest, match="32 bytes"):
        root_from_leaf_hashes([b"short"])
    assert tree.size == 4
    assert tree.root() == before


def test_empty_tree() -> None:
    tree = MerkleTree()
    assert tree.size == 0
    assert tree.root() == EMPTY_ROOT
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    with pytest.raises(BadRequest):
        tree.inclusion_proof(0, 0)
