"""What one place deciding costs: governance decisions by the pack, and their log entries.

    .venv/bin/python bench/authorize.py [--quick] [--decisions N]

Every authorization outside a read (the ingest role, grants, pack activation, the review
queue, alerts, explanations, erasure, reports) is a Cedar decision of the active pack on a
``Target`` entity, memoised per distinct fact tuple like a read's. Timed in one process:

- ``decide_per_s``: :meth:`DecisionPoint.decide_action` with the memo warm (a mix of
  actions and roles, allowed and denied), the cost an ingest now pays for its role check;
- ``cold_per_s``: the same with the memo emptied before each decision (Cedar each time);
- ``logged_per_s``: decide and append the decision entry to a real deployment's SQLite log
  (what a governance call pays, allow or deny), one at a time;
- ``ingest_per_s``: in-process ingests of a short record on the same deployment, and
  ``decide_share_of_ingest``: warm decide time / ingest time.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.governance import Authorizer
from sovra.model import Principal, Role
from sovra.policy import BulkGuard, BulkLimits, DecisionPoint, Target, default_pack

ROLES = [
    Principal(f"p-{role}", "PL", role, b"\x01" * 32, "c" * 64 if role is Role.SUBJECT else "")
    for role in Role
]
CASES = [
    ("ingest", Target(jurisdiction="PL", subjects=("c" * 64,))),
    ("view-reviews", Target()),
    ("shred", Target(jurisdiction="PL", subjects=("c" * 64,))),
    ("report", Target(jurisdiction="VN", subjects=("d" * 64,))),
    ("revoke-grant", Target(jurisdiction="PL", grantee="p-authority", signed=True)),
]


def _decisions() -> DecisionPoint:
    guard = BulkGuard(BulkLimits(50, 500, 3600), time.time)
    return DecisionPoint(default_pack(), guard, {"PL": ["customer-support"], "VN": []})


def decide(n: int, *, cold: bool) -> tuple[float, float]:
    """Decisions per second and the mean seconds per decision."""
    point = _decisions()
    memo = point._state.memo  # emptied to time Cedar itself
    work = [(p, a, t) for p in ROLES for a, t in CASES]
    start = time.perf_counter()
    for i in range(n):
        principal, action, target = work[i % len(work)]
        if cold:
            memo.clear()
        point.decide_action(principal, action, target)
    elapsed = time.perf_counter() - start
    return n / elapsed, elapsed / n


def logged(root: Path, n: int) -> float:
    """Decide and log, one decision at a time, on a real deployment's log."""
    dep = Deployment.open(root)
    try:
        authorizer = Authorizer(dep.gateway.log, dep.gateway.decisions, time.time)
        work = [(p, a, t) for p in ROLES for a, t in CASES]
        start = time.perf_counter()
        for i in range(n):
            principal, action, target = work[i % len(work)]
            with contextlib.suppress(Denied):
                authorizer.authorize(principal, action, target)
        return n / (time.perf_counter() - start)
    finally:
        dep.close()


def ingest(root: Path, n: int) -> tuple[float, float]:
    dep = Deployment.open(root)
    try:
        svc = dep.store.get_principal("svc-pl")
        start = time.perf_counter()
        for i in range(n):
            dep.gateway.ingest(
                svc, subject_id=f"s{i}@example.pl", jurisdiction="PL", content=f"note {i}"
            )
        elapsed = time.perf_counter() - start
        return n / elapsed, elapsed / n
    finally:
        dep.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--decisions", type=int, default=0, help="decisions to time")
    args = parser.parse_args()
    n = args.decisions or (20_000 if args.quick else 200_000)
    warm_rate, warm_mean = decide(n, cold=False)
    cold_rate, _ = decide(max(n // 20, 500), cold=True)
    with tempfile.TemporaryDirectory(prefix="sovra-bench-authorize-") as tmp:
        root = Path(tmp) / "deployment"
        Deployment.init(root, custodians="in-process")
        logged_rate = logged(root, max(n // 20, 500))
        ingest_rate, ingest_mean = ingest(root, max(n // 40, 250))
    figures = {
        "decisions": n,
        "decide_per_s": round(warm_rate),
        "cold_per_s": round(cold_rate),
        "logged_per_s": round(logged_rate),
        "ingest_per_s": round(ingest_rate),
        "decide_share_of_ingest": round(warm_mean / ingest_mean, 4),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(f"sovra authorization benchmark ({n} governance decisions, one process)")
    print(f"decide (memo warm)    {warm_rate:>12,.0f}/s")
    print(f"decide (memo cold)    {cold_rate:>12,.0f}/s")
    print(f"decide + log entry    {logged_rate:>12,.0f}/s")
    print(
        f"ingest                {ingest_rate:>12,.0f}/s  (deciding: {warm_mean / ingest_mean:.2%})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
