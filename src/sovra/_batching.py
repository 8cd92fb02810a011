"""Plumbing of the gateway's batches: a step run on a whole batch, or item by item when
the whole fails, and each item handed its own outcome; batches grouped and cut to a
callee's bounds. Knows nothing of records or keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sovra.errors import SovraError

__all__ = ["Failing", "chunks", "each", "grouped", "returning_none", "settle"]

_A = TypeVar("_A")
_B = TypeVar("_B")
_K = TypeVar("_K")
_Outcome = TypeVar("_Outcome", bound="Failing")


def each(call: Callable[[list[_A]], Sequence[_B]], items: Sequence[_A]) -> list[_B | SovraError]:
    """*call* on all *items* at once (all or none); should it fail, on each item alone, so
    one bad item gets its error and its neighbours their results."""
    if not items:
        return []
    try:
        return list(call(list(items)))
    except SovraError as exc:
        if len(items) == 1:
            return [exc]
    out: list[_B | SovraError] = []
    for item in items:
        try:
            (one,) = call([item])
        except SovraError as exc:
            out.append(exc)
        else:
            out.append(one)
    return out


def settle(
    items: Sequence[_Outcome],
    results: Sequence[_B | SovraError],
    put: Callable[[_Outcome, _B], None],
) -> None:
    """Hand each item its result of one batch step: an error, or *put* the value."""
    for item, got in zip(items, results, strict=True):
        if isinstance(got, SovraError):
            item.error = got
        else:
            put(item, got)


def returning_none(call: Callable[[list[_A]], object]) -> Callable[[list[_A]], list[None]]:
    """*call*, made to return one ``None`` per item, for :func:`each`."""

    def run(items: list[_A]) -> list[None]:
        call(items)
        return [None] * len(items)

    return run


def grouped(items: Sequence[_A], key: Callable[[_A], _K]) -> dict[_K, list[_A]]:
    """*items* grouped by *key*, groups and items in the order they come."""
    groups: dict[_K, list[_A]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def chunks(items: Sequence[_A], size: Callable[[_A], int], most: int, total: int) -> list[list[_A]]:
    """*items* cut, in order, into runs of at most *most* items whose sizes add up to at
    most *total* (an item larger than *total* goes alone): a custodian call's bounds."""
    runs: list[list[_A]] = []
    run: list[_A] = []
    held = 0
    for item in items:
        n = size(item)
        if run and (len(run) == most or held + n > total):
            runs.append(run)
            run, held = [], 0
        run.append(item)
        held += n
    if run:
        runs.append(run)
    return runs


class Failing:
    """A batch item that may have failed at some step; a failed one goes no further."""

    error: SovraError | None
