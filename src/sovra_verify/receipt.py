"""Receipts: the log's signed promise that an entry is at an index, checked offline.

Every write to a sovra log answers with a receipt (``LogReceipt`` in the gateway, the
``receipt`` / ``decision_receipt`` / ``release_receipt`` objects of its HTTP answers)
before the entry is in a checkpoint, like a Certificate Transparency SCT. It is one
Ed25519 signature by the log key over a short statement:

- a single promise, ``sovra-promise/v1``::

      sovra-promise/v1\\n<origin>\\n<index>\\n<time_ms>\\n<hex leaf hash>\\n

- a batch promise (``batch.size > 0``), one signature for a whole batch of entries::

      sovra-promise/v2\\n<origin>\\n<start>\\n<size>\\n<time_ms>\\n<hex root>\\n

  where ``<root>`` is the RFC 9162 root of the leaf hashes ``[start, start + size)``,
  rebuilt from the receipt's leaf hash and its ``batch.path``.

The leaf hash is RFC 9162's ``SHA-256(0x00 || entry)``. :func:`verify_receipt` checks the
signature with the log key the auditor holds (never one the receipt names) and, given the
entry's bytes, that the receipt covers that entry. A receipt promises inclusion; that the
log kept the promise is checked with an inclusion proof against a checkpoint
(``sovra-verify prove``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature

from sovra_verify._merkle import leaf_hash, root_from_inclusion
from sovra_verify.errors import BadRequest, VerificationError
from sovra_verify.note import NoteVerifier

__all__ = [
    "RECEIPT_FIELDS",
    "Receipt",
    "batch_promise",
    "check_receipts",
    "find_receipts",
    "promise_bytes",
    "single_promise",
    "verify_receipt",
]

RECEIPT_FIELDS = ("receipt", "decision_receipt", "release_receipt")
"""Where the gateway's answers carry receipts (ingest, access, governance actions)."""

_MAX_PATH = 64
_KEYS = {"origin", "index", "leaf_hash", "time_ms", "signature"}


def single_promise(origin: str, index: int, time_ms: int, leaf: bytes) -> bytes:
    """The bytes the log key signs for the one entry at *index* whose leaf hash is *leaf*."""
    return f"sovra-promise/v1\n{origin}\n{index}\n{time_ms}\n{leaf.hex()}\n".encode()


def batch_promise(origin: str, start: int, size: int, time_ms: int, root: bytes) -> bytes:
    """The bytes the log key signs for the batch ``[start, start + size)`` whose RFC 9162
    root is *root*: the one statement every receipt of the batch carries."""
    return f"sovra-promise/v2\n{origin}\n{start}\n{size}\n{time_ms}\n{root.hex()}\n".encode()


def promise_bytes(
    origin: str,
    index: int,
    leaf: bytes,
    time_ms: int,
    batch: tuple[int, int, Sequence[bytes]] = (0, 0, ()),
) -> bytes:
    """The statement a receipt for the entry at *index* (leaf hash *leaf*) carries: a
    single promise, or with *batch* ``(start, size, path)`` of size > 0 the batch promise
    whose root is rebuilt from *leaf* and its *path*.

    Raises:
        VerificationError: a batch whose path does not fit it.
    """
    start, size, path = batch
    if not size:
        return single_promise(origin, index, time_ms, leaf)
    if not 0 <= index - start < size:
        raise VerificationError(f"receipt index {index} is outside its batch")
    try:
        root = root_from_inclusion(leaf, index - start, size, path)
    except VerificationError as exc:
        raise VerificationError(f"receipt batch path does not fit its batch: {exc}") from None
    return batch_promise(origin, start, size, time_ms, root)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A receipt as the gateway writes it (``LogReceipt.to_dict``), parsed strictly."""

    origin: str
    index: int
    leaf_hash: bytes
    time_ms: int
    signature: bytes = field(repr=False)
    batch_start: int = 0
    batch_size: int = 0
    batch_path: tuple[bytes, ...] = field(default=(), repr=False)

    def signed_bytes(self) -> bytes:
        """The statement the log key signed.

        Raises:
            VerificationError: a batch promise whose path does not fit its batch.
        """
        return promise_bytes(
            self.origin,
            self.index,
            self.leaf_hash,
            self.time_ms,
            (self.batch_start, self.batch_size, self.batch_path),
        )

    @classmethod
    def from_dict(cls, obj: object) -> Receipt:
        """Parse a receipt's JSON object.

        Raises:
            BadRequest: not a receipt: a missing or unknown field, a wrong type, bad hex.
        """
        if not isinstance(obj, Mapping):
            raise BadRequest("a receipt is a JSON object")
        keys = set(obj)
        if not keys >= _KEYS or keys - _KEYS - {"batch"}:
            missing, extra = sorted(_KEYS - keys), sorted(keys - _KEYS - {"batch"})
            raise BadRequest(f"malformed receipt: missing {missing}, unknown {extra}")
        batch = obj.get("batch", {"start": 0, "size": 0, "path": []})
        if not isinstance(batch, Mapping) or set(batch) != {"start", "size", "path"}:
            raise BadRequest("malformed receipt: batch is an object of start, size and path")
        path = batch["path"]
        if not isinstance(path, list) or len(path) > _MAX_PATH:
            raise BadRequest(f"malformed receipt: batch path is a list of at most {_MAX_PATH}")
        origin = obj["origin"]
        if not isinstance(origin, str) or not origin:
            raise BadRequest("malformed receipt: origin is a non-empty string")
        leaf = _hex(obj["leaf_hash"], "leaf_hash")
        if len(leaf) != 32:
            raise BadRequest("malformed receipt: leaf_hash is 32 bytes")
        receipt = cls(
            origin=origin,
            index=_natural(obj["index"], "index"),
            leaf_hash=leaf,
            time_ms=_natural(obj["time_ms"], "time_ms"),
            signature=_hex(obj["signature"], "signature"),
            batch_start=_natural(batch["start"], "batch start"),
            batch_size=_natural(batch["size"], "batch size"),
            batch_path=tuple(_hex(h, "batch path hash") for h in path),
        )
        if len(receipt.signature) != 64:
            raise BadRequest("malformed receipt: signature is 64 bytes (Ed25519)")
        return receipt


def _natural(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"malformed receipt: {what} is a non-negative integer")
    return value


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadRequest(f"malformed receipt: {what} is a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BadRequest(f"malformed receipt: {what} is not hex") from None


def verify_receipt(receipt: Receipt, key: NoteVerifier, entry: bytes | None = None) -> None:
    """Check that *receipt* is the log's promise, signed by *key*, and (given *entry*, the
    entry's exact bytes) that it covers that entry.

    Raises:
        VerificationError: another log's receipt, a signature that does not verify, a
            batch path that does not fit, or an entry it does not cover.
    """
    if receipt.origin != key.name:
        raise VerificationError(
            f"the receipt is for the log {receipt.origin!r}, the key for {key.name!r}"
        )
    if entry is not None and leaf_hash(entry) != receipt.leaf_hash:
        raise VerificationError("the receipt does not cover this entry (its leaf hash differs)")
    try:
        key.public_key.verify(receipt.signature, receipt.signed_bytes())
    except InvalidSignature:
        raise VerificationError("the receipt's signature is not the log key's") from None


def find_receipts(document: Any) -> list[tuple[str, Receipt]]:
    """The receipts in *document*: a receipt itself, or a gateway answer that holds some
    under :data:`RECEIPT_FIELDS` (an ingest or access answer, the page's archive file).

    Raises:
        BadRequest: no receipt in it, or one that is malformed.
    """
    if isinstance(document, Mapping) and set(document) >= _KEYS:
        return [("receipt", Receipt.from_dict(document))]
    if isinstance(document, Mapping):
        found = [(k, Receipt.from_dict(document[k])) for k in RECEIPT_FIELDS if k in document]
        if found:
            return found
    raise BadRequest(f"no receipt found: expected a receipt or an object with {RECEIPT_FIELDS}")


def check_receipts(
    document: Any, key: NoteVerifier, entries: Sequence[bytes] = ()
) -> list[tuple[str, Receipt]]:
    """Verify every receipt in *document* with *key*; each of *entries* must be covered by
    one of them.

    Raises:
        BadRequest: no receipt, or a malformed one.
        VerificationError: a receipt that does not verify, or an entry none covers.
    """
    found = find_receipts(document)
    for _, receipt in found:
        verify_receipt(receipt, key)
    for entry in entries:
        if not any(leaf_hash(entry) == r.leaf_hash for _, r in found):
            raise VerificationError("no receipt here covers the given entry")
    return found
