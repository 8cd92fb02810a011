"""sovra_verify: check a sovra gateway's transparency log with cryptography alone.

An auditor installs this package (``pip install ./verifier``: it needs only pyca
cryptography and the standard library) and checks a log against the key she already
holds, never one the log hands out::

    from sovra_verify import LogReader, audit_log, load_vkey

    result = audit_log(LogReader("https://sovra.example"), load_vkey("log.vkey"))

The pieces are the ones the gateway itself uses, not copies: RFC 9162 Merkle proofs,
C2SP signed notes and checkpoints, tlog-cosignature witness cosignatures, a tlog-tiles
audit, tlog-policy witness quorums and tlog-proof proofs of one entry checked offline
(:class:`TlogProof`), and the error tree :mod:`sovra.errors` re-exports. ``sovra-verify`` is the
command line (:mod:`sovra_verify.cli`).
"""

from sovra_verify.audit import EntryProof, LogAudit, audit_log, load_vkey, prove_entry
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureVerifier, find_split_view, verify_cosignatures
from sovra_verify.errors import BadRequest, SovraError, Unavailable, VerificationError
from sovra_verify.note import NoteVerifier, open_note
from sovra_verify.policy import PolicyCheck, WitnessPolicy
from sovra_verify.proof import ProofCheck, TlogProof
from sovra_verify.receipt import Receipt, check_receipts, verify_receipt
from sovra_verify.remote import LogReader
from sovra_verify.tiles import TileAudit, audit_tiles
from sovra_verify.verify import (
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_entry_inclusion,
)

__all__ = [
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
]

__version__ = "0.1.0"
