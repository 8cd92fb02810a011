"""A keyed batch answer left unread and collected inside a store transaction of the same
thread releases its key without waiting on that transaction's lock (a self-deadlock)."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sovra.server.idempotency import keyed_answer
from sovra.store.idempotency import KeyInFlight, idempotency_keys
from sovra.store.sqlite import SQLiteMetadataStore


def _answer(lines: Sequence[bytes]) -> Iterator[bytes]:
    for n, _ in enumerate(lines, 1):
        yield json.dumps({"line": n, "status": 201}).encode() + b"\n"
    yield json.dumps({"summary": {"stopped_at": None}}).encode()


def test_an_answer_collected_inside_a_transaction_releases_its_key_afterwards(
    tmp_path: Path,
) -> None:
    store = SQLiteMetadataStore(tmp_path / "sovra.db")
    keys = idempotency_keys(store, clock=time.time)
    assert keys is not None
    lines = [b'{"n": %d}' % n for n in range(4)]

    def ask() -> Iterator[bytes]:
        return keyed_answer(
            keys, "svc-pl", "key-0000001", path="/v1/records/batch", lines=lines, window=2,
            answer=_answer,
        )  # fmt: skip

    answer = ask()
    next(answer)  # the first window answered; the key is held
    with pytest.raises(KeyInFlight):
        ask()

    done = threading.Event()

    def collect_inside_a_transaction() -> None:
        nonlocal answer
        with store._transaction(write=True):
            del answer  # unread: its clean-up runs here, under the store's lock
            gc.collect()
        done.set()

    worker = threading.Thread(target=collect_inside_a_transaction, daemon=True)
    worker.start()
    assert done.wait(120), "the collected answer waited on its own thread's transaction"
    # Released once that transaction ended: the same batch may be sent again at once.
    deadline = time.monotonic() + 120
    while True:
        try:
            again = ask()
            break
        except KeyInFlight:
            assert time.monotonic() < deadline, "the key was never released"
            time.sleep(0.05)
    replayed = b"".join(again)
    assert replayed.count(b'"status":201') + replayed.count(b'"status": 201') >= 4
    store.close()
