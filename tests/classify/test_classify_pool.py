"""The scan helper: a large batch's tail scanned in another process, the same findings as
here, and a helper that dies costs nothing but its share of the speed."""

from __future__ import annotations

import time

import pytest

from sovra.classify import scan
from sovra.classify._helper import results_from
from sovra.classify.pool import MIN_SHARED, ScanPool
from sovra.errors import BadRequest, PayloadTooLarge

NOTE = (
    "Zgłoszenie {i}: tel. +48 601 234 567, PESEL 44051401359, e-mail klient{i}@example.pl, "
    "IBAN PL61 1090 1014 0000 0712 1981 2874, adres 10.0.{i}.1."
)


def _texts(n: int) -> list[str]:
    texts = [NOTE.format(i=i % 250) for i in range(n)]
    texts[n - 3] = "1 " * 20_001  # too many numbers: the scanner refuses it
    texts[n - 2] = ""
    return texts


def _expected(texts: list[str]) -> list[object]:
    out: list[object] = []
    for text in texts:
        try:
            out.append(scan(text))
        except PayloadTooLarge as exc:
            out.append(("PayloadTooLarge", str(exc)))
    return out


def _as_compared(results: list[object]) -> list[object]:
    return [(type(r).__name__, str(r)) if isinstance(r, Exception) else r for r in results]


def _ready(pool: ScanPool, texts: list[str]) -> None:
    """Start the helper and wait until a batch is shared with it."""
    list(pool.scan_many(texts))
    deadline = time.monotonic() + 60
    while not (pool._helper is not None and pool._helper.poll_ready()):
        assert time.monotonic() < deadline, "the scan helper did not start within 60 s"
        time.sleep(0.05)


def test_a_shared_batch_gets_the_findings_and_errors_a_scan_here_gives() -> None:
    texts = _texts(3 * MIN_SHARED)
    pool = ScanPool(1)
    try:
        _ready(pool, texts)
        helper = pool._helper
        got = list(pool.scan_many(texts))
        assert pool._helper is helper and helper is not None  # used, not lost
    finally:
        pool.close()
    assert _as_compared(got) == _expected(texts)
    assert isinstance(got[-3], PayloadTooLarge)


def test_a_batch_left_early_leaves_no_answer_behind_for_the_next() -> None:
    texts = _texts(2 * MIN_SHARED)
    other = [NOTE.format(i=1000 + i) for i in range(2 * MIN_SHARED)]
    pool = ScanPool(1)
    try:
        _ready(pool, texts)
        results = pool.scan_many(texts)
        next(results)
        results.close()  # the caller stopped reading after one result
        assert _as_compared(list(pool.scan_many(other))) == _expected(other)
    finally:
        pool.close()


def test_a_dead_helper_costs_its_share_of_speed_not_the_batch() -> None:
    texts = _texts(2 * MIN_SHARED)
    pool = ScanPool(1)
    try:
        _ready(pool, texts)
        helper = pool._helper
        assert helper is not None
        helper.proc.kill()
        helper.proc.wait()
        assert _as_compared(list(pool.scan_many(texts))) == _expected(texts)
        assert pool._helper is None  # not restarted at once
        assert _as_compared(list(pool.scan_many(texts))) == _expected(texts)
    finally:
        pool.close()


def test_small_batches_and_a_pool_without_helpers_scan_here() -> None:
    pool = ScanPool(0)
    texts = _texts(2 * MIN_SHARED)
    assert _as_compared(list(pool.scan_many(texts))) == _expected(texts)
    assert pool._helper is None
    pool = ScanPool(1)
    small = texts[: MIN_SHARED - 1]
    assert _as_compared(list(pool.scan_many(small))) == _expected(small)
    assert pool._helper is None  # never started for a small batch
    pool.close()


def test_an_answer_for_another_number_of_texts_is_refused() -> None:
    with pytest.raises(ValueError, match="another number"):
        results_from([()], 2)
    (error,) = results_from([["BadRequest", "no"]], 1)
    assert isinstance(error, BadRequest)
