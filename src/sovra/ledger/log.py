"""The transparency log: append entries, hand out signed receipts, publish checkpoints.

Every entry is persisted before its receipt is signed, so a receipt is never a promise
about something the log could lose. Checkpoints are C2SP signed notes over the RFC 9162
root; because the tree only ever grows, each one is consistent with every earlier one.

Integration is batched (group commit): concurrent :meth:`TransparencyLog.append` calls
queue their entries, and whichever caller takes the write lock first stores the whole
queue in one transaction, extends the tree once and signs one batch promise, whose root
every receipt of the batch proves its entry into. One signature and one fsync serve the
batch, so throughput grows with load instead of stopping at the signing rate.

A log that publishes no checkpoint proves nothing new to an auditor, so a log opened
with ``publish_after_batch`` signs and stores a checkpoint after every batch it
integrates; the server also publishes on a schedule (:mod:`sovra.server.background`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from hashlib import sha256 as _sha256
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra._group import GroupCommit
from sovra.errors import BadRequest, ConfigError, IntegrityError, NotFound, SovraError
from sovra.ledger.storage import (
    MAX_BATCH,
    MAX_ENTRY_BYTES,
    MAX_TAG_CHARS,
    CatchingUp,
    LogStorage,
    RowMarking,
    check_tag,
)
from sovra.model import LogReceipt, batch_promise
from sovra_verify._merkle import EMPTY_ROOT, MerkleTree, leaf_hash, node_hash
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import NoteSigner, open_note, sign_note
from sovra_verify.tiles import (
    MAX_TILE_LEVEL,
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_entry_bundle,
    tile_level_count,
)

__all__ = ["MAX_READ", "TransparencyLog"]

# tlog-tiles entry bundles prefix each entry with a big-endian uint16 length.
_MAX_LOGGED_ENTRY = min(MAX_ENTRY_BYTES, 0xFFFF)

MAX_READ = 10_000
_PAGE = 1_000

_logger = logging.getLogger("sovra.ledger")


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
        *,
        publish_after_batch: bool = False,
    ) -> None:
        """Open the log held by *storage*, rebuilding its tree from the stored leaves.

        Args:
            storage: where entries and checkpoints live.
            signer: the log key; its name MUST be *origin* (the C2SP recommendation,
                which lets an auditor tie a checkpoint to the key that signed it).
            origin: the log's identity, the first line of every checkpoint.
            clock: milliseconds since the UNIX epoch, stamped into receipts.
            publish_after_batch: sign and store a checkpoint after every integrated
                batch, so the newest checkpoint always covers every promised entry.

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
        self._publish_after_batch = publish_after_batch
        self._write_lock = threading.Lock()
        # Appenders queue here; one of them at a time (the leader) integrates what is
        # queued while the others wait, so one signature and one fsync serve them all.
        self._appends = GroupCommit(self._integrate_locked, MAX_BATCH)
        # A storage shared by several writers hands back, with each batch, the leaves the
        # others stored before it: no read of its own to catch up.
        self._catching_up = storage if isinstance(storage, CatchingUp) else None
        self._marking = storage if isinstance(storage, RowMarking) else None
        self._tree_lock = threading.Lock()
        self._tree = MerkleTree(storage.read_leaf_hashes(0, storage.size()))
        self._published_size: int | None = None
        self.on_batch: Callable[[int], None] | None = None
        """Told each integrated batch's size (the operations metrics); MUST NOT raise."""
        self.after_append: Callable[[int], None] | None = None
        """Told, before receipts return, how many entries they need covered by a witnessed
        checkpoint (:mod:`sovra.ledger.witnessing`); may block, MUST NOT raise."""
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

    def stored_size(self) -> int:
        """Number of entries in the storage, which other writers (worker processes) may
        have grown since this process last looked; this process's tree catches up."""
        stored = self._storage.size()
        with self._tree_lock:
            self._catch_up(stored)
            return self._tree.size

    def append(self, entry: bytes, tags: Sequence[str] = ()) -> LogReceipt:
        """Persist one entry and return the log's signed receipt for it.

        Concurrent callers share one transaction and one signature (group commit);
        each returns once its entry is stored.

        Raises:
            BadRequest: empty or oversized entry, or a malformed tag; nothing is stored.
        """
        receipt = self._appends.submit(_check_item(0, (entry, tags)))
        if self.after_append is not None:
            self.after_append(receipt.index + 1)
        return receipt

    @property
    def marks_rows(self) -> bool:
        """Whether :meth:`append_each` takes *marks*: the storage marks rows of its own
        database in the transaction that stores the entries (:class:`RowMarking`)."""
        return self._marking is not None and self._marking.marks_rows

    def append_each(
        self,
        items: Sequence[tuple[bytes, Sequence[str]]],
        marks: Sequence[str] | None = None,
    ) -> list[LogReceipt | SovraError]:
        """Persist entries through the same queue as :meth:`append`, in order; one receipt
        or error per entry.

        Unlike :meth:`append_many` the entries are not one all-or-none batch: a malformed
        one gets its :class:`~sovra.errors.BadRequest` and is not stored, and the others
        share batches (and fsyncs) with whatever else is being appended meanwhile.

        *marks*, one per item, only when :attr:`marks_rows`: the row each entry vouches
        for, which the storage gives the entry's index in the transaction storing it (a
        missing row fails the whole transaction, with whatever else shared it).

        Raises:
            ConfigError: *marks* given to a log whose storage marks no rows.
        """
        if marks is not None and (not self.marks_rows or len(marks) != len(items)):
            raise ConfigError("marks need a storage that marks rows, and one per item")
        results: list[LogReceipt | SovraError | None] = [None] * len(items)
        queued: list[int] = []
        checked: list[_Item] = []
        for n, item in enumerate(items):
            try:
                one = _check_item(n, item)
            except BadRequest as exc:
                results[n] = exc
            else:
                checked.append(one if marks is None else (*one[:3], marks[n]))
                queued.append(n)
        for n, got in zip(queued, self._appends.submit_many(checked), strict=True):
            if not isinstance(got, SovraError | LogReceipt):
                raise got
            results[n] = got
        if self.after_append is not None:
            stored = [r.index + 1 for r in results if isinstance(r, LogReceipt)]
            self.after_append(max(stored, default=0))
        return [r for r in results if r is not None]

    def _integrate_locked(self, batch: list[_Item]) -> list[LogReceipt]:
        """:meth:`_integrate` under the write lock: one queued batch of appends."""
        with self._write_lock:
            return self._integrate(batch)

    def append_many(self, items: Sequence[tuple[bytes, Sequence[str]]]) -> list[LogReceipt]:
        """Persist entries atomically, in order; return one signed receipt per entry.

        The whole batch shares one signature: each receipt proves its entry into the
        batch's root (:class:`~sovra.model.LogReceipt`, ``batch_path``).

        Raises:
            BadRequest: any entry or tag is malformed, or the batch is too large;
                nothing is stored.
        """
        if len(items) > MAX_BATCH:
            raise BadRequest(f"a batch holds at most {MAX_BATCH} entries, got {len(items)}")
        batch = _check_items(items)
        if not batch:
            return []
        with self._write_lock:
            receipts = self._integrate(batch)
        if self.after_append is not None:
            self.after_append(receipts[-1].index + 1)
        return receipts

    def _integrate(self, batch: list[_Item]) -> list[LogReceipt]:
        """Store *batch*, grow the tree, sign one promise. Caller holds the write lock."""
        # Read the clock before persisting: a broken clock must not leave entries
        # stored without the receipts promised for them.
        time_ms = self._clock()
        if isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0:
            raise ConfigError(f"the log clock returned {time_ms!r}, not UNIX milliseconds")
        others: list[bytes] = []
        marks = [(off, item[3]) for off, item in enumerate(batch) if len(item) == 4]
        plain = [item[:3] for item in batch] if marks else cast("list[_Plain]", batch)
        if marks:
            assert self._marking is not None  # append_each takes marks only then
            indices = self._marking.append_marked(plain, marks)
            known = indices[0]
        elif self._catching_up is None:
            indices = self._storage.append_batch(plain)
            known = indices[0]
        else:
            with self._tree_lock:
                known = self._tree.size
            indices, others = self._catching_up.append_batch_after(plain, known)
        first = indices[0]
        if indices != list(range(first, first + len(batch))):
            raise IntegrityError("storage assigned indices that are not one dense run")
        if known + len(others) != first:
            raise IntegrityError("storage returned the wrong leaves before the batch")
        leaves = [item[1] for item in batch]
        with self._tree_lock:
            if self._tree.size < first:  # readers may have caught up part of it meanwhile
                self._tree.extend(others[self._tree.size - known :])
            self._catch_up(first)
            if self._tree.size != first:
                raise IntegrityError(f"storage assigned index {first} out of order")
            self._tree.extend(leaves)
            reached = (self._tree.size, self._tree.root()) if self._publish_after_batch else None
        paths, root = _batch_paths(leaves)
        count = len(batch)
        if self.on_batch is not None:
            self.on_batch(count)
        signature = self._signer.sign(batch_promise(self._origin, first, count, time_ms, root))
        origin = self._origin
        receipts = [
            LogReceipt(origin, first + n, leaf, time_ms, signature, first, count, path)
            for n, (leaf, path) in enumerate(zip(leaves, paths, strict=True))
        ]
        if reached is not None:
            self._publish_quietly(reached)
        return receipts

    def _publish_quietly(self, reached: tuple[int, bytes]) -> None:
        """Publish after a batch; a failure is logged, never raised to the appenders.

        The batch is stored and its promise signed: failing the appends now would
        deny receipts for entries the log holds. The next batch, the schedule or the
        next reader of ``/v1/log/checkpoint`` publishes again.

        *reached* is the size and root the batch brought the tree to: the checkpoint
        covers the batch without asking the storage how far other writers (worker
        processes) got meanwhile, which their own batches publish.
        """
        try:
            # The batch is as durable as the storage makes it; a note lost with a power
            # failure is signed again, byte for byte, for the same size.
            self._publish(durable=False, reached=reached)
        except SovraError as exc:
            failure = exc.diagnostics()
        else:
            return
        _logger.error("publishing a checkpoint after a batch failed: %s", failure)

    def _catch_up(self, size: int) -> None:
        """Load leaves another writer of the same storage appended before *size*."""
        if size > self._tree.size:
            self._tree.extend(self._storage.read_leaf_hashes(self._tree.size, size))

    def _reach(self, size: int) -> None:
        """Before answering about the first *size* entries: if this process's tree is
        smaller, catch up on what other writers (worker processes) appended."""
        if size <= self._tree.size:
            return
        stored = self._storage.size()
        with self._tree_lock:
            self._catch_up(stored)

    def entry(self, index: int) -> bytes:
        """The entry at *index*, checked against its leaf hash.

        Raises:
            NotFound: there is no such entry.
            IntegrityError: the stored entry no longer matches its leaf hash.
        """
        self._reach(index + 1)
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
        self._reach(end)
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
        if size is not None:
            self._reach(size)
        with self._tree_lock:
            return self._tree.root(size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of entry *index* in the tree of *size* entries.

        Raises:
            BadRequest: *size* beyond the log or *index* not below it.
        """
        self._reach(size)
        with self._tree_lock:
            return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Hashes proving the *new_size* tree extends the *old_size* one.

        Raises:
            BadRequest: sizes not in ``0 < old_size <= new_size <= size``.
        """
        self._reach(new_size)
        with self._tree_lock:
            return self._tree.consistency_proof(old_size, new_size)

    def checkpoint(self, *, durable: bool = True) -> str:
        """Sign and store a checkpoint for the current size, unless the latest has it.

        Args:
            durable: False when every entry is known durable (their appends returned),
                so that a note lost with a power failure loses nothing: the storage may
                then keep it without a sync of its own (see
                :meth:`LogStorage.add_checkpoint`).

        Returns:
            The checkpoint note covering every entry appended so far.
        """
        with self._write_lock:
            return self._publish(durable=durable)

    def _publish(self, *, durable: bool = True, reached: tuple[int, bytes] | None = None) -> str:
        """:meth:`checkpoint`'s work, for the tree as stored or, if given, as *reached*
        (size, root). Caller holds the write lock."""
        others = reached is None
        if reached is None:
            stored = self._storage.size()
            with self._tree_lock:
                self._catch_up(stored)
                reached = self._tree.size, self._tree.root()
        size, root = reached
        if size == self._published_size:
            latest = self._storage.latest_checkpoint()
            if latest is not None:
                return latest
        elif others:
            # Another writer (a worker, a replica) may have published this size already:
            # every writer's schedule then adds one checkpoint per interval in all.
            newer = self._newer_published(size)
            if newer is not None:
                return newer
        note = sign_note(Checkpoint(self._origin, size, root).to_text(), [self._signer])
        try:
            self._storage.add_checkpoint(size, note, durable=durable)
        except BadRequest:
            newer = self._newer_published(size)
            if newer is None:
                raise
            return newer
        self._published_size = size
        return note

    def _newer_published(self, size: int) -> str | None:
        """The latest stored checkpoint if another writer of the storage published one
        of *size* or more meanwhile (replicas sharing a database publish after their own
        batches), checked like the one found at start-up; None otherwise.

        Raises:
            ConfigError: the stored checkpoint is not this log's.
            IntegrityError: the stored leaves do not reproduce it.
        """
        latest = self._storage.latest_checkpoint()
        if latest is None:
            return None
        stored = self._storage.size()
        with self._tree_lock:
            self._catch_up(stored)
            published = self._check_stored_checkpoint(latest)
        if published < size:
            return None
        self._published_size = published
        return latest

    def checkpoints(self) -> list[str]:
        """Every published checkpoint note, oldest first."""
        return self._storage.checkpoints()

    def tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        """The tlog-tiles hash tile ``tile/<level>/<index>[.p/<width>]``: concatenated hashes.

        A tile of a given width never changes once the tree has grown past it, so the
        bytes may be cached forever.

        Raises:
            BadRequest: *level* or *width* out of range.
            NotFound: the tree does not yet hold that many hashes at that level.
        """
        _check_tile_coordinates(level, index, width)
        height = level * TILE_HEIGHT
        start = index * TILE_WIDTH
        self._reach((start + width) << height)
        with self._tree_lock:
            available = tile_level_count(self._tree.size, level)
            if start + width > available:
                raise NotFound(
                    f"tile {level}/{index} of width {width} is beyond the log of size "
                    f"{self._tree.size}"
                )
            return b"".join(self._tree.level_hashes(height, start, start + width))

    def entry_bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        """The tlog-tiles entry bundle ``tile/entries/<index>[.p/<width>]``.

        Raises:
            BadRequest: *width* out of range.
            NotFound: the log does not hold that many entries yet.
            IntegrityError: a stored entry no longer matches its leaf hash.
        """
        start, entries = self._bundle_entries(index, width)
        return encode_entry_bundle(self._checked(start, entries))

    def stored_entry_bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        """The entry bundle as storage holds it, unchecked: the evidence of an alteration.

        :meth:`entry_bundle` refuses a bundle holding an entry that no longer matches
        its leaf hash. An auditor given these bytes hashes each entry against the
        level-0 tile (which the signed roots authenticate) and names the altered entry
        itself, trusting nothing the log says about it.

        Raises:
            BadRequest: *width* out of range.
            NotFound: the log does not hold that many entries yet.
            IntegrityError: an entry is missing from storage.
        """
        return encode_entry_bundle(self._bundle_entries(index, width)[1])

    def _bundle_entries(self, index: int, width: int) -> tuple[int, list[bytes]]:
        """The first index and the stored entries of bundle *index* of *width*."""
        _check_tile_coordinates(0, index, width)
        start = index * TILE_WIDTH
        size = self.size
        if start + width > size:
            raise NotFound(
                f"entry bundle {index} of width {width} is beyond the log of size {size}"
            )
        return start, self._storage.read_entries(start, start + width)

    def close(self) -> None:
        """Close the storage; the log is unusable afterwards."""
        with self._write_lock:
            self._storage.close()

    def latest_checkpoint(self) -> str | None:
        """The newest published checkpoint note, if any."""
        return self._storage.latest_checkpoint()


_Plain = tuple[bytes, bytes, tuple[str, ...]]
_Item = _Plain | tuple[bytes, bytes, tuple[str, ...], str]
"""``(entry, leaf hash, tags)``, and the row it marks when the storage marks rows."""


def _check_items(items: Sequence[tuple[bytes, Sequence[str]]]) -> list[_Item]:
    """Validate a batch; the common shapes (bytes, zero or one tag) take a short path."""
    out: list[_Item] = []
    append = out.append
    for n, item in enumerate(items):
        if type(item) is tuple and len(item) == 2:
            entry, tags = item
            if type(entry) is bytes and 0 < len(entry) <= _MAX_LOGGED_ENTRY:
                kind = type(tags)
                if (kind is tuple or kind is list) and len(tags) <= 1:
                    if not tags:
                        append((entry, _sha256(b"\x00" + entry).digest(), ()))
                        continue
                    tag = tags[0]
                    if type(tag) is str and 0 < len(tag) <= MAX_TAG_CHARS and tag.isprintable():
                        append((entry, _sha256(b"\x00" + entry).digest(), (tag,)))
                        continue
        append(_check_item(n, item))
    return out


def _check_item(n: int, item: object) -> _Item:
    """Validate one ``(entry, tags)`` pair before it joins any batch."""
    if not isinstance(item, tuple) or len(item) != 2:
        raise BadRequest(f"batch item {n} must be (entry, tags)")
    entry, tags = item
    if not isinstance(entry, bytes | bytearray) or not entry:
        raise BadRequest(f"entry {n} must be non-empty bytes")
    if len(entry) > _MAX_LOGGED_ENTRY:
        raise BadRequest(f"entry {n} is {len(entry)} bytes, over {_MAX_LOGGED_ENTRY}")
    if (type(tags) is not tuple and type(tags) is not list) and (
        isinstance(tags, str) or not isinstance(tags, Sequence)
    ):
        raise BadRequest(f"tags of entry {n} must be a sequence of strings")
    data = entry if type(entry) is bytes else bytes(entry)
    # Duplicates collapse: a tag either marks an entry or it does not.
    return data, _sha256(b"\x00" + data).digest(), tuple(dict.fromkeys(map(check_tag, tags)))


def _batch_paths(leaves: list[bytes]) -> tuple[list[tuple[bytes, ...]], bytes]:
    """Every leaf's RFC 9162 audit path in the tree of *leaves*, and that tree's root.

    Built bottom-up: an odd last node rises unchanged, which yields the same
    left-balanced tree as the recursive definition, and keeps the node above leaf
    ``i`` at index ``i >> k`` of level ``k``.
    """
    if not leaves:
        return [], EMPTY_ROOT
    levels = [leaves]
    level = leaves
    while len(level) > 1:
        count = len(level)
        level = [node_hash(level[i], level[i + 1]) for i in range(0, count - 1, 2)] + (
            [level[-1]] if count & 1 else []
        )
        levels.append(level)
    n = len(leaves)
    if n == 1:
        return [()], leaves[0]
    # One column per level: the sibling of each leaf's ancestor there, or None where
    # that ancestor is an odd last node carried up without a sibling.
    columns: list[list[bytes | None]] = []
    for k, lv in enumerate(levels[:-1]):
        padded: list[bytes | None] = [*lv, None] if len(lv) & 1 else list(lv)
        columns.append([padded[(i >> k) ^ 1] for i in range(n)])
    paths: list[tuple[bytes, ...]] = list(zip(*columns, strict=True))
    for i in range(n):
        if None in paths[i]:
            paths[i] = tuple(h for h in paths[i] if h is not None)
    return paths, level[0]


def _check_tile_coordinates(level: int, index: int, width: int) -> None:
    if not 0 <= level <= MAX_TILE_LEVEL:
        raise BadRequest(f"tile level {level} is not in 0..{MAX_TILE_LEVEL}")
    if index < 0:
        raise BadRequest(f"tile index {index} is negative")
    if not 1 <= width <= TILE_WIDTH:
        raise BadRequest(f"tile width {width} is not in 1..{TILE_WIDTH}")
