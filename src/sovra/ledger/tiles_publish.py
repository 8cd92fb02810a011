"""Publishing the log as static C2SP tlog-tiles files into a :class:`TileStore`.

The database stays the log's source of truth: the sequencer writes entries there, the
server answers from there, and a publisher copies what a checkpoint covers into a folder
or a bucket from which a CDN serves the log to anyone (``sovra-verify tiles URL``).

One round of :meth:`TilePublisher.publish`:

1. take the checkpoint to publish and its size N: the log's newest (signing one if the log
   grew since its last); with witnesses configured, the newest one their quorum cosigned,
   as a signed note with their cosignature lines (C2SP tlog-cosignature), or, while no
   checkpoint has a quorum yet, the newest with the lines it has;
2. write every tile and entry bundle the tree of N has and the store lacks: from the
   tiles holding the size published before, up to N, at every level; full tiles and
   partial tiles alike are written once, as their paths never change their bytes;
3. replace the store's checkpoint by this one, unless the store holds a larger one
   (another replica published further meanwhile), or one of the same size that carries
   as many cosignatures by the configured witnesses or more: a checkpoint cosigned since
   replaces the same checkpoint published with fewer lines, never the other way round;
4. remove the partial tiles and bundles that the tree of N has made full: those of the
   tiles that were partial in the checkpoint the store held before (this round's start,
   and the one the swap found), at every level.

The checkpoint is written last, so a reader who follows it finds every file it needs.
Partial tiles go only after it, and only those whose full tile the store holds and that
neither it nor any later checkpoint names (C2SP tlog-tiles allows a log to delete a partial
tile once its full tile is available). A reader who fetched the checkpoint before may
then find a partial tile gone; the full tile is there, and its first W hashes are that
partial tile (``sovra-verify tiles`` falls back to it, as the spec lets clients do).
Partial tiles a round did not remove (a round cut short after its checkpoint, or another
replica's of a size never published) stay until ``--repair``, which lists the store and
removes every one whose full tile is there. A store that may write but not delete
(``remove_partial_tiles = false`` in ``[log.tiles]``) keeps every partial tile: the
publisher then removes none, not even with ``--repair``. A removal the store refuses is
logged as a warning the first time, then at most once an hour while it keeps failing.
A round that fails (the bucket unreachable, a write refused) loses nothing: the entries
are in the database, the store's checkpoint still names what it fully holds, and the
next round starts from the size published last and catches up. The server runs the
rounds in a background thread (:meth:`TilePublisher.running`), so a failing store never
holds up an append or a request; ``sovra log publish-tiles`` runs one round by hand (a
backfill of an existing log, with a progress bar).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from sovra.errors import (
    BadRequest,
    ConfigError,
    IntegrityError,
    NotFound,
    SovraError,
    VerificationError,
)
from sovra.ledger.cosigning import CheckpointCosignatures
from sovra.ledger.log import TransparencyLog
from sovra.ledger.tiles_store import TileStore
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureVerifier
from sovra_verify.note import NoteVerifier, open_note
from sovra_verify.tiles import (
    TILE_WIDTH,
    entries_path,
    parse_tile_path,
    tile_level_count,
    tile_path,
)

__all__ = ["Published", "TilePublisher"]

_logger = logging.getLogger("sovra.ledger")
_MAX_BACKOFF_S = 60.0
_REMOVAL_WARNING_EVERY_S = 3600.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Published:
    """What one round published.

    Attributes:
        size: the tree size the store's files now cover.
        previous: the size they covered before the round.
        files: tiles and entry bundles written (files already there are not counted).
        bytes: their bytes.
        checkpoint: whether the store's checkpoint was replaced.
        removed: partial tiles and bundles removed, their full ones being there.
        cosignatures: how many configured witnesses cosigned the checkpoint this round
            offered (the store keeps a larger one, or one as cosigned, if it has it).
    """

    size: int
    previous: int
    files: int
    bytes: int
    checkpoint: bool
    removed: int = 0
    cosignatures: int = 0


class TilePublisher:
    """Copies a log's tiles, entry bundles and checkpoint into a :class:`TileStore`.

    Safe to share between threads: rounds run one at a time.
    """

    def __init__(
        self,
        log: TransparencyLog,
        store: TileStore,
        cosignatures: CheckpointCosignatures | None = None,
        *,
        sign: bool = True,
        remove_partials: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Publish *log* into *store*; with *cosignatures* that has witnesses, the
        checkpoint published is the one their quorum cosigned, with their lines. Not to
        *sign*, a round publishes up to the newest checkpoint the log has stored and signs
        none (a copy of a log that nothing appends to: ``sovra migrate``). Not to
        *remove_partials*, partial tiles stay once their full tile is there (a store that
        may write but not delete). *clock* (seconds) spaces the warnings about removals
        the store refuses."""
        self._log = log
        self._sign = sign
        self._remove_partials = remove_partials
        self._clock = clock
        self._removal_warned: float | None = None  # when a failed removal was last logged
        self._removals_failed = 0  # rounds whose removal failed since then
        self._store = store
        self._verifier = NoteVerifier.from_vkey(log.verifier_key)
        witnesses = cosignatures.witnesses if cosignatures is not None else []
        self._cosignatures = cosignatures if witnesses else None
        self._witnesses = [CosignatureVerifier.from_vkey(w) for w in witnesses]
        self._lock = threading.Lock()
        self._published: int | None = None  # what the store's checkpoint covers
        self._offered: bytes | None = None  # the note last offered to the store's swap

    @property
    def store(self) -> TileStore:
        """Where the files go."""
        return self._store

    def _size_of(self, note: bytes | str) -> int:
        """The size of a checkpoint note signed by this log.

        Raises:
            IntegrityError: not a checkpoint of this log, or its signature fails.
        """
        try:
            text, _ = open_note(note, [self._verifier])
            checkpoint = Checkpoint.parse(text)
        except (BadRequest, IntegrityError) as exc:
            raise IntegrityError(f"not a checkpoint signed by this log: {exc.message}") from None
        if checkpoint.origin != self._log.origin:
            raise IntegrityError(f"a checkpoint of origin {checkpoint.origin!r}")
        return checkpoint.size

    def published_size(self) -> int:
        """The tree size the store's checkpoint covers (0 for none, or for one that is
        not this log's: a round then writes every file again and replaces it).

        Raises:
            ConfigError: the store holds a checkpoint of this log beyond the log's size
                (the database lost entries, or it is another deployment of one key).
            Unavailable: the store cannot be reached.
        """
        found = self._store.get("checkpoint")
        if found is None:
            return 0
        try:
            size = self._size_of(found)
        except IntegrityError as exc:
            problem: str | None = exc.message
        else:
            problem = None
        if problem is not None:
            _logger.error(
                "the checkpoint in %s is not this log's (%s): publishing every tile again",
                self._store.where,
                problem,
            )
            return 0
        held = self._log.stored_size()
        if size > held:
            raise ConfigError(
                f"{self._store.where} holds a checkpoint of size {size}, but the log holds "
                f"{held} entries: it is not this log's place, or the log lost entries"
            )
        return size

    def publish(self, *, progress: Progress | None = None, repair: bool = False) -> Published:
        """Publish up to the log's newest checkpoint (one round; see the module).

        Args:
            progress: called with ``(files done, files to write)``.
            repair: replace files the store holds with other bytes than the log's, and
                remove every partial tile whose full tile the store holds (none when
                not to remove partials).

        Raises:
            IntegrityError: the store holds other bytes at a path than the log (without
                *repair*), or the log's storage no longer matches its leaves.
            Unavailable: the store cannot be reached; nothing is lost, retry.
            ConfigError: the store refuses the writes.
            NotFound: not to sign, and the log has no checkpoint yet.
        """
        with self._lock:
            return self._round(progress, repair)

    def _round(self, progress: Progress | None, repair: bool) -> Published:
        note = self._checkpoint().encode()
        size = self._size_of(note)
        if self._published is None or repair:
            self._published = 0 if repair else self.published_size()
        start = self._published
        cosigned = self._cosigned_by(note)
        if not repair and (size < start or (size == start and note == self._offered)):
            return Published(start, start, 0, 0, False, 0, cosigned)
        jobs = _files(start, size)
        files, written = self._write(jobs, progress, repair)
        swapped, seen = self._swap(note, size)
        self._published, self._offered = size, note
        full = {_path(job) for job in jobs if job[2] == TILE_WIDTH}  # in the store now
        removed = self._clean([start, *seen], size, repair, full) if self._remove_partials else 0
        return Published(size, start, files, written, swapped, removed, cosigned)

    def _checkpoint(self) -> str:
        """The checkpoint note to publish (see the module): the log's newest, published
        now if the log grew since the schedule's last; with witnesses, the newest their
        quorum cosigned, or while none is, the newest with the lines it has.

        Raises:
            NotFound: not to sign, and the log has no checkpoint yet.
        """
        if self._cosignatures is None:
            if self._sign:
                return self._log.checkpoint()
            note = self._log.latest_checkpoint()
            if note is None:
                raise NotFound("the log has no checkpoint yet")
            return note
        try:
            return self._cosignatures.cosigned_checkpoint()
        except NotFound:
            return self._cosignatures.checkpoint(sign=self._sign)

    def _cosigned_by(self, note: bytes) -> int:
        """How many configured witnesses validly cosigned *note* (0 when a line of one of
        them does not verify: not a note to keep)."""
        if not self._witnesses:
            return 0
        try:
            _, names = open_note(note, [self._verifier, *self._witnesses])
        except (BadRequest, VerificationError):
            return 0
        return len([name for name in names if name != self._verifier.name])

    def _write(self, jobs: list[_Job], progress: Progress | None, repair: bool) -> tuple[int, int]:
        """Write the files of *jobs* (:func:`_files`); how many were written (not there
        yet) and their bytes."""
        done = [0, 0]  # files written, bytes
        count = [0]
        total = len(jobs)
        counted = threading.Lock()

        def write(job: _Job) -> None:
            level, index, width = job
            if level is None:
                data = self._log.entry_bundle(index, width)
            else:
                data = self._log.tile(level, index, width)
            wrote = self._store.put_once(_path(job), data, repair=repair)
            with counted:
                count[0] += 1
                if wrote:
                    done[0] += 1
                    done[1] += len(data)
                if progress is not None:
                    progress(count[0], total)

        if self._store.parallel > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(min(self._store.parallel, len(jobs))) as pool:
                for _ in pool.map(write, jobs):
                    pass
        else:
            for job in jobs:
                write(job)
        return done[0], done[1]

    def _swap(self, encoded: bytes, size: int) -> tuple[bool, list[int]]:
        """Replace the store's checkpoint by *encoded* (of *size*) unless it holds one as
        large; whether it was replaced, and the sizes of this log's checkpoints found."""
        seen: list[int] = []

        def newer(current: bytes | None) -> bytes | None:
            if current is not None and current != encoded:
                try:
                    held = self._size_of(current)
                except IntegrityError:
                    pass  # not this log's: replace it
                else:
                    seen.append(held)
                    if held > size or (held == size and not self._better(encoded, current)):
                        return None  # another publisher went as far or further
            return None if current == encoded else encoded

        return self._store.swap_checkpoint(newer), seen

    def _better(self, new: bytes, current: bytes) -> bool:
        """Whether *new* should replace *current*, a checkpoint of this log of the same
        size: the same checkpoint, cosigned by more of the configured witnesses."""
        if open_note(new, [self._verifier])[0] != open_note(current, [self._verifier])[0]:
            _logger.error(
                "%s holds a checkpoint of this log's size %d with another root: a split "
                "view, or the store was altered; it is left as it is",
                self._store.where,
                self._size_of(new),
            )
            return False
        return self._cosigned_by(new) > self._cosigned_by(current)

    def _clean(self, before: list[int], size: int, repair: bool, full: set[str]) -> int:
        """Remove the partial tiles that were the newest of their level in a tree of one
        of the sizes *before* (or, with *repair*, any) and are full in the tree of *size*;
        how many (0 when it failed). Run after the swap: the store's checkpoint is of
        *size* or more, so it names none of them, and the round wrote (or found) their
        full tiles (*full*; any other is looked for first).

        Raises:
            SovraError: with *repair*, a listing or a removal failed (without, it is
                logged: the copy is whole, and a partial tile left over harms no reader).
        """
        try:
            if repair:
                stale = self._store.partials()
            else:
                stale = [
                    path for full in _filled(before, size) for path in self._store.partials(full)
                ]
            removed = self._remove(stale, size, dict.fromkeys(full, True))
        except SovraError as exc:
            if repair:
                raise
            self._removal_failed(exc)
            return 0
        if removed:
            self._removal_warned, self._removals_failed = None, 0  # deletes work (again)
        return removed

    def _removal_failed(self, exc: SovraError) -> None:
        """Log a removal that failed: the first one, then at most one an hour while they
        keep failing (a store that refuses deletes fails at every round that fills a
        tile), with how many failed unlogged since."""
        self._removals_failed += 1
        now = self._clock()
        if self._removal_warned is not None and (
            now - self._removal_warned < _REMOVAL_WARNING_EVERY_S
        ):
            return
        again = (
            ""
            if self._removal_warned is None
            else (f" (in {self._removals_failed} rounds since the last warning)")
        )
        self._removal_warned, self._removals_failed = now, 0
        _logger.warning(
            "the log's tiles are published to %s, but old partial tiles could not be "
            "removed%s: %s. The copy is whole; `sovra log publish-tiles --repair` removes "
            "them, and remove_partial_tiles = false in [log.tiles] stops the removals (a "
            "store that may write but not delete). Logged again at most once an hour",
            self._store.where,
            again,
            exc.diagnostics(),
        )

    def _remove(self, paths: list[str], size: int, present: dict[str, bool]) -> int:
        """Delete those of *paths* whose tile is full in the tree of *size* and whose full
        tile the store holds (*present* says for those known); how many."""
        gone = []
        for path in paths:
            level, index, _ = parse_tile_path(path)
            if (index + 1) * TILE_WIDTH > tile_level_count(size, level or 0):
                continue  # still the newest tile of its level: a checkpoint may name it
            full = path.split(".p/", 1)[0]
            if full not in present:
                present[full] = self._store.get(full) is not None
            if present[full]:
                gone.append(path)
        self._store.delete(gone)
        return len(gone)

    @contextmanager
    def running(
        self, every_s: float = 1.0, *, turn: Callable[[], bool] | None = None
    ) -> Iterator[None]:
        """Publish every *every_s* seconds in a daemon thread until the block ends.

        A failed round is logged (once until a round succeeds again) and retried after a
        wait that doubles up to a minute; the log and the server go on meanwhile. With
        *turn*, a round runs only when it returns True (one worker process of several
        publishes; the others ask again each round, and take over when it is gone).

        Raises:
            ConfigError: *every_s* is not a positive number of seconds.
        """
        if not every_s > 0:
            raise ConfigError(f"a tile publication interval must be positive, got {every_s!r}")
        stop = threading.Event()

        def loop() -> None:
            wait, failing = every_s, False
            where = self._store.where
            while not stop.wait(wait):
                if turn is not None and not turn():
                    continue
                try:
                    self.publish()
                except SovraError as exc:
                    failure: str | None = exc.diagnostics()
                else:
                    failure = None
                if failure is None:
                    if failing:
                        _logger.warning("publishing the log's tiles to %s works again", where)
                    failing, wait = False, every_s
                    continue
                if not failing:
                    _logger.error(
                        "publishing the log's tiles to %s failed (retrying until it works; "
                        "nothing is lost): %s",
                        where,
                        failure,
                    )
                failing, wait = True, min(_MAX_BACKOFF_S, wait * 2)

        thread = threading.Thread(target=loop, name="sovra-tiles", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def _filled(sizes: list[int], size: int) -> list[str]:
    """The paths of the full tiles and bundles that were partial in a tree of one of
    *sizes* and are full in the tree of *size*."""
    paths: dict[str, None] = {}
    for old in sizes:
        level = 0
        while tile_level_count(old, level):
            count = tile_level_count(old, level)
            index = count // TILE_WIDTH
            if count % TILE_WIDTH and (index + 1) * TILE_WIDTH <= tile_level_count(size, level):
                if level == 0:
                    paths[entries_path(index)] = None
                paths[tile_path(level, index)] = None
            level += 1
    return list(paths)


_Job = tuple[int | None, int, int]  # (level, index, width); level None: an entry bundle


def _path(job: _Job) -> str:
    level, index, width = job
    return entries_path(index, width) if level is None else tile_path(level, index, width)


def _files(start: int, size: int) -> list[_Job]:
    """The ``(level, index, width)`` of every file the tree of *size* has that the tree
    of *start* has not (level None: an entry bundle), lowest level first."""
    jobs: list[_Job] = []
    level = 0
    while tile_level_count(size, level):
        old, new = tile_level_count(start, level), tile_level_count(size, level)
        if new > old:
            for index in range(old // TILE_WIDTH, -(-new // TILE_WIDTH)):
                width = min(TILE_WIDTH, new - index * TILE_WIDTH)
                if level == 0:
                    jobs.append((None, index, width))
                jobs.append((level, index, width))
        level += 1
    return jobs
