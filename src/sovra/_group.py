"""Group commit: concurrent callers share one batch, led by whichever of them came first.

A caller queues its item and waits. If fewer than ``leaders`` batches are being run, it
becomes a *leader*: it takes up to ``max_batch`` queued items, oldest first, runs them as
one batch, hands each waiter its own result, and repeats until its own item is done; then
it steps down and hands the lead to the caller of the oldest item still queued. Whatever
arrives while a batch runs waits for the next one whole, so the batch size grows with the
load and a lone caller pays for a batch of one, never a timer.

Each caller sleeps on a lock of its own, released once by whoever has news for it (its
results, or the lead): a finished batch wakes its own callers and no one else, where one
shared condition would wake every waiter on every batch, only for most to sleep again.

Callers that a batch has just answered usually come straight back with their next item.
A new leader therefore lets the interpreter run other threads while that brings more
items in (only while the queue is shorter than the last batch was): without that, the
first caller back would lead a batch of one and its neighbours the next. A leader that
starts while other batches run waits, too, until half as many items as they hold are
queued, or they end: a caller that finds a batch running would otherwise lead a batch of
one beside it (a third of all batches, with 16 threads ingesting), paying a whole batch's
fixed cost and fsyncs for one item. No one waits on a timer: only on a running batch.

The work function returns one result per item, in order; a result that is an exception
is raised to that item's caller only, so one bad item never fails its neighbours. Should
the function itself raise, every caller of that batch gets the error.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

__all__ = ["GroupCommit"]

_T = TypeVar("_T")
_R = TypeVar("_R")

_GATHER_YIELDS = 8
"""At most this many times a new leader yields to gather items before its first batch."""


class _Waiter:
    """One caller: how many of its items are still to be answered, and its wake-up."""

    __slots__ = ("armed", "leading", "pending", "wake")

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.leading = False  # set for a caller that leads, or is handed the lead
        self.armed = False  # asleep on *wake*, to be released once
        self.wake = threading.Lock()
        self.wake.acquire()


class _Slot(Generic[_T, _R]):
    """One queued call, filled in by whichever leader runs it."""

    __slots__ = ("item", "result", "taken", "waiter")

    def __init__(self, item: _T, waiter: _Waiter) -> None:
        self.item = item
        self.waiter = waiter
        self.taken = False  # a leader has it in a batch
        self.result: _R | BaseException | None = None


class GroupCommit(Generic[_T, _R]):
    """Gathers concurrent :meth:`submit` calls into batches run by one of the callers."""

    def __init__(
        self,
        run: Callable[[list[_T]], Sequence[_R | BaseException]],
        max_batch: int,
        *,
        leaders: int = 1,
    ) -> None:
        """*run* takes a batch of at most *max_batch* items and returns one result each.

        With *leaders* above 1, that many batches may run at once (each *run* call must
        then be safe beside the others): one batch's work overlaps another's waits.

        Raises:
            ValueError: *max_batch* or *leaders* is below 1.
        """
        if max_batch < 1 or leaders < 1:
            raise ValueError("a group commit batch holds at least one item, run by a leader")
        self._run = run
        self._max_batch = max_batch
        self._leaders = leaders
        # Guards the queue and every waiter's state; never held while *run* runs, so
        # whatever arrives during one batch goes into the next one whole.
        self._mutex = threading.Lock()
        self._queue: deque[_Slot[_T, _R]] = deque()
        self._leading = 0
        self._last_batch = 1
        self._running = 0  # items in the batches being run
        self._waiting = 0  # leaders waiting for the queue to fill beside a running batch
        self._filled = threading.Condition(self._mutex)

    def submit(self, item: _T) -> _R:
        """Queue *item*, wait for its batch, and return its result or raise its error."""
        (result,) = self.submit_many([item])
        if isinstance(result, BaseException):
            raise result
        return result

    def submit_many(self, items: Sequence[_T]) -> list[_R | BaseException]:
        """Queue *items* one after the other, wait for them all, and return each one's
        result or error, in order. They may be run in more than one batch."""
        if not items:
            return []
        waiter = _Waiter(len(items))
        slots: list[_Slot[_T, _R]] = [_Slot(item, waiter) for item in items]
        last = slots[-1]  # taken last: the queue is taken in order
        with self._mutex:
            self._queue.extend(slots)
            if self._waiting and len(self._queue) >= self._running // 2:
                self._filled.notify_all()
            if self._leading < self._leaders:
                self._leading += 1
                waiter.leading = True
        while True:
            with self._mutex:
                lead = waiter.leading
                if not lead:
                    if waiter.pending == 0:
                        break
                    waiter.armed = True
            if lead:
                self._lead(last)
            else:
                waiter.wake.acquire()
        return [cast("_R | BaseException", s.result) for s in slots]

    def _lead(self, slot: _Slot[_T, _R]) -> None:
        """Run queued batches, oldest first, until a batch takes *slot* (this one's or
        another leader's); then step down and hand the lead on."""
        try:
            self._gather()
            while True:
                with self._mutex:
                    self._fill(slot)
                    if slot.taken:
                        return
                    n = min(self._max_batch, len(self._queue))
                    batch = [self._queue.popleft() for _ in range(n)]
                    for s in batch:
                        s.taken = True
                    self._last_batch = n
                    self._running += n
                self._run_batch(batch)
        finally:
            with self._mutex:
                slot.waiter.leading = False
                self._leading -= 1
                self._hand_on()

    def _gather(self) -> None:
        """Let threads answered by the last batch queue their next items first."""
        for _ in range(_GATHER_YIELDS):
            queued = len(self._queue)
            if queued >= min(self._last_batch, self._max_batch):
                return
            time.sleep(0)  # releases the interpreter to whichever thread is ready
            if len(self._queue) == queued:
                return

    def _fill(self, slot: _Slot[_T, _R]) -> None:
        """With the mutex held: while other batches run, wait until half as many items
        as they hold are queued (or they end)."""
        while self._running and not slot.taken and len(self._queue) < self._running // 2:
            self._waiting += 1
            try:
                self._filled.wait()
            finally:
                self._waiting -= 1

    def _run_batch(self, batch: list[_Slot[_T, _R]]) -> None:
        results: Sequence[_R | BaseException]
        try:
            results = self._run([s.item for s in batch])
        except BaseException as exc:  # noqa: BLE001 - each caller of the batch re-raises it
            results = [exc] * len(batch)
        if len(results) != len(batch):
            results = [RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")]
            results *= len(batch)
        with self._mutex:
            self._running -= len(batch)
            if self._waiting:
                self._filled.notify_all()
            for s, result in zip(batch, results, strict=True):
                s.result = result
                waiter = s.waiter
                waiter.pending -= 1
                if waiter.pending == 0:
                    self._wake(waiter)

    def _hand_on(self) -> None:
        """With the mutex held: give the lead to the caller of the oldest queued item,
        unless it leads already."""
        if self._queue and self._leading < self._leaders:
            waiter = self._queue[0].waiter
            if not waiter.leading:
                waiter.leading = True
                self._leading += 1
                self._wake(waiter)

    @staticmethod
    def _wake(waiter: _Waiter) -> None:
        if waiter.armed:
            waiter.armed = False
            waiter.wake.release()
