"""The bulk guard's cost per decision, and a decision entry's size against its record count.

    .venv/bin/python bench/guard.py [--quick] [--decisions N]

- guard: one service reading its own fresh records one at a time (``r-<32 hex>`` ids,
  200 subjects, every read inside the window so the window only grows), through
  ``BulkGuard.assess`` + ``record`` (the guard alone) and through ``DecisionPoint.decide``
  (the full decision). Reported: CPU microseconds per decision (process time, the best
  of 5 rounds of ``N / 5``: other jobs on the machine do not count), how many of the N
  honest reads the guard refused (the enumeration flag), and at which step a walk
  through ``inv-000001, inv-000002, ...`` is caught.
- entries: the bytes of a decision entry over 1 .. 10,000 records of as many subjects,
  and of a key-release-sized list, with the record ids sovra makes; an entry the log
  refuses (over 65,536 bytes) is reported with its size and ``"fits": false``.
- custodian check: what checking a 10,000-record allow's lists against its roots costs
  (once per batch of up to 1,000 keys).

The same file runs against an older checkout (``PYTHONPATH=<old>/src``): figures the old
code cannot produce are ``null``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import time
from collections.abc import Callable

from sovra.errors import BadRequest
from sovra.model import Decision, Principal, Role, subject_commitment
from sovra.policy import BulkGuard, BulkLimits, DecisionPoint, GrantFacts, RecordFacts, default_pack

SECRET = b"b" * 32
NOW = 1_800_000_000.0
SERVICE = Principal("svc-vn", "VN", Role.SERVICE, b"\x01" * 32)
PURPOSES = {"VN": ["customer-support", "billing", "service-operation"]}


def _ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"r-{rng.getrandbits(128):032x}" for _ in range(n)]


def _subjects(n: int) -> list[str]:
    return [subject_commitment(SECRET, "VN", f"customer-{i}") for i in range(n)]


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        self.now += 0.001  # every read stays inside the hour-long window
        return self.now


def _guard() -> BulkGuard:
    return BulkGuard(BulkLimits(), _Clock())


def guard_alone(n: int, rounds: int = 5) -> tuple[float, int]:
    """CPU microseconds per assess + record (best round), and the refusals among all reads."""
    subjects = _subjects(200)
    per: list[float] = []
    refused = 0
    for r in range(rounds):
        guard = _guard()
        ids = _ids(n // rounds, seed=r)
        start = time.process_time()
        for i, rid in enumerate(ids):
            usage = guard.assess("svc-vn", "VN", [(subjects[i % 200], "VN")], [rid])
            if usage.flags.enumeration:
                refused += 1
            else:
                guard.record(usage)
        per.append((time.process_time() - start) / len(ids) * 1e6)
    return min(per), refused


def full_decision(n: int, rounds: int = 5) -> tuple[float, int]:
    """CPU microseconds per DecisionPoint.decide (best round), and how many were refused."""
    subjects = _subjects(200)
    none = GrantFacts.none()
    per: list[float] = []
    refused = 0
    for r in range(rounds):
        point = DecisionPoint(default_pack(), _guard(), PURPOSES)
        ids = _ids(n // rounds, seed=100 + r)
        facts = [RecordFacts(rid, subjects[i % 200], "VN") for i, rid in enumerate(ids)]
        start = time.process_time()
        for record in facts:
            refused += not point.decide(SERVICE, "billing", [record], none).allow
        per.append((time.process_time() - start) / len(ids) * 1e6)
    return min(per), refused


def walk_caught_at() -> int | None:
    point = DecisionPoint(default_pack(), _guard(), PURPOSES)
    subjects = _subjects(100)
    for step in range(1, 101):
        record = RecordFacts(f"inv-{step:06d}", subjects[step - 1], "VN")
        if not point.decide(SERVICE, "billing", [record], GrantFacts.none()).allow:
            return step
    return None


def entry_bytes(records: int) -> tuple[int, bool]:
    """The size of a decision entry over *records* records of as many subjects."""
    decision = Decision(
        decision_id=os.urandom(16).hex(),
        allow=True,
        reason="the home jurisdiction's authority under domestic legal process",
        principal="authority-vn",
        purpose="domestic-legal-process",
        records=tuple(_ids(records, seed=records)),
        subjects=tuple(sorted(_subjects(records))),
        policies=("home-authority-domestic-process",),
        justification="domestic-legal-process",
    )
    try:
        return len(decision.to_entry(int(NOW * 1000)).to_bytes()), True
    except BadRequest as exc:
        found = re.search(r"of (\d+) bytes", exc.message)
        return (int(found.group(1)) if found else -1), False


def custodian_check_ms() -> tuple[float, float] | None:
    """Milliseconds to check a 10,000-record allow's two lists against its roots: the first
    time (the custodian service's first batch of a request), and again, with the same lists
    parsed afresh (each further batch: the roots of recent lists are remembered)."""
    try:
        from sovra import model
        from sovra.model import id_fields, named_ids  # absent before entries had roots
    except ImportError:
        return None
    ids, subjects = _ids(10_000, seed=7), sorted(_subjects(10_000))
    fields = {**id_fields("records", ids), **id_fields("subjects", subjects)}

    def check() -> None:
        named_ids(fields, "records", json.loads(json.dumps(ids)))
        named_ids(fields, "subjects", json.loads(json.dumps(subjects)))

    def first() -> None:
        model._ids_root.cache_clear()
        check()

    return _best_ms(first), _best_ms(check)


def _best_ms(fn: Callable[[], None], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return round(min(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--decisions", type=int, help="honest reads per measurement")
    args = parser.parse_args()
    n = args.decisions or (20_000 if args.quick else 100_000)
    guard_us, guard_refused = guard_alone(n)
    decide_us, decide_refused = full_decision(n)
    sizes = {}
    for records in (1, 64, 65, 1_000, 2_000, 7_443, 10_000):
        size, fits = entry_bytes(records)
        sizes[str(records)] = {"bytes": size, "fits": fits}
    figures = {
        "bench": "guard",
        "honest_reads": n,
        "guard_us_per_decision": round(guard_us, 2),
        "guard_refused_honest_reads": guard_refused,
        "decide_us_per_decision": round(decide_us, 2),
        "decide_refused_honest_reads": decide_refused,
        "walk_caught_at_step": walk_caught_at(),
        "decision_entry": sizes,
        "custodian_check_10000_ms": custodian_check_ms(),  # (fresh lists, same lists)
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    for key, value in figures.items():
        if key != "decision_entry":
            print(f"{key:>30}: {value}")
    for records, size in sizes.items():
        label = f"entry over {records} records"
        print(f"{label:>30}: {size['bytes']} bytes, fits {size['fits']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
