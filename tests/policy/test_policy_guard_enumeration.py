"""The enumeration detector catches walks and sweeps, and never random ids.

sovra's record ids are random (``r-<32 hex>``). An earlier detector read their trailing
digits as one sequence, so a service reading its own fresh records tripped it by chance
(24 of 4,000 reads refused). Here: 100,000 such reads through the decision point, and
3,000 through the gateway's flow, with nothing refused; walks and sweeps through names
that *are* guessable still are.
"""

from __future__ import annotations

import random
import uuid

import pytest
from policy_cases import PURPOSES, SVC, commit

from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.policy import BulkGuard, BulkLimits, DecisionPoint, GrantFacts, RecordFacts, default_pack

NONE = GrantFacts.none()
SERVICE = SVC["VN"]


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _point(clock: _Clock, **limits: int) -> DecisionPoint:
    return DecisionPoint(default_pack(), BulkGuard(BulkLimits(**limits), clock), PURPOSES)


def _read(point: DecisionPoint, record_id: str, subject: str, *names: str) -> bool:
    record = RecordFacts(record_id, commit("VN", subject), "VN")
    named = {"names": names} if names else {}
    return point.decide(SERVICE, "billing", [record], NONE, **named).allow


def _refusals(point: DecisionPoint, clock: _Clock, ids: list[str]) -> list[int]:
    refused = []
    for n, rid in enumerate(ids):
        # 100 subjects, well inside every budget; the clock moves, but every read stays
        # inside the window, so the detector sees all of them together.
        clock.now += 0.01
        if not _read(point, rid, f"s{n % 100}"):
            refused.append(n)
    return refused


@pytest.mark.slow
def test_100000_reads_of_fresh_random_records_are_never_enumeration() -> None:
    clock = _Clock()
    point = _point(clock)
    rng = random.Random(13)
    ids = [f"r-{rng.getrandbits(128):032x}" for _ in range(100_000)]
    assert _refusals(point, clock, ids) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        lambda rng: str(rng.randrange(10**11, 10**12)),  # random numbers from a large space
    ],
    ids=["uuid", "random-number"],
)
def test_other_random_id_shapes_are_never_enumeration(make) -> None:
    clock = _Clock()
    point = _point(clock)
    rng = random.Random(7)
    assert _refusals(point, clock, [make(rng) for _ in range(20_000)]) == []


@pytest.mark.slow
def test_reads_through_the_gateway_of_fresh_records_are_never_refused(tmp_path) -> None:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/log", custodians="in-process")
    now = [1_790_000_000.0]
    dep = Deployment.open(root, clock=lambda: now[0])
    try:
        svc = dep.store.get_principal("svc-pl")
        refused = []
        for n in range(3_000):
            receipt = dep.gateway.ingest(
                svc, subject_id=f"customer-{n % 100}@example.pl", jurisdiction="PL", content="x"
            )
            try:
                dep.gateway.access(svc, purpose="billing", record_ids=[receipt.record_id])
            except Denied:
                refused.append(n)
        assert refused == []
    finally:
        dep.close()


@pytest.mark.parametrize(
    ("order", "caught_at"),
    [
        (list(range(1, 41)), 25),  # a walk up
        (list(range(40, 0, -1)), 25),  # a walk down
        (list(range(1000, 1400, 10)), 25),  # a sweep at stride 10
        (list(range(9000, 1000, -321)), 25),  # a sweep down at stride 321
    ],
    ids=["walk-up", "walk-down", "sweep-10", "sweep-down-321"],
)
def test_a_walk_or_a_sweep_of_record_ids_is_caught(order: list[int], caught_at: int) -> None:
    clock = _Clock()
    point = _point(clock)
    allowed = [_read(point, f"inv-2026-{n:06d}", f"s{i}") for i, n in enumerate(order)]
    assert allowed == [True] * (caught_at - 1) + [False] * (len(order) - caught_at + 1)
    assert point.guard.alerts()[0].policies == ("enumeration-detected",)


def test_a_walk_in_any_order_and_in_another_field_is_caught() -> None:
    clock = _Clock()
    point = _point(clock, enumeration_run=10)
    shuffled = list(range(100, 110))
    random.Random(3).shuffle(shuffled)
    allowed = [_read(point, f"{n}-2026-inv", f"s{n}") for n in shuffled]
    assert allowed == [True] * 9 + [False]


def test_a_walk_inside_one_request_is_caught() -> None:
    clock = _Clock()
    point = _point(clock, enumeration_run=10, request_limit=100)
    records = [RecordFacts(f"acct{n}", commit("VN", f"s{n}"), "VN") for n in range(10)]
    decision = point.decide(SERVICE, "billing", records, NONE)
    assert not decision.allow and decision.policies == ("enumeration-detected",)
    random_records = [RecordFacts(f"r-{uuid.uuid4().hex}", r.subject, "VN") for r in records]
    assert point.decide(SERVICE, "billing", random_records, NONE).allow


def test_a_walk_through_subject_ids_is_caught_though_record_ids_are_random() -> None:
    clock = _Clock()
    point = _point(clock)
    allowed = [
        _read(point, f"r-{uuid.uuid4().hex}", f"c{n}", f"VN/customer-{n:05d}") for n in range(1, 31)
    ]
    assert allowed == [True] * 24 + [False] * 6


def test_jumps_and_repeats_are_not_enumeration() -> None:
    clock = _Clock()
    point = _point(clock, enumeration_run=5)
    # the same names again, and numbers that are neither consecutive nor evenly spaced
    names = ["inv-7", "inv-7", "inv-9", "inv-15", "inv-16", "inv-40", "inv-41", "inv-100"]
    assert all(_read(point, name, f"s{i}") for i, name in enumerate(names))
    # the walk that was refused is still refused at each further step, then expires
    walk = [_read(point, f"acct-{n}", "w") for n in range(5)]
    assert walk == [True] * 4 + [False]
    assert not _read(point, "acct-5", "w")
    clock.now += 3600
    assert _read(point, "acct-6", "w")


def test_the_gateway_hands_named_subject_ids_to_the_guard(tmp_path) -> None:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="sovra.test/log", custodians="in-process")
    dep = Deployment.open(root, clock=lambda: 1_790_000_000.0)
    try:
        svc = dep.store.get_principal("svc-pl")
        ids = [
            dep.gateway.ingest(
                svc, subject_id=f"c-{n:04d}", jurisdiction="PL", content="x"
            ).record_id
            for n in range(25)
        ]
        for n in range(24):
            dep.gateway.access(svc, purpose="billing", subjects=[("PL", f"c-{n:04d}")])
        with pytest.raises(Denied, match="enumeration") as info:
            dep.gateway.access(svc, purpose="billing", subjects=[("PL", "c-0024")])
        entry = dep.gateway.log.entry(info.value.log_index)
        assert b'"effect":"deny"' in entry and b"enumeration-detected" in entry
        # the same subjects named in another order by their records' random ids: no walk
        assert dep.gateway.access(svc, purpose="billing", record_ids=ids).decision.allow
    finally:
        dep.close()
