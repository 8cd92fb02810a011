"""Decision throughput of the full policy path beside a bare Cedar call, in the same run.

    .venv/bin/python bench/policy.py [--quick] [--decisions N]

The full path is what the gateway runs per access request, minus storage and the log:
the presented grant checked (signatures once per digest; revocation and window on every
use), the bulk guard's budgets assessed and counted, the per-record facts built, Cedar's
answer (memoised per distinct fact tuple, evaluated in one batch on a miss), the reasons
assembled into a :class:`~sovra.model.Decision`. The workload mixes home services, a
subject, a home authority, a foreign authority under a signed grant and foreign services
(denied, with their reason), over 5 jurisdictions and 2,000 subjects, one record per
request.

The baseline is one bare ``cedarpy.is_authorized`` call on the same request: pre-parsed
PolicySet and Entities handles (the entities parsed against the schema once), structured
UIDs, and no per-call schema argument (the fastest form of the call). The ratio is
full / bare (above 1.0: the full path decides faster than one bare evaluation). p50 and
p99 are per decision, timed one by one. "memo cold" is the full path with the memo
emptied before every decision, so each one evaluates Cedar (the worst case: a request
whose facts were never seen). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import cedarpy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.model import Grant, Principal, Role, subject_commitment
from sovra.policy import (
    BulkGuard,
    BulkLimits,
    DecisionPoint,
    GrantChecker,
    GrantFacts,
    RecordFacts,
    default_pack,
    sign_grant,
)

JURISDICTIONS = ("PL", "VN", "DE", "US", "CN")
PURPOSES = {j: ["customer-support", "service-operation", "billing"] for j in JURISDICTIONS}
SECRET = os.urandom(32)
NOW = 1_800_000_000.0


def commit(j: str, s: str) -> str:
    return subject_commitment(SECRET, j, s)


def workload(
    n_subjects: int,
) -> tuple[list[tuple[Principal, str, list[RecordFacts], Grant | None]], GrantChecker]:
    keys = {j: Ed25519PrivateKey.generate() for j in JURISDICTIONS}
    checker = GrantChecker({j: k.public_key() for j, k in keys.items()}, commit)
    subjects = [(JURISDICTIONS[i % 5], f"person-{i}@example") for i in range(n_subjects)]
    services = {
        j: Principal(f"svc-{j.lower()}", j, Role.SERVICE, b"\x01" * 32) for j in JURISDICTIONS
    }
    home_authority = Principal("authority-pl", "PL", Role.AUTHORITY, b"\x02" * 32)
    foreign = Principal("authority-us", "US", Role.AUTHORITY, b"\x03" * 32)
    named = [s for j, s in subjects if j == "VN"][:40]
    grant = sign_grant(
        Grant(
            grant_id="mla-vn-bench",
            grantee="authority-us",
            grantee_jurisdiction="US",
            approver="VN",
            subjects=tuple(named),
            purpose="foreign-legal-process",
            legal_basis="MLA treaty, request 2026/17",
            not_before=int(NOW) - 3600,
            not_after=int(NOW) + 86400,
            categories=("plain", "email", "phone"),
            max_records=10,
        ),
        keys["VN"],
    )
    requests: list[tuple[Principal, str, list[RecordFacts], Grant | None]] = []
    for i, (j, s) in enumerate(subjects):
        rec = RecordFacts(f"r-{os.urandom(6).hex()}", commit(j, s), j, frozenset({"email"}))
        requests.append((services[j], "customer-support", [rec], None))
        if i % 4 == 0:
            me = Principal(f"subject-{i}", j, Role.SUBJECT, b"\x04" * 32, commit(j, s))
            requests.append((me, "own-request", [rec], None))
        if j == "PL" and i % 3 == 0:
            requests.append((home_authority, "domestic-legal-process", [rec], None))
        if i % 5 == 1:  # a foreign service: denied, explained
            other = JURISDICTIONS[(i + 1) % 5]
            requests.append((services[other], "customer-support", [rec], None))
        if j == "VN" and s in named:
            requests.append((foreign, "foreign-legal-process", [rec], grant))
    return requests, checker


def full_path(n: int, n_subjects: int, *, cold: bool = False) -> tuple[float, list[int], int]:
    requests, checker = workload(n_subjects)
    limits = BulkLimits(
        request_limit=50,
        window_limit=10**9,
        window_s=3600,
        jurisdiction_limit=10**9,
        foreign_limit=10**9,
        enumeration_run=10**6,
    )
    guard = BulkGuard(limits, lambda: NOW)
    point = DecisionPoint(default_pack(), guard, PURPOSES)
    none = GrantFacts.none()
    for p, purpose, recs, g in requests:  # warm the memo as a running gateway would be
        point.decide(
            p, purpose, recs, none if g is None else checker.check(g, now_s=int(NOW), revoked=False)
        )
    lat: list[int] = []
    allowed = 0
    m = len(requests)
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for i in range(n):
        p, purpose, recs, g = requests[i % m]
        if cold:
            point._state.memo.clear()  # every decision evaluates Cedar: the miss path
        t0 = clock()
        facts = none if g is None else checker.check(g, now_s=int(NOW), revoked=False)
        d = point.decide(p, purpose, recs, facts)
        lat.append(clock() - t0)
        allowed += d.allow
    elapsed = time.perf_counter() - start
    return n / elapsed, lat, allowed


def bare(n: int) -> tuple[float, list[int]]:
    pack = default_pack()
    schema = pack.schema
    entities = cedarpy.Entities.from_json_str(
        json.dumps(
            [
                {
                    "uid": {"type": "Principal", "id": "svc-vn"},
                    "attrs": {"role": "service", "jurisdiction": "VN"},
                    "parents": [],
                },
                {
                    "uid": {"type": "Record", "id": "r-1"},
                    "attrs": {
                        "jurisdiction": "VN",
                        "home_purposes": PURPOSES["VN"],
                        "adequate_to": [],
                        "contracts_with": [],
                        "own": False,
                        "in_grant": False,
                        "grant_categories": True,
                        "region_allowed": True,
                        "within_retention": True,
                    },
                    "parents": [],
                },
            ]
        ),
        schema,
    )
    request = {
        "principal": {"type": "Principal", "id": "svc-vn"},
        "action": {"type": "Action", "id": "read"},
        "resource": {"type": "Record", "id": "r-1"},
        "context": {
            "purpose": "customer-support",
            "justification": "customer-initiated-support",
            "grant": {
                "present": False,
                "verified": False,
                "approver": "",
                "issued_to_requester": False,
                "purpose": "",
                "within_max_records": True,
                "cosigned": False,
                "bulk_scope": False,
            },
            "bulk": {
                "over_request_cap": False,
                "over_window_budget": False,
                "over_jurisdiction_budget": False,
                "over_foreign_budget": False,
                "enumeration": False,
            },
        },
    }
    assert cedarpy.is_authorized(request, pack.policy_set, entities, None).allowed
    lat: list[int] = []
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for _ in range(n):
        t0 = clock()
        cedarpy.is_authorized(request, pack.policy_set, entities)
        lat.append(clock() - t0)
    return n / (time.perf_counter() - start), lat


def p(lat: list[int], q: float) -> float:
    ordered = sorted(lat)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--decisions", type=int, default=None)
    args = parser.parse_args()
    n = args.decisions or (40_000 if args.quick else 300_000)
    rate, lat, allowed = full_path(n, 2000)
    bare_rate, bare_lat = bare(max(n // 4, 5000))
    cold_rate, cold_lat, _ = full_path(max(n // 8, 2000), 2000, cold=True)
    figures = {
        "decisions": n,
        "decisions_per_s": round(rate),
        "bare_per_s": round(bare_rate),
        "ratio_vs_bare": round(rate / bare_rate, 3),
        "p50_ms": round(p(lat, 0.50), 4),
        "p99_ms": round(p(lat, 0.99), 4),
        "bare_p99_ms": round(p(bare_lat, 0.99), 4),
        "cold_per_s": round(cold_rate),
        "cold_p99_ms": round(p(cold_lat, 0.99), 4),
        "allowed_share": round(allowed / n, 3),
        "mean_ms": round(statistics.fmean(lat) / 1e6, 4),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(f"sovra policy benchmark ({n} decisions, one process, one thread)")
    print(f"{'':22}{'decisions/s':>14}{'p99 ms':>10}")
    print(f"{'full decision path':22}{rate:>14,.0f}{figures['p99_ms']:>10.4f}")
    print(f"{'bare cedarpy call':22}{bare_rate:>14,.0f}{figures['bare_p99_ms']:>10.4f}")
    print(f"{'full path, memo cold':22}{cold_rate:>14,.0f}{figures['cold_p99_ms']:>10.4f}")
    print(f"ratio full / bare: {rate / bare_rate:.2f}x; {allowed / n:.0%} of decisions allowed")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
