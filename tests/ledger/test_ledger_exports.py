"""The ledger's public surface is pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import sovra.ledger
import sovra_verify

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
    "sovra_verify._merkle": [
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
    "sovra_verify.checkpoint": ["MAX_CHECKPOINT_BYTES", "MAX_TREE_SIZE", "Checkpoint"],
    "sovra.ledger.cosigning": [
        "MAX_SUBMISSION_BYTES",
        "MAX_WITNESSES",
        "CheckpointCosignatures",
        "Submission",
        "cosignature_store",
    ],
    "sovra.ledger.log": ["MAX_READ", "TransparencyLog"],
    "sovra_verify.note": [
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
        "CatchingUp",
        "CosignatureStore",
        "LogStorage",
        "MemoryLogStorage",
        "RowMarking",
        "SQLiteLogStorage",
        "check_tag",
    ],
    "sovra_verify.tiles": [
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
        "MAX_CONSISTENCY_HASHES",
        "Inconsistent",
        "OldSizeConflict",
        "Rollback",
        "UnknownLog",
        "UntrustedCheckpoint",
        "Witness",
    ],
    "sovra.ledger.tiles_publish": ["Published", "TilePublisher"],
    "sovra.ledger.tiles_store": [
        "CHECKPOINT",
        "IMMUTABLE",
        "FolderTileStore",
        "S3TileStore",
        "TileStore",
    ],
    "sovra.ledger.rounds": ["CheckpointWitness", "WitnessRounds"],
    "sovra.ledger.tlog_witness": [
        "MAX_REQUEST_BYTES",
        "SIZE_MEDIA_TYPE",
        "PendingCosignature",
        "WitnessClient",
        "encode_request",
        "parse_request",
    ],
    "sovra.ledger.witnessing": [
        "DEFAULT_TIMEOUT_S",
        "Round",
        "WitnessLike",
        "Witnessing",
        "load_policy",
        "open_witnessing",
    ],
    "sovra_verify.policy": [
        "MAX_ENTRIES",
        "MAX_POLICY_BYTES",
        "PolicyCheck",
        "PolicyWitness",
        "WitnessPolicy",
    ],
    "sovra_verify.proof": [
        "MAX_PROOF_BYTES",
        "PROOF_HEADER",
        "ProofCheck",
        "TlogProof",
        "check_proof_file",
        "proof_report",
        "trust_policy",
    ],
    "sovra_verify": [
        "BadRequest",
        "Checkpoint",
        "CosignatureVerifier",
        "EntryProof",
        "LogAudit",
        "LogReader",
        "NoteVerifier",
        "PolicyCheck",
        "ProofCheck",
        "Receipt",
        "SovraError",
        "TileAudit",
        "TlogProof",
        "Unavailable",
        "VerificationError",
        "WitnessPolicy",
        "__version__",
        "audit_log",
        "audit_tiles",
        "check_receipts",
        "find_split_view",
        "load_vkey",
        "open_note",
        "prove_entry",
        "verify_checkpoint",
        "verify_checkpoint_consistency",
        "verify_cosignatures",
        "verify_entry_inclusion",
        "verify_receipt",
    ],
    "sovra_verify.audit": [
        "MAX_NOTE_FILE_BYTES",
        "EntryProof",
        "LogAudit",
        "LogSource",
        "audit_log",
        "check_quorum",
        "load_vkey",
        "prove_entry",
        "read_note",
    ],
    "sovra_verify.cli": ["EXIT_UNREACHABLE", "EXIT_UNVERIFIED", "main"],
    "sovra_verify.cosignature": [
        "COSIGNATURE_TYPE",
        "CosignatureSigner",
        "CosignatureVerifier",
        "find_split_view",
        "verify_cosignatures",
    ],
    "sovra_verify.errors": [
        "BadRequest",
        "ClientError",
        "ConfigError",
        "Denied",
        "IntegrityError",
        "NotFound",
        "PayloadTooLarge",
        "RequestTimeout",
        "SovraError",
        "Unauthenticated",
        "Unavailable",
        "VerificationError",
    ],
    "sovra_verify.receipt": [
        "RECEIPT_FIELDS",
        "Receipt",
        "batch_promise",
        "check_receipts",
        "find_receipts",
        "promise_bytes",
        "single_promise",
        "verify_receipt",
    ],
    "sovra_verify.remote": ["MAX_ANSWER_BYTES", "LogReader"],
    "sovra_verify.static": ["StaticFiles", "StaticFolder", "StaticSite", "static_log"],
    "sovra_verify.verify": [
        "AuditReport",
        "audit",
        "verify_checkpoint",
        "verify_checkpoint_consistency",
        "verify_entry_inclusion",
    ],
}


def test_every_module_is_pinned() -> None:
    # The verifier's modules (sovra_verify) are the ledger's too: the log imports them.
    found = {"sovra.ledger", "sovra_verify"} | {
        m.name
        for package, prefix in ((sovra.ledger, "sovra.ledger."), (sovra_verify, "sovra_verify."))
        for m in pkgutil.iter_modules(package.__path__, prefix)
        if m.name != "sovra_verify.__main__"
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
