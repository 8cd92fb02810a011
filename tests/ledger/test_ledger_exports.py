"""The ledger's public surface is pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import sovra.ledger

PINNED = {
    "sovra.ledger": [
        "EMPTY_ROOT",
        "AuditReport",
        "Checkpoint",
        "CheckpointCosignatures",
        "CosignatureSigner",
        "CosignatureStore",
        "CosignatureVerifier",
        "LogStorage",
        "MemoryLogStorage",
        "NoteSigner",
        "NoteVerifier",
        "SQLiteLogStorage",
        "TileAudit",
        "TransparencyLog",
        "Witness",
        "audit",
        "audit_tiles",
        "entries_path",
        "find_split_view",
        "leaf_hash",
        "open_note",
        "sign_note",
        "tile_path",
        "verify_checkpoint",
        "verify_checkpoint_consistency",
        "verify_consistency",
        "verify_cosignatures",
        "verify_entry_inclusion",
        "verify_inclusion",
    ],
    "sovra._merkle": [
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
    ],
    "sovra.ledger.checkpoint": ["MAX_CHECKPOINT_BYTES", "MAX_TREE_SIZE", "Checkpoint"],
    "sovra.ledger.cosigning": [
        "MAX_SUBMISSION_BYTES",
        "MAX_WITNESSES",
        "CheckpointCosignatures",
        "Submission",
        "cosignature_store",
    ],
    "sovra.ledger.log": ["MAX_READ", "TransparencyLog"],
    "sovra.ledger.note": [
        "ED25519_TYPE",
        "MAX_NOTE_BYTES",
        "MAX_SIGNATURES",
        "NoteSigner",
        "NoteVerifier",
        "check_key_name",
        "key_id",
        "open_note",
        "sign_note",
        "split_signed_note",
    ],
    "sovra.ledger.postgres": ["PostgresLogStorage"],
    "sovra.ledger.storage": [
        "MAX_BATCH",
        "MAX_ENTRY_BYTES",
        "MAX_TAGS_PER_ENTRY",
        "MAX_TAG_CHARS",
        "SYNC_MODES",
        "CosignatureStore",
        "LogStorage",
        "MemoryLogStorage",
        "SQLiteLogStorage",
        "check_tag",
    ],
    "sovra.ledger.tiles": [
        "MAX_TILE_LEVEL",
        "TILE_HEIGHT",
        "TILE_WIDTH",
        "TileAudit",
        "audit_tiles",
        "decode_entry_bundle",
        "encode_entry_bundle",
        "entries_path",
        "parse_hash_tile",
        "parse_tile_path",
        "tile_level_count",
        "tile_path",
    ],
    "sovra.ledger.witness": [
        "COSIGNATURE_TYPE",
        "CosignatureSigner",
        "CosignatureVerifier",
        "Witness",
        "find_split_view",
        "verify_cosignatures",
    ],
    "sovra.ledger.verify": [
        "AuditReport",
        "audit",
        "verify_checkpoint",
        "verify_checkpoint_consistency",
        "verify_entry_inclusion",
    ],
}


def test_every_module_is_pinned() -> None:
    # The ledger's Merkle hashing sits below sovra.model (which uses it too), not inside.
    found = {"sovra.ledger", "sovra._merkle"} | {
        m.name for m in pkgutil.iter_modules(sovra.ledger.__path__, "sovra.ledger.")
    }
    assert found == set(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_all_is_pinned_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == PINNED[name]
    for attr in module.__all__:
        value = getattr(module, attr)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert inspect.getdoc(value), f"{name}.{attr} has no docstring"
