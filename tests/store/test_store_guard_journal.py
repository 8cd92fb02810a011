"""Bulk guards of several processes sharing one journal count as one guard.

Each :class:`BulkGuard` here has memory of its own and opens the journal file with a
connection of its own, as each worker process of ``sovra serve --workers N`` does.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from sovra.errors import IntegrityError
from sovra.policy import BulkGuard, BulkLimits
from sovra.store import SQLiteGuardJournal

NOW = [1_800_000_000.0]
KEY = b"k" * 16
SEAL = b"s" * 32


def _guards(path: Path, n: int = 2, **limits: int) -> list[BulkGuard]:
    return [
        BulkGuard(
            BulkLimits(**limits),
            lambda: NOW[0],
            journal=SQLiteGuardJournal(path, SEAL),
            template_key=KEY,
        )
        for _ in range(n)
    ]


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


def test_two_guards_spend_one_window_budget(tmp_path: Path) -> None:
    first, second = _guards(tmp_path / "guard.db", window_limit=3, window_s=60)
    assert _read(first, 1, 2)
    assert _read(second, 3)  # the third subject of the window, through the other guard
    assert not _read(second, 4)
    assert not _read(first, 5)
    assert _read(first, 1)  # one already counted is no new subject
    # A guard opened later (a worker started again) replays the window.
    (late,) = _guards(tmp_path / "guard.db", 1, window_limit=3, window_s=60)
    assert late.window_count("svc-pl", [_subject(6)[0]]) == 4
    NOW[0] += 61  # the window slides for every guard
    assert _read(second, 4, 5, 6)


def test_a_walk_split_between_guards_is_one_walk(tmp_path: Path) -> None:
    guards = _guards(tmp_path / "guard.db", enumeration_run=4)
    refused = [
        not _read(guards[n % 2], n, names=(f"c-{1000 + n}",)) for n in range(6)
    ]  # c-1000, c-1001, ... alternately through each guard
    assert refused == [False, False, False, True, True, True]


def test_alerts_and_reviews_are_the_same_on_every_guard(tmp_path: Path) -> None:
    first, second = _guards(tmp_path / "guard.db")
    first.alert("svc-pl", "PL", ["bulk-window"], "d-1")
    second.queue_review({"decision_id": "d-2", "queue": "legal"})
    for guard in (first, second):
        assert [(a.requester, a.decision_id) for a in guard.alerts()] == [("svc-pl", "d-1")]
        assert [r["decision_id"] for r in guard.reviews()] == ["d-2"]
        assert 'sovra_bulk_refusals_total{policy="bulk-window"} 1' in guard.metrics()


def test_pruning_keeps_the_window_and_the_last_alerts(tmp_path: Path) -> None:
    path = tmp_path / "guard.db"
    journal = SQLiteGuardJournal(path)
    with journal.session() as shared:
        shared.append([("use", 10.0, "{}"), ("use", 100.0, "{}")])
        shared.append([("alert", 1.0, "{}")] * 5)
        shared.prune(50.0, {"alert": 2})
    assert [(k, t) for _, k, t, _ in journal.read(0)] == [
        ("use", 100.0),
        ("alert", 1.0),
        ("alert", 1.0),
    ]
    journal.close()


def test_events_are_sealed_at_rest_and_a_changed_one_stops_the_guard(tmp_path: Path) -> None:
    path = tmp_path / "guard.db"
    (first,) = _guards(path, 1)
    assert _read(first, 1, names=("c-1041",))
    raw = path.read_bytes() + (tmp_path / "guard.db-wal").read_bytes()
    assert _subject(1)[0].encode() not in raw and b"svc-pl" not in raw
    with sqlite3.connect(path) as db:
        db.execute("UPDATE guard_journal SET time_s = time_s + 1")  # moved in time
    (late,) = _guards(path, 1)
    with pytest.raises(IntegrityError, match="guard journal event 1 was changed"):
        late.window_count("svc-pl", [])
    (other,) = _guards(tmp_path / "other.db", 1)
    other.journal.close()  # type: ignore[union-attr]
    wrong_key = SQLiteGuardJournal(path, b"x" * 32)
    with pytest.raises(IntegrityError):
        wrong_key.read(0)
