"""Group commit: concurrent callers share one batch, led by whichever of them came first.

A caller queues its item and waits. If no batch is being run, it becomes the *leader*:
it takes up to ``max_batch`` queued items, oldest first, runs them as one batch, hands
each waiter its own result, and repeats until its own item is done; then it steps down
and a waiter whose item is still queued leads the next batch. Whatever arrives while a
batch runs waits for the next one whole, so the batch size grows with the load and a
lone caller pays for a batch of one, never a timer.

The work function returns one result per item, in order; a result that is an exception
is raised to that item's caller only, so one bad item never fails its neighbours. Should
the function itself raise, every caller of that batch gets the error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

__all__ = ["GroupCommit"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class _Slot(Generic[_T, _R]):
    """One queued call, filled in by whichever leader runs it."""

    __slots__ = ("done", "item", "result", "taken")

    def __init__(self, item: _T) -> None:
        self.item = item
        self.taken = False  # a leader has it in a batch
        self.done = False
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
        # Waiters sleep on this condition, not on whatever lock *run* takes, so whatever
        # arrives during one batch goes into the next one whole.
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Slot[_T, _R]] = []
        self._leading = 0

    def submit(self, item: _T) -> _R:
        """Queue *item*, wait for its batch, and return its result or raise its error."""
        (result,) = self.submit_many([item])
        if isinstance(result, BaseException):
            raise result
        return result

    def submit_many(self, items: Sequence[_T]) -> list[_R | BaseException]:
        """Queue *items* one after the other, wait for them all, and return each one's
        result or error, in order. They may be run in more than one batch."""
        slots: list[_Slot[_T, _R]] = [_Slot(item) for item in items]
        if not slots:
            return []
        last = slots[-1]  # taken last: the queue is taken in order
        with self._cond:
            self._queue.extend(slots)
            while not last.taken and self._leading >= self._leaders:
                self._cond.wait()
            lead = not last.taken
            if lead:
                self._leading += 1
        if lead:
            try:
                self._lead(last)
            finally:
                with self._cond:
                    self._leading -= 1
                    self._cond.notify_all()
        with self._cond:
            while not all(s.done for s in slots):
                self._cond.wait()
        return [cast("_R | BaseException", s.result) for s in slots]

    def _lead(self, slot: _Slot[_T, _R]) -> None:
        """Run queued batches, oldest first, until a batch takes *slot* (this one's or
        another leader's)."""
        while True:
            with self._cond:
                if slot.taken:
                    return
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                for s in batch:
                    s.taken = True
            results: Sequence[_R | BaseException]
            try:
                results = self._run([s.item for s in batch])
            except BaseException as exc:  # noqa: BLE001 - each caller of the batch re-raises it
                results = [exc] * len(batch)
            if len(results) != len(batch):
                results = [RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")]
                results *= len(batch)
            with self._cond:
                for s, result in zip(batch, results, strict=True):
                    s.result = result
                    s.done = True
                self._cond.notify_all()
