"""The transparency log: append entries, hand out signed receipts, publish checkpoints.

Every entry is persisted before its receipt is signed, so a receipt is never a promise
about something the log could lose. Checkpoints are C2SP signed notes over the RFC 9162
root; because the tree only ever grows, each one is consistent with every earlier one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra.errors import BadRequest, ConfigError, IntegrityError, NotFound
from sovra.ledger._merkle import MerkleTree, leaf_hash
from sovra.ledger.checkpoint import Checkpoint
from sovra.ledger.note import NoteSigner, open_note, sign_note
from sovra.ledger.storage import MAX_BATCH, MAX_ENTRY_BYTES, LogStorage
from sovra.model import LogReceipt

__all__ = ["MAX_READ", "TransparencyLog"]

MAX_READ = 10_000
_PAGE = 1_000


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class TransparencyLog:
    """An append-only Merkle log over a :class:`~sovra.ledger.storage.LogStorage`.

    Safe to share between threads: appends and checkpoints are serialised, and proofs
    and roots are computed under a short lock on the in-memory tree.
    """

    def __init__(
        self,
        storage: LogStorage,
        signer: NoteSigner,
        origin: str,
        clock: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        """Open the log held by *storage*, rebuilding its tree from the stored leaves.

        Args:
            storage: where entries and checkpoints live.
            signer: the log key; its name MUST be *origin* (the C2SP recommendation,
                which lets an auditor tie a checkpoint to the key that signed it).
            origin: the log's identity, the first line of every checkpoint.
            clock: milliseconds since the UNIX epoch, stamped into receipts.

        Raises:
            ConfigError: the signer's name is not the origin, or the stored checkpoints
                belong to another log.
            IntegrityError: the stored leaves do not reproduce the latest checkpoint.
        """
        if signer.name != origin:
            raise ConfigError(f"log key is named {signer.name!r}, not the origin {origin!r}")
        if origin.startswith("sovra-promise/"):
            # Receipts signed by this key start with a "sovra-promise/v1" line; no
            # checkpoint, whose first line is the origin, may ever read like one.
            raise ConfigError("a log origin must not start with 'sovra-promise/'")
        self._storage = storage
        self._signer = signer
        self._origin = origin
        self._clock = clock
        self._write_lock = threading.Lock()
        self._tree_lock = threading.Lock()
        self._tree = MerkleTree(storage.read_leaf_hashes(0, storage.size()))
        self._published_size: int | None = None
        latest = storage.latest_checkpoint()
        if latest is not None:
            self._published_size = self._check_stored_checkpoint(latest)

    def _check_stored_checkpoint(self, note: str) -> int:
        try:
            text, _ = open_note(note, [self._signer.verifier])
            cp = Checkpoint.parse(text)
        except (BadRequest, IntegrityError) as exc:
            raise ConfigError(
                f"the latest stored checkpoint is not this log's: {exc.message}"
            ) from None
        if cp.origin != self._origin:
            raise ConfigError(f"stored checkpoints are for origin {cp.origin!r}")
        if cp.size > self._tree.size:
            raise IntegrityError(
                f"storage holds {self._tree.size} entries but a published checkpoint "
                f"covers {cp.size}"
            )
        if self._tree.root(cp.size) != cp.root_hash:
            raise IntegrityError(
                f"stored leaves do not reproduce the published root at size {cp.size}"
            )
        return cp.size

    @property
    def origin(self) -> str:
        """The log's identity."""
        return self._origin

    @property
    def verifier_key(self) -> str:
        """The log key as a C2SP vkey string, for auditors and clients."""
        return self._signer.vkey

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The log key, which checks receipts (:meth:`LogReceipt.verify`)."""
        return self._signer.public_key

    @property
    def size(self) -> int:
        """Number of entries."""
        with self._tree_lock:
            return self._tree.size

    def append(self, entry: bytes, tags: Sequence[str] = ()) -> LogReceipt:
        """Persist one entry and return the log's signed receipt for it.

        Raises:
            BadRequest: empty or oversized entry, or a malformed tag; nothing is stored.
        """
        return self.append_many([(entry, tags)])[0]

    def append_many(self, items: Sequence[tuple[bytes, Sequence[str]]]) -> list[LogReceipt]:
        """Persist entries atomically, in order; return one signed receipt per entry.

        Raises:
            BadRequest: any entry or tag is malformed, or the batch is too large;
                nothing is stored.
        """
        if len(items) > MAX_BATCH:
            raise BadRequest(f"a batch holds at most {MAX_BATCH} entries, got {len(items)}")
        batch = []
        for n, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) != 2:
                raise BadRequest(f"batch item {n} must be (entry, tags)")
            entry, tags = item
            if not isinstance(entry, bytes | bytearray):
                raise BadRequest(f"entry {n} must be bytes")
            if len(entry) > MAX_ENTRY_BYTES:
                raise BadRequest(f"entry {n} is {len(entry)} bytes, over {MAX_ENTRY_BYTES}")
            batch.append((bytes(entry), leaf_hash(bytes(entry)), tags))
        if not batch:
            return []
        with self._write_lock:
            # Read the clock before persisting: a broken clock must not leave entries
            # stored without the receipts promised for them.
            time_ms = self._clock()
            if isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0:
                raise ConfigError(f"the log clock returned {time_ms!r}, not UNIX milliseconds")
            indices = self._storage.append_batch(batch)
            with self._tree_lock:
                self._catch_up(indices[0])
                for index, (_, leaf, _) in zip(indices, batch, strict=True):
                    if self._tree.append(leaf) != index:
                        raise IntegrityError(f"storage assigned index {index} out of order")
        receipts = []
        for index, (_, leaf, _) in zip(indices, batch, strict=True):
            unsigned = LogReceipt(self._origin, index, leaf, time_ms)
            receipts.append(
                LogReceipt(
                    self._origin, index, leaf, time_ms, self._signer.sign(unsigned.signed_bytes())
                )
            )
        return receipts

    def _catch_up(self, size: int) -> None:
        """Load leaves another writer of the same storage appended before *size*."""
        if size > self._tree.size:
            self._tree.extend(self._storage.read_leaf_hashes(self._tree.size, size))

    def entry(self, index: int) -> bytes:
        """The entry at *index*, checked against its leaf hash.

        Raises:
            NotFound: there is no such entry.
            IntegrityError: the stored entry no longer matches its leaf hash.
        """
        size = self.size
        if not 0 <= index < size:
            raise NotFound(f"no log entry {index} (the log has {size})")
        return self._checked(index, self._storage.read_entries(index, index + 1))[0]

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``, at most :data:`MAX_READ`, checked against their leaves.

        Raises:
            BadRequest: the range is not inside the log or is too long.
            IntegrityError: a stored entry no longer matches its leaf hash.
        """
        if end - start > MAX_READ:
            raise BadRequest(f"read at most {MAX_READ} entries at a time")
        size = self.size
        if not 0 <= start <= end <= size:
            raise BadRequest(f"range [{start}, {end}) is not inside the log of size {size}")
        return self._checked(start, self._storage.read_entries(start, end))

    def _checked(self, start: int, entries: list[bytes]) -> list[bytes]:
        """*entries* read from *start*, after checking each against the tree's leaf."""
        with self._tree_lock:
            expected = [self._tree.leaf(start + n) for n in range(len(entries))]
        for n, (data, leaf) in enumerate(zip(entries, expected, strict=True)):
            if leaf_hash(data) != leaf:
                raise IntegrityError(f"stored log entry {start + n} does not match its leaf hash")
        return entries

    def iter_entries(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Entries ``[start, end)`` (default: to the current end), read page by page.

        Entries are not checked against their leaf hashes here: auditors iterate to
        recompute the tree themselves, and must see what storage really holds.

        Raises:
            BadRequest: the range is not inside the log (raised here, not on iteration).
        """
        size = self.size
        end = size if end is None else end
        if not 0 <= start <= end <= size:
            raise BadRequest(f"range [{start}, {end}) is not inside the log of size {size}")
        return self._pages(start, end)

    def _pages(self, start: int, end: int) -> Iterator[bytes]:
        for page in range(start, end, _PAGE):
            yield from self._storage.read_entries(page, min(page + _PAGE, end))

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``[start, end)``, at most :data:`MAX_READ` of them.

        Raises:
            BadRequest: the range is not inside the log or is too long.
        """
        if end - start > MAX_READ:
            raise BadRequest(f"read at most {MAX_READ} leaf hashes at a time")
        size = self.size
        if not 0 <= start <= end <= size:
            raise BadRequest(f"range [{start}, {end}) is not inside the log of size {size}")
        return self._storage.read_leaf_hashes(start, end)

    def find(self, tag: str) -> list[int]:
        """Indices of the entries carrying *tag*, ascending.

        Raises:
            BadRequest: *tag* is malformed.
        """
        return self._storage.find(tag)

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root of the first *size* entries (default: all).

        Raises:
            BadRequest: *size* is negative or beyond the log.
        """
        with self._tree_lock:
            return self._tree.root(size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of entry *index* in the tree of *size* entries.

        Raises:
            BadRequest: *size* beyond the log or *index* not below it.
        """
        with self._tree_lock:
            return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Hashes proving the *new_size* tree extends the *old_size* one.

        Raises:
            BadRequest: sizes not in ``0 < old_size <= new_size <= size``.
        """
        with self._tree_lock:
            return self._tree.consistency_proof(old_size, new_size)

    def checkpoint(self) -> str:
        """Sign and store a checkpoint for the current size, unless the latest has it.

        Returns:
            The checkpoint note covering every entry appended so far.
        """
        with self._write_lock:
            stored = self._storage.size()
            with self._tree_lock:
                self._catch_up(stored)
                size = self._tree.size
                root = self._tree.root()
            if size == self._published_size:
                latest = self._storage.latest_checkpoint()
                if latest is not None:
                    return latest
            note = sign_note(Checkpoint(self._origin, size, root).to_text(), [self._signer])
            self._storage.add_checkpoint(size, note)
            self._published_size = size
            return note

    def checkpoints(self) -> list[str]:
        """Every published checkpoint note, oldest first."""
        return self._storage.checkpoints()

    def latest_checkpoint(self) -> str | None:
        """The newest published checkpoint note, if any."""
        return self._storage.latest_checkpoint()
