"""The transparency log: RFC 9162 Merkle tree, C2SP signed-note checkpoints, storage.

Everything sovra does is appended here; receipts promise inclusion, checkpoints commit
to a tree size and root, and the verifier functions let anyone check both without the
rest of sovra::

    log = TransparencyLog(SQLiteLogStorage(path), NoteSigner(origin, key), origin)
    receipt = log.append(entry, tags=[subject_commitment])
    note = log.checkpoint()
    cp = verify_checkpoint(note, log.verifier_key)
    verify_entry_inclusion(entry, receipt.index, log.inclusion_proof(receipt.index, cp.size), cp)
"""

from sovra.ledger._merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from sovra.ledger.checkpoint import Checkpoint
from sovra.ledger.log import TransparencyLog
from sovra.ledger.note import NoteSigner, NoteVerifier, open_note, sign_note
from sovra.ledger.storage import LogStorage, MemoryLogStorage, SQLiteLogStorage
from sovra.ledger.verify import (
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
    "LogStorage",
    "MemoryLogStorage",
    "NoteSigner",
    "NoteVerifier",
    "SQLiteLogStorage",
    "TransparencyLog",
    "audit",
    "leaf_hash",
    "open_note",
    "sign_note",
    "verify_checkpoint",
    "verify_checkpoint_consistency",
    "verify_consistency",
    "verify_entry_inclusion",
    "verify_inclusion",
]
