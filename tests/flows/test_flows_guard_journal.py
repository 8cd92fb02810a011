"""A batch of accesses is one session of the bulk guard's shared journal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sovra.gateway import AccessRequest, IngestItem


class _Counting:
    """The deployment's journal, counting its sessions (each one write transaction)."""

    def __init__(self, journal: Any) -> None:
        self.journal = journal
        self.sessions = 0

    @contextmanager
    def session(self) -> Iterator[Any]:
        self.sessions += 1
        with self.journal.session() as shared:
            yield shared

    def read(self, after: int) -> Any:
        return self.journal.read(after)


def test_a_batch_of_accesses_takes_the_journal_once_and_spends_each_budget(dep):
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    stored = gw.ingest_many(svc, [IngestItem(f"j-{n}", "PL", "hello") for n in range(4)])
    ids = [r.record_id for r in stored]
    guard = gw.decisions.guard
    counting = _Counting(guard.journal)
    guard.journal = counting
    try:
        results = gw.access_many(
            svc, [AccessRequest("customer-support", record_ids=[r]) for r in ids]
        )
    finally:
        guard.journal = counting.journal
    assert all(r.decision.allow for r in results)  # type: ignore[union-attr]
    assert counting.sessions == 1
    assert guard.window_count("svc-pl", []) == 4  # every request's subject spent
