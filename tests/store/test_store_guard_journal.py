"""Bulk guards of several processes sharing one journal count as one guard.

Each :class:`BulkGuard` here has memory of its own and opens the journal with a
connection of its own, as each worker process of ``sovra serve --workers N`` does (SQLite)
and each replica over one database does (PostgreSQL): every test runs on both.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from sovra.errors import IntegrityError
from sovra.policy import BulkGuard, BulkLimits
from sovra.store import GuardJournal, SQLiteGuardJournal
from sovra.store.postgres import PostgresGuardJournal

Opener = Callable[..., GuardJournal]

NOW = [1_800_000_000.0]
KEY = b"k" * 16
SEAL = b"s" * 32


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a journal, each call with a connection of its own, all at one place."""
    opened: list[GuardJournal] = []
    location = (
        str(tmp_path / "guard.db")
        if request.param == "sqlite"
        else request.getfixturevalue("pg_dsn")
    )

    def open_one(key: bytes | None = SEAL, at: str = location) -> GuardJournal:
        journal: GuardJournal
        if request.param == "sqlite":
            journal = SQLiteGuardJournal(at, key)
        else:
            journal = PostgresGuardJournal(at, key)
        opened.append(journal)
        return journal

    open_one.location = location  # type: ignore[attr-defined]
    yield open_one
    for journal in opened:
        journal.close()


def _guards(open_journal: Opener, n: int = 2, **limits: int) -> list[BulkGuard]:
    return [
        BulkGuard(
            BulkLimits(**limits),
            lambda: NOW[0],
            journal=open_journal(),
            template_key=KEY,
        )
        for _ in range(n)
    ]


def _raw_sql(open_journal: Opener, statement: str) -> None:
    location = open_journal.location  # type: ignore[attr-defined]
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(statement)
    else:
        with sqlite3.connect(location) as db:
            db.execute(statement)


def _subject(n: int) -> tuple[str, str]:
    return hashlib.sha256(b"%d" % n).hexdigest(), "PL"


def _read(guard: BulkGuard, *subjects: int, names: tuple[str, ...] = ()) -> bool:
    """Assess and, when no flag is up, spend: one decision, in one session."""
    with guard.session():
        usage = guard.assess("svc-pl", "PL", [_subject(n) for n in subjects], names)
        flags = usage.flags
        if any(getattr(flags, f) for f in flags.__slots__):
            return False
        guard.record(usage)
        return True


def test_two_guards_spend_one_window_budget(open_journal: Opener) -> None:
    first, second = _guards(open_journal, window_limit=3, window_s=60)
    assert _read(first, 1, 2)
    assert _read(second, 3)  # the third subject of the window, through the other guard
    assert not _read(second, 4)
    assert not _read(first, 5)
    assert _read(first, 1)  # one already counted is no new subject
    # A guard opened later (a worker started again) replays the window.
    (late,) = _guards(open_journal, 1, window_limit=3, window_s=60)
    assert late.window_count("svc-pl", [_subject(6)[0]]) == 4
    NOW[0] += 61  # the window slides for every guard
    assert _read(second, 4, 5, 6)


def test_a_walk_split_between_guards_is_one_walk(open_journal: Opener) -> None:
    guards = _guards(open_journal, enumeration_run=4)
    refused = [
        not _read(guards[n % 2], n, names=(f"c-{1000 + n}",)) for n in range(6)
    ]  # c-1000, c-1001, ... alternately through each guard
    assert refused == [False, False, False, True, True, True]


def test_alerts_and_reviews_are_the_same_on_every_guard(open_journal: Opener) -> None:
    first, second = _guards(open_journal)
    first.alert("svc-pl", "PL", ["bulk-window"], "d-1")
    second.queue_review({"decision_id": "d-2", "queue": "legal"})
    for guard in (first, second):
        assert [(a.requester, a.decision_id) for a in guard.alerts()] == [("svc-pl", "d-1")]
        assert [r["decision_id"] for r in guard.reviews()] == ["d-2"]
        assert 'sovra_bulk_refusals_total{policy="bulk-window"} 1' in guard.metrics()


def test_pruning_keeps_the_window_and_the_last_alerts(open_journal: Opener) -> None:
    journal = open_journal(None)
    with journal.session() as shared:
        shared.append([("use", 10.0, "{}"), ("use", 100.0, "{}")])
        shared.append([("alert", 1.0, "{}")] * 5)
        shared.prune(50.0, {"alert": 2})
    assert [(k, t) for _, k, t, _ in journal.read(0)] == [
        ("use", 100.0),
        ("alert", 1.0),
        ("alert", 1.0),
    ]
    with journal.session() as shared:
        shared.prune(1000.0, {})  # no kind kept: every old event goes
    assert journal.read(0) == []


def test_a_failed_session_leaves_nothing(open_journal: Opener) -> None:
    journal = open_journal()

    def decide() -> None:
        with journal.session() as shared:
            shared.append([("use", 1.0, "{}")])
            raise RuntimeError("the decision failed")

    with pytest.raises(RuntimeError):
        decide()
    assert journal.read(0) == []
    assert open_journal().read(0) == []


def test_racing_guards_never_overspend_the_budget(open_journal: Opener) -> None:
    guards = _guards(open_journal, 6, window_limit=4, window_s=60)
    allowed: list[bool] = []
    threads = [
        threading.Thread(target=lambda g=g, n=n: allowed.append(_read(g, 100 + n)))
        for n, g in enumerate(guards)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(allowed) == [False, False, True, True, True, True]


def test_events_are_sealed_at_rest_and_a_changed_one_stops_the_guard(
    open_journal: Opener,
) -> None:
    (first,) = _guards(open_journal, 1)
    assert _read(first, 1, names=("c-1041",))
    stored = open_journal(None).read(0)  # what is at rest, unopened
    assert stored
    for _, _, _, data in stored:
        assert _subject(1)[0] not in data and "svc-pl" not in data
    _raw_sql(open_journal, "UPDATE guard_journal SET time_s = time_s + 1")  # moved in time
    (late,) = _guards(open_journal, 1)
    with pytest.raises(IntegrityError, match=r"guard journal event \d+ was changed"):
        late.window_count("svc-pl", [])
    wrong_key = open_journal(b"x" * 32)
    with pytest.raises(IntegrityError):
        wrong_key.read(0)


def test_sqlite_journal_file_shows_no_subject(tmp_path: Path) -> None:
    path = tmp_path / "guard.db"
    guard = BulkGuard(
        BulkLimits(), lambda: NOW[0], journal=SQLiteGuardJournal(path, SEAL), template_key=KEY
    )
    assert _read(guard, 1, names=("c-1041",))
    raw = path.read_bytes() + (tmp_path / "guard.db-wal").read_bytes()
    assert _subject(1)[0].encode() not in raw and b"svc-pl" not in raw
    guard.journal.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("key", [SEAL, None])
def test_a_sessions_events_go_in_together_in_order(open_journal: Opener, key: bytes | None) -> None:
    writer, reader = open_journal(key), open_journal(key)
    odd = ['{"a": "b\\\\"}', "{x,y}", "NULL", "ż ó", "", "tab\there"]
    events = [("usage", 1_800_000_000.0 + n / 8, data) for n, data in enumerate(odd * 20)]
    with writer.session() as session:
        first = session.append(events[:1])
        last = session.append(events[1:])
    got = reader.read(0)
    assert [(k, t, d) for _, k, t, d in got] == events
    seqs = [q for q, _, _, _ in got]
    assert seqs == sorted(set(seqs)) and (seqs[0], seqs[-1]) == (first, last)
    with writer.session() as session:
        assert session.append([]) == last  # nothing appended: the last number stands
