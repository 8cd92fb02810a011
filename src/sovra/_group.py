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

Under load a leader may also wait a little for more (the *gather window*): when items
have been arriving less than a window apart on average, it waits until as many more as
the window should bring are queued, for at most the window, a fraction of the recent
batches' own run time and never more than ``max_wait_s``. Items arriving further apart
than that (a lone caller, an idle server) are never waited for: such a caller's own
gaps include its batch's run time, which is longer than the window. Every batch pays a
fixed part (round trips, a segment object, a custodian call) that the items of a larger
batch share, so on busy cores a wait of a few milliseconds buys back more CPU than it
costs in latency. The window also ends as soon as items stop coming (two mean gaps with
none): callers that each wait for their answer before they send again are all queued by
then, and no more can come until the batch runs.

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

_WINDOW_SHARE = 1.0
"""The gather window is at most this share of a batch's recent run time (then ``max_wait_s``)."""

_QUIET_GAPS = 2.0
"""A gather window ends once this many mean gaps pass with no item arriving: callers that
wait for their answers before they send again (16 threads, HTTP clients) are all queued
by then, and waiting on for the whole window would only idle the batch."""

_EWMA = 0.2
"""Weight of the newest sample in the running means of arrival gaps and batch run times."""


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
        max_wait_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """*run* takes a batch of at most *max_batch* items and returns one result each.

        With *leaders* above 1, that many batches may run at once (each *run* call must
        then be safe beside the others): one batch's work overlaps another's waits.
        With *max_wait_s* above 0, a leader under load waits up to that long for more
        items (the gather window, above); *clock* gives monotonic seconds.

        Raises:
            ValueError: *max_batch* or *leaders* is below 1, or *max_wait_s* below 0.
        """
        if max_batch < 1 or leaders < 1:
            raise ValueError("a group commit batch holds at least one item, run by a leader")
        if not max_wait_s >= 0:
            raise ValueError(f"a gather window is not negative, got {max_wait_s}")
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
        self._max_wait = max_wait_s
        self._clock = clock
        self._last_arrival: float | None = None
        self._gap = 0.0  # running mean of the time between submits, seconds
        self._run_time = 0.0  # running mean of a batch's run time, seconds
        self._windowing = 0  # leaders waiting in a gather window
        self._arrived = threading.Condition(self._mutex)
        self.waits = 0
        """How many gather windows leaders have waited in."""

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
            if self._max_wait:
                self._arrival(len(slots))
            self._queue.extend(slots)
            if self._waiting and len(self._queue) >= self._running // 2:
                self._filled.notify_all()
            if self._windowing:
                self._arrived.notify_all()
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
                    self._window(slot)
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

    def _arrival(self, count: int) -> None:
        """With the mutex held: *count* items arrive now; the mean gap between items."""
        now = self._clock()
        if self._last_arrival is not None:
            gap = (now - self._last_arrival) / count
            self._gap += _EWMA * (gap - self._gap) if self._gap else gap
        self._last_arrival = now

    def _window(self, slot: _Slot[_T, _R]) -> None:
        """With the mutex held: under load, wait for the items the gather window should
        bring (see the module's docstring); return at once when items come further apart
        than the window."""
        window = min(self._max_wait, _WINDOW_SHARE * self._run_time)
        queued = len(self._queue)
        if slot.taken or queued >= self._max_batch or not 0 < self._gap < window:
            return
        target = min(self._max_batch, queued + int(window / self._gap))
        deadline = self._clock() + window
        self.waits += 1
        self._windowing += 1
        try:
            while len(self._queue) < target and not slot.taken:
                left = deadline - self._clock()
                if left <= 0:
                    return
                queued = len(self._queue)
                self._arrived.wait(min(left, _QUIET_GAPS * self._gap))
                if len(self._queue) == queued:
                    return  # nothing came: every caller that was coming is here
        finally:
            self._windowing -= 1

    def _run_batch(self, batch: list[_Slot[_T, _R]]) -> None:
        results: Sequence[_R | BaseException]
        start = self._clock()
        try:
            results = self._run([s.item for s in batch])
        except BaseException as exc:  # noqa: BLE001 - each caller of the batch re-raises it
            results = [exc] * len(batch)
        took = self._clock() - start
        if len(results) != len(batch):
            results = [RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")]
            results *= len(batch)
        with self._mutex:
            self._run_time += _EWMA * (took - self._run_time) if self._run_time else took
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
