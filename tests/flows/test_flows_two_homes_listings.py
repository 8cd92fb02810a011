"""Subjects of two countries seen from the second home: listings, reports, residency, check.

Anna's two-home record (first home PL, second DE) is hers in DE as much as in PL: naming
her by her DE identity lists it, DE's report of her shows what PL's authority did to it,
``sovra residency report`` counts it under both homes and checks its region against both
homes' rules, and ``sovra check`` checks her key at both custodians.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.flows.two_homes import ANNA, TEXT, Two, configure, ingest

from sovra.check import check
from sovra.config import Config
from sovra.deployment import Deployment
from sovra.errors import BadRequest, Denied, NotFound
from sovra.model import LogEntry, Role
from sovra.residency import residency_report
from sovra.server.page_tally import Tally


def _subject_access(two: Two, who: str, *subjects: tuple[str, str]) -> Any:
    return two.gw.access(
        two.principal(who),
        purpose="subject-access",
        justification="subject-request",
        subjects=list(subjects),
    )


def test_naming_her_by_her_second_home_lists_her_two_home_records(two: Two) -> None:
    rid = ingest(two)
    # Her own records by either identity, her two-home one listed once.
    res = _subject_access(two, "subject-anna", ("DE", ANNA))
    assert res.records == {rid: res.records[rid]} and "Anna Kowalska" in res.records[rid]
    res = _subject_access(two, "subject-anna", ("PL", ANNA), ("DE", ANNA))
    assert list(res.records) == [rid]
    decision = two.entry(res.decision_receipt.index).fields
    assert decision["records"] == [rid] and decision["homes"] == ["DE", "PL"]
    # Signed in as DE knows her, she reads her DE record and the two-home one alike.
    de = two.gw.commitment("DE", ANNA)
    two.dep.register("subject-anna-de", "DE", Role.SUBJECT, subject=de)
    only_de = two.gw.ingest(
        two.principal("svc-de"), subject_id=ANNA, jurisdiction="DE", content="DE only"
    ).record_id
    res = _subject_access(two, "subject-anna-de", ("DE", ANNA))
    assert sorted(res.records) == sorted([rid, only_de])
    assert res.records[only_de] == "DE only"
    assert sorted(two.entry(res.decision_receipt.index).fields["subjects"]) == sorted(
        [de, two.gw.commitment("PL", ANNA)]
    )
    # Someone else named by her DE identity is still no one's record here.
    with pytest.raises(NotFound, match="no records for the named subjects"):
        _subject_access(two, "subject-anna", ("DE", "jan@example.eu"))


def test_a_listing_by_the_second_home_is_decided_under_both_homes(two: Two) -> None:
    rid = ingest(two)
    size = two.gw.log.size
    # A DE service naming her by her DE identity finds the record and is refused by PL's
    # rules (a DE service is foreign to PL), logged.
    with pytest.raises(Denied) as info:
        two.gw.access(two.principal("svc-de"), purpose="customer-support", subjects=[("DE", ANNA)])
    entry = two.entry(info.value.log_index).fields
    assert entry["effect"] == "deny" and entry["records"] == [rid]
    assert "PL" in entry["reason"] and two.gw.log.size == size + 1


def test_each_homes_report_shows_the_other_homes_erasure(two: Two) -> None:
    rid = ingest(two)
    for home, other in (("PL", "DE"), ("DE", "PL")):
        two.dep.governance.shred(
            two.principal(f"authority-{home.lower()}"), jurisdiction=home, subject_id=ANNA
        )
        report = two.dep.governance.subject_report(
            two.principal(f"authority-{other.lower()}"), jurisdiction=other, subject_id=ANNA
        )
        shreds = [
            LogEntry.from_bytes(e.entry).fields
            for e in report.entries
            if LogEntry.from_bytes(e.entry).kind == "shred"
        ]
        assert {(s["jurisdiction"], s["records"]) for s in shreds} >= {(home, 1)}, shreds
    with pytest.raises(Denied, match="did not release its share"):
        _subject_access(two, "subject-anna", ("PL", ANNA))
    assert two.dep.store.get_record(rid).header.record_id == rid  # unreadable, not deleted


def test_the_page_counts_a_two_home_record_under_both_homes(two: Two) -> None:
    ingest(two)
    with pytest.raises(Denied):
        two.gw.access(two.principal("svc-pl"), purpose="customer-support", subjects=[("PL", ANNA)])
    tally = Tally(two.dep.store.get_principal)
    tally.update(
        two.gw.log.size, lambda start, end: [two.gw.log.entry(i) for i in range(start, end)]
    )
    facets = tally.facets
    assert facets["ingest"].keys() >= {"PL|none declared", "DE|none declared"}
    assert facets["jurisdiction"].keys() >= {"deny|PL", "deny|DE"}


def test_residency_counts_and_checks_both_homes(two: Two) -> None:
    rid = ingest(two)
    one = two.gw.ingest(
        two.principal("svc-pl"), subject_id=ANNA, jurisdiction="PL", content="one home"
    ).record_id
    report = residency_report(two.dep.config, two.dep.store, two.gw.blobs, by_subject=True)
    assert report.ok, report.problems
    placed = {(p.jurisdiction, p.region): (p.records, p.two_homes) for p in report.placed}
    assert placed == {
        ("PL", "eu-central-de"): (1, 1),
        ("DE", "eu-central-de"): (1, 1),
        ("PL", "eu-central-pl"): (1, 0),
    }
    pl, de = two.gw.commitment("PL", ANNA), two.gw.commitment("DE", ANNA)
    per = {(s.subject, s.jurisdiction, s.region): s.records for s in report.subjects or []}
    assert per == {(pl, "PL", "eu-central-de"): 1, (de, "DE", "eu-central-de"): 1,
                   (pl, "PL", "eu-central-pl"): 1}  # fmt: skip
    assert sorted(p["two_homes"] for p in report.to_dict()["placed"]) == [0, 1, 1]
    # PL's rules change: eu-central-de is no longer PL's. Her two-home record is reported
    # (PL no longer allows where it lies); her one-home PL record is not.
    narrowed = _narrowed(two.dep.root)
    report = residency_report(narrowed, two.dep.store, two.gw.blobs)
    assert [(p.kind, p.key) for p in report.problems] == [("disallowed-region", rid)]
    assert report.problems[0].detail == (
        "a record of PL and DE in region eu-central-de; PL allows eu-central-pl"
    )
    assert one not in {p.key for p in report.problems}


def test_homes_whose_regions_do_not_meet_refuse_a_two_home_ingest(
    template: Path, tmp_path: Path, clock: Any
) -> None:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    configure(root)
    _narrowed(root, write=True)  # PL: eu-central-pl only; DE: eu-central-de only
    dep = Deployment.open(root, clock=clock)
    try:
        size, rows = dep.gateway.log.size, dep.store.count_records()
        with pytest.raises(BadRequest, match=re.escape(
            "no storage region is allowed by both PL (eu-central-pl) and DE (eu-central-de); "
            "nothing was stored"
        )):  # fmt: skip
            dep.gateway.ingest(
                dep.store.get_principal("svc-pl"),
                subject_id=ANNA,
                jurisdiction="PL",
                content=TEXT,
                other_homes=["DE"],
            )
        assert (dep.gateway.log.size, dep.store.count_records()) == (size, rows)
    finally:
        dep.close()


def test_check_looks_for_her_key_at_both_custodians(two: Two, clock: Any) -> None:
    ingest(two)
    now = int(clock() * 1000)
    de = two.gw.commitment("DE", ANNA)
    present = check(
        two.dep.store, two.gw.log, two.gw.blobs, now_ms=now, subject_keys=lambda j, s: "present"
    )
    assert present.clean, present.problems
    asked: list[tuple[str, str]] = []

    def lost_in_de(jurisdiction: str, subject: str) -> Any:
        asked.append((jurisdiction, subject))
        return "missing" if (jurisdiction, subject) == ("DE", de) else "present"

    report = check(two.dep.store, two.gw.log, two.gw.blobs, now_ms=now, subject_keys=lost_in_de)
    assert ("DE", de) in asked and ("PL", two.gw.commitment("PL", ANNA)) in asked
    assert [(f.kind, f.detail) for f in report.problems] == [
        (
            "subject-key-missing",
            "custodian DE holds no key for its subject in her second home and shredded none",
        )
    ]


def _narrowed(root: Path, *, write: bool = False) -> Config:
    """The deployment's configuration with PL allowing only its own region again."""
    text = (root / "sovra.toml").read_text()
    narrow = text.replace(
        'regions = ["eu-central-pl", "eu-central-de"]', 'regions = ["eu-central-pl"]'
    )
    assert narrow != text
    path = root / ("sovra.toml" if write else "sovra-narrowed.toml")
    path.write_text(narrow)
    return Config.load(path)


def test_sovra_residency_report_shows_both_homes(two: Two) -> None:
    import json

    from typer.testing import CliRunner

    from sovra.cli import app

    ingest(two)
    root = str(two.dep.root)
    ran = CliRunner().invoke(app, ["residency", "report", "-d", root, "--json"])
    assert ran.exit_code == 0, ran.output
    placed = {
        (p["jurisdiction"], p["region"]): (p["records"], p["two_homes"])
        for p in json.loads(ran.stdout)["placed"]
    }
    assert placed == {("PL", "eu-central-de"): (1, 1), ("DE", "eu-central-de"): (1, 1)}
    table = CliRunner().invoke(app, ["residency", "report", "-d", root])
    assert table.exit_code == 0, table.output
    assert "every record where its jurisdiction allows" in table.stdout


def test_a_home_sharing_no_region_skips_the_second_home_lookup(two: Two) -> None:
    from sovra import _homes

    config, placement = two.dep.config, two.gw.placement
    # PL and DE share eu-central-de; VN shares none, so no record has VN as second home.
    assert [_homes.may_be_second_home(config, placement, j) for j in ("PL", "DE", "VN", "XX")] == [
        True,
        True,
        False,
        False,
    ]
    rid = ingest(two)
    de = two.gw.commitment("DE", ANNA)
    listed = _homes.records_for_subject(two.dep.store, two.gw.log, de)
    assert [m.header.record_id for m in listed] == [rid]
    assert _homes.records_for_subject(two.dep.store, two.gw.log, de, second=False) == []


def test_a_listing_by_jurisdiction_has_her_two_home_record_under_both_homes(two: Two) -> None:
    rid = ingest(two)
    one = two.gw.ingest(
        two.principal("svc-pl"), subject_id=ANNA, jurisdiction="PL", content="PL only"
    ).record_id

    def by(jurisdiction: str, who: str = "subject-anna", **kw: Any) -> Any:
        return two.gw.access(
            two.principal(who), purpose=kw.pop("purpose", "subject-access"),
            jurisdiction=jurisdiction, **kw,
        )  # fmt: skip

    mine = {"justification": "subject-request"}
    assert set(by("PL", **mine).records) == {rid, one}  # her first home: both of hers
    res = by("DE", **mine)  # her second home: the two-home record, decided under both
    assert res.records == {rid: two.gw.access(
        two.principal("subject-anna"), purpose="subject-access",
        justification="subject-request", record_ids=[rid],
    ).records[rid]}  # fmt: skip
    assert two.entry(res.decision_receipt.index).fields["homes"] == ["DE", "PL"]

    # A DE service listing DE: Jan's DE record and Anna's two-home one; PL's
    # rules refuse it the latter (a DE service is foreign to PL), logged, nothing released.
    jan = two.gw.ingest(
        two.principal("svc-pl"), subject_id="jan@example.de", jurisdiction="DE", content="Jan"
    ).record_id
    releases = len(two.entries("key_release"))
    with pytest.raises(Denied) as info:
        by("DE", "svc-de", purpose="customer-support")
    entry = two.entry(info.value.log_index).fields
    assert entry["effect"] == "deny" and sorted(entry["records"]) == sorted([rid, jan])
    assert len(two.entries("key_release")) == releases
    # A jurisdiction that is neither of her homes does not list it.
    with pytest.raises(NotFound, match="no records of VN subjects"):
        by("VN", "authority-vn", justification="domestic-legal-process")
