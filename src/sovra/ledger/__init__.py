"""The transparency log: RFC 9162 Merkle tree, C2SP signed-note checkpoints, storage.

Everything sovra does is appended here; receipts promise inclusion, checkpoints commit
to a tree size and root, and the verifier functions let anyone check both without the
rest of sovra::

    log = TransparencyLog(SQLiteLogStorage(path), NoteSigner(origin, key), origin)
    receipt = log.append(entry, tags=[subject_commitment])
    note = log.checkpoint()
    cp = verify_checkpoint(note, log.verifier_key)
    verify_entry_inclusion(entry, receipt.index, log.inclusion_proof(receipt.index, cp.size), cp)

The log is also published as C2SP tlog-tiles (:meth:`TransparencyLog.tile`,
:meth:`TransparencyLog.entry_bundle`), which :func:`audit_tiles` replays with nothing
but a fetch function and the log's vkey; :class:`Witness` cosigns checkpoints (C2SP
tlog-cosignature) only after checking that the log grew consistently, and
:class:`CheckpointCosignatures` collects those cosignatures on the log's side.
"""

from sovra.ledger.cosigning import CheckpointCosignatures
from sovra.ledger.log import TransparencyLog
from sovra.ledger.storage import (
    CosignatureStore,
    LogStorage,
    MemoryLogStorage,
    SQLiteLogStorage,
)
from sovra.ledger.witness import Witness
from sovra_verify._merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    find_split_view,
    verify_cosignatures,
)
from sovra_verify.note import NoteSigner, NoteVerifier, open_note, sign_note
from sovra_verify.tiles import TileAudit, audit_tiles, entries_path, tile_path
from sovra_verify.verify import (
    AuditReport,
    audit,
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_entry_inclusion,
)

__all__ = [
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
]
