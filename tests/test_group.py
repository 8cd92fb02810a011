"""The group commit helper: callers share batches, each gets its own result or error."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from sovra._group import GroupCommit


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    batches: list[list[int]] = []
    entered = threading.Event()
    release = threading.Event()

    def run(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        if len(batches) == 1:  # hold the first batch so the others queue behind it
            entered.set()
            release.wait(10)
        return [ValueError(f"bad {n}") if n % 5 == 0 else n * 10 for n in items]

    group: GroupCommit[int, int] = GroupCommit(run, max_batch=8)
    results: dict[int, object] = {}

    def call(n: int) -> None:
        try:
            results[n] = group.submit(n)
        except ValueError as exc:
            results[n] = exc

    first = threading.Thread(target=call, args=(1,))
    first.start()
    assert entered.wait(10)
    others = [threading.Thread(target=call, args=(n,)) for n in range(2, 21)]
    for t in others:
        t.start()
    for _ in range(1000):  # until all 19 wait behind the first batch
        if len(group._queue) == 19:
            break
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert batches[0] == [1]
    assert all(len(b) <= 8 for b in batches)
    assert len(batches) <= 4  # 19 waiting callers went in batches of up to 8, not one by one
    assert sorted(n for b in batches for n in b) == list(range(1, 21))
    for n in range(1, 21):
        if n % 5 == 0:
            assert isinstance(results[n], ValueError) and str(results[n]) == f"bad {n}"
        else:
            assert results[n] == n * 10


def test_a_failing_batch_fails_its_callers_only() -> None:
    def run(items: list[str]) -> list[str]:
        if "boom" in items:
            raise RuntimeError("the batch failed")
        return [s.upper() for s in items]

    group: GroupCommit[str, str] = GroupCommit(run, max_batch=4)
    with pytest.raises(RuntimeError, match="the batch failed"):
        group.submit("boom")
    assert group.submit("fine") == "FINE"  # the next caller leads a batch of its own


def test_a_batch_returning_the_wrong_number_of_results_is_an_error() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: [], max_batch=2)
    with pytest.raises(RuntimeError, match="gave 0 results"):
        group.submit(1)
    with pytest.raises(ValueError, match="at least one"):
        GroupCommit(lambda items: items, max_batch=0)


def test_two_leaders_run_two_batches_at_once_and_no_item_twice() -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    both = threading.Barrier(2, timeout=10)
    seen: list[int] = []
    batches = 0

    def run(items: list[int]) -> list[int]:
        nonlocal running, most, batches
        with lock:
            running += 1
            batches += 1
            first_two = batches <= 2
            most = max(most, running)
            seen.extend(items)
        if first_two:
            both.wait()  # the first two batches meet: they run side by side
        with lock:
            running -= 1
        return [n + 1 for n in items]

    group: GroupCommit[int, int] = GroupCommit(run, max_batch=4, leaders=2)
    results: dict[int, int] = {}

    def call(n: int) -> None:
        results[n] = group.submit(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most == 2
    assert sorted(seen) == list(range(40))  # each item run once
    assert results == {n: n + 1 for n in range(40)}


@pytest.mark.parametrize("leaders", [1, 2, 4])
def test_many_callers_calling_again_and_again_each_get_their_own_results(leaders: int) -> None:
    """Callers that come straight back after each answer (as server threads do): every
    item is run once, each caller gets its own results in order, and none is left
    waiting after the others are done (the lead is always handed on)."""
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def run(items: list[tuple[int, int]]) -> list[tuple[int, int] | BaseException]:
        with lock:
            seen.extend(items)
        return [ValueError(f"{t}/{n}") if n % 7 == 3 else (n, t) for t, n in items]

    group: GroupCommit[tuple[int, int], tuple[int, int]] = GroupCommit(
        run, max_batch=5, leaders=leaders
    )
    got: dict[int, list[object]] = {t: [] for t in range(24)}

    def caller(t: int) -> None:
        for n in range(60):
            if n % 10 == 9:  # now and then several items at once
                got[t].extend(group.submit_many([(t, n), (t, n + 1000)]))
                continue
            try:
                got[t].append(group.submit((t, n)))
            except ValueError as exc:
                got[t].append(exc)

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads)
    assert len(seen) == len(set(seen)) == 24 * 66
    for t, results in got.items():
        expected: list[object] = []
        for n in range(60):
            for m in (n, n + 1000) if n % 10 == 9 else (n,):
                expected.append(f"{t}/{m}" if m % 7 == 3 else (m, t))
        assert [str(r) if isinstance(r, ValueError) else r for r in results] == expected
    assert group._leading == 0 and not group._queue


def _held_first_batch() -> tuple[
    GroupCommit[int, int], list[list[int]], threading.Event, threading.Thread
]:
    """Two leaders; the first batch, of eight items, is held running until released."""
    batches: list[list[int]] = []
    entered = threading.Event()
    release = threading.Event()

    def run(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            entered.set()
            release.wait(10)
        return [n * 2 for n in items]

    group: GroupCommit[int, int] = GroupCommit(run, max_batch=16, leaders=2)
    first = threading.Thread(target=group.submit_many, args=(list(range(8)),))
    first.start()
    assert entered.wait(10)
    return group, batches, release, first


def _until(check: Callable[[], bool]) -> None:
    for _ in range(1000):
        if check():
            return
        threading.Event().wait(0.01)
    raise AssertionError("the group never got there")


def test_a_leader_beside_a_running_batch_waits_for_half_as_many_items() -> None:
    """A caller that finds a batch of eight running leads no batch of one beside it: it
    waits until four items are queued, then runs them while the first batch still runs."""
    group, batches, release, first = _held_first_batch()
    lone = threading.Thread(target=group.submit, args=(100,))
    lone.start()
    _until(lambda: group._waiting == 1)  # leading, and waiting for company
    assert len(batches) == 1
    more = threading.Thread(target=group.submit_many, args=([101, 102, 103],))
    more.start()
    _until(lambda: len(batches) == 2)
    assert batches[1] == [100, 101, 102, 103]
    release.set()
    for t in (first, lone, more):
        t.join(10)
    assert group._leading == 0 and group._running == 0 and not group._queue


def test_a_waiting_leader_runs_what_it_has_once_the_running_batch_ends() -> None:
    group, batches, release, first = _held_first_batch()
    got: list[int] = []
    lone = threading.Thread(target=lambda: got.append(group.submit(100)))
    lone.start()
    _until(lambda: group._waiting == 1)
    release.set()
    for t in (first, lone):
        t.join(10)
    assert batches[1:] == [[100]] and got == [200]


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_lone_caller_never_waits_in_the_gather_window() -> None:
    """One caller after another: its own gaps hold its batch's run time, longer than the
    window (at most that run time), so it never waits for company."""
    clock = _Clock()
    batches: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        batches.append(items)
        clock.now += 0.05  # the batch's run time
        return items

    group: GroupCommit[int, int] = GroupCommit(run, max_batch=8, max_wait_s=1.0, clock=clock)
    for n in range(30):
        assert group.submit(n) == n
        clock.now += 0.001  # straight back, as a busy client is
    assert group.waits == 0
    assert batches == [[n] for n in range(30)]


def _ten_second_batches() -> tuple[_Clock, list[list[int]], GroupCommit[int, int]]:
    """A group whose batches each run for 10 s on a hand-moved clock (so its window is up
    to 10 s), answering n * 10 for n; and the batches it ran."""
    clock = _Clock()
    batches: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        batches.append(items)
        clock.now += 10.0
        return [n * 10 for n in items]

    return clock, batches, GroupCommit(run, max_batch=100, max_wait_s=20.0, clock=clock)


def test_under_load_a_leader_waits_for_the_items_the_window_should_bring() -> None:
    """Items arriving closer together than a batch's run time: a new leader waits for as
    many more as the window should bring, and runs them in one batch."""
    clock, batches, group = _ten_second_batches()
    assert group.submit(0) == 0  # a batch's run time, and the first arrival, at 0 s
    assert group.waits == 0
    clock.now = 11.0
    # Ten items 1.1 s apart on average: the 10 s window should bring 9 more (each within
    # two mean gaps of the one before, or the window ends for want of arrivals).
    ten = threading.Thread(target=group.submit_many, args=(list(range(1, 11)),))
    ten.start()
    _until(lambda: group._windowing == 1)
    assert batches == [[0]] and group.waits == 1
    rest: dict[int, int] = {}
    callers = [
        threading.Thread(target=lambda n=n: rest.__setitem__(n, group.submit(n)))
        for n in range(11, 20)
    ]
    for t in callers:
        t.start()
    for t in [ten, *callers]:
        t.join(10)
    assert batches[1][:10] == list(range(1, 11))
    assert sorted(batches[1]) == list(range(1, 20))  # one batch, not one per caller
    assert rest == {n: n * 10 for n in range(11, 20)}
    assert group._leading == 0 and group._windowing == 0 and not group._queue


def test_a_window_that_brings_nothing_ends_at_its_deadline() -> None:
    """Under load, a window no item arrives in ends when the clock passes its deadline."""
    clock, batches, group = _ten_second_batches()
    group.submit(0)
    clock.now = 11.0
    ten = threading.Thread(target=group.submit_many, args=(list(range(1, 11)),))
    ten.start()
    _until(lambda: group._windowing == 1)
    clock.now = 22.0  # past the deadline: the next arrival's wake-up finds it over
    late = threading.Thread(target=group.submit, args=(11,))
    late.start()
    for t in (ten, late):
        t.join(10)
    assert not ten.is_alive() and not late.is_alive()
    assert batches[1][:10] == list(range(1, 11))
    assert sorted(n for b in batches for n in b) == list(range(12))


def test_a_window_ends_when_items_stop_coming() -> None:
    """Callers that wait for their answers before they send again are all queued when no
    more come: the leader runs them after two mean gaps with no arrival, not at the end of
    the window (here the clock never reaches it)."""
    clock, batches, group = _ten_second_batches()
    group.submit(0)
    clock.now = 10.5  # ten items 1.05 s apart: the window should bring 9 more, none comes
    ten = threading.Thread(target=group.submit_many, args=(list(range(1, 11)),))
    ten.start()
    ten.join(30)
    assert not ten.is_alive(), "the leader waited on for items no one was sending"
    assert group.waits == 1 and batches == [[0], list(range(1, 11))]
    assert group._windowing == 0 and group._leading == 0


def test_a_negative_gather_window_is_refused() -> None:
    with pytest.raises(ValueError, match="not negative"):
        GroupCommit(lambda items: items, max_batch=2, max_wait_s=-0.1)
