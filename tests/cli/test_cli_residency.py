"""``sovra residency report``: where each jurisdiction's records lie, and the checks against
the buckets' and folders' contents (a deleted object, a blob no record names, a record in a
region its jurisdiction's rules do not allow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.conftest import Sovra, s3_options

from sovra.config import Config
from sovra.deployment import Deployment


def _counts(root: Path) -> dict[tuple[str, str], int]:
    """Visible records per (jurisdiction, region), from the rows themselves."""
    dep = Deployment.open(root)
    try:
        found: dict[tuple[str, str], int] = {}
        after = ""
        while page := dep.store.records_page(after, 1000):
            after = page[-1].header.record_id
            for m in page:
                key = (m.header.jurisdiction, m.header.region)
                found[key] = found.get(key, 0) + 1
        return found
    finally:
        dep.close()


def _disallow_pl_region(root: Path, provider_table: str) -> None:
    path = root / "sovra.toml"
    text = path.read_text()
    text = text.replace(
        'regions = ["eu-central-pl"]', 'regions = ["eu-central-de", "eu-central-pl"]'
    )
    # The first such line is PL's table (PL comes first in init's default order).
    text = text.replace("# exclude_provider_homes = []\n", 'exclude_provider_homes = ["US"]\n', 1)
    path.write_text(text + provider_table)
    Config.load(path)  # still a valid configuration


def test_report_of_the_embedded_demo_deployment(sovra: Sovra, tmp_path: Path) -> None:
    root = tmp_path / "dep"
    assert sovra("init", root, "--custodians", "in-process").code == 0
    assert sovra("demo", "--synthetic", "20", "--deployment", root).code == 0
    ran = sovra("residency", "report", "-d", root, "--json", "--subjects")
    assert ran.code == 0, ran.err
    report = ran.json()
    assert report["ok"] is True and report["problems"] == []
    placed = {(p["jurisdiction"], p["region"]): p for p in report["placed"]}
    assert {k: p["records"] for k, p in placed.items()} == _counts(root)
    pl = placed["PL", "eu-central-pl"]
    assert pl["storage"] == "folder blobs/eu-central-pl" and pl["allowed"] is True
    # Anna's two records, by her commitment, in her jurisdiction's region.
    dep = Deployment.open(root)
    try:
        anna = dep.gateway.commitment("PL", "anna.kowalska@example.pl")
    finally:
        dep.close()
    assert {"subject": anna, "jurisdiction": "PL", "region": "eu-central-pl", "records": 2} in (
        report["subjects"]
    )
    assert sum(s["records"] for s in report["subjects"]) == sum(_counts(root).values())
    table = sovra("residency", "report", "-d", root)
    assert table.code == 0
    assert (
        "eu-central-pl" in table.out and "every record where its jurisdiction allows" in table.out
    )
    # A record placed where PL's rules no longer allow it is found, with exit code 3.
    _disallow_pl_region(
        root, '\n[regions.eu-central-pl]\nprovider = "cloudco"\nprovider_home = "US"\n'
    )
    bad = sovra("residency", "report", "-d", root, "--json")
    assert bad.code == 3
    problems = bad.json()["problems"]
    assert {p["kind"] for p in problems} == {"disallowed-region"}
    assert len(problems) == _counts(root)["PL", "eu-central-pl"]
    assert "provider is at home in US" in problems[0]["detail"]


@pytest.mark.postgres
@pytest.mark.s3
def test_report_finds_a_deleted_object_a_stray_blob_and_a_disallowed_region(
    sovra: Sovra, tmp_path: Path, pg_dsn: str, s3_bucket
) -> None:
    root = tmp_path / "dep"
    assert sovra("init", root, "--custodians", "in-process", "--database", pg_dsn,
                 *s3_options(s3_bucket)).code == 0  # fmt: skip
    assert sovra("demo", "--synthetic", "20", "--deployment", root).code == 0
    clean = sovra("residency", "report", "-d", root, "--json")
    assert clean.code == 0, clean.err
    placed = {(p["jurisdiction"], p["region"]): p for p in clean.json()["placed"]}
    assert placed["VN", "ap-southeast-vn"]["storage"] == f"{s3_bucket.url}ap-southeast-vn"
    # Tampered: one of VN's segment objects deleted from the bucket, and a blob put in
    # PL's bucket that no record names.
    client = s3_bucket.client()
    segment = next(
        k
        for k in s3_bucket.objects()
        if k.startswith(f"{s3_bucket.prefix}ap-southeast-vn/segments/")
    )
    client.delete_object(Bucket=s3_bucket.name, Key=segment)
    dep = Deployment.open(root)
    try:
        dep.gateway.blobs["eu-central-pl"].put("r-stray", b"not a record's")
    finally:
        dep.close()
    ran = sovra("residency", "report", "-d", root, "--json")
    assert ran.code == 3
    report = ran.json()
    counts = report["problem_counts"]
    assert counts["orphan-object"] == 1
    assert [p["key"] for p in report["problems"] if p["kind"] == "orphan-object"] == ["r-stray"]
    missing = [p for p in report["problems"] if p["kind"] == "missing-object"]
    assert missing and all(p["region"] == "ap-southeast-vn" for p in missing)
    assert "disallowed-region" not in counts
    # And PL's rules changed under its records: each of them is reported as well.
    pl = _counts(root)["PL", "eu-central-pl"]
    text = (
        (root / "sovra.toml")
        .read_text()
        .replace("\n[regions.eu-central-pl]\n", '\n[regions.eu-central-pl]\nprovider_home = "US"\n')
    )
    (root / "sovra.toml").write_text(text)
    _disallow_pl_region(root, "")
    again = sovra("residency", "report", "-d", root, "--json")
    assert again.code == 3
    assert again.json()["problem_counts"] == {
        "disallowed-region": pl,
        "missing-object": len(missing),
        "orphan-object": 1,
    }
    table = sovra("residency", "report", "-d", root)
    assert table.code == 3
    assert f"{pl + len(missing) + 1} problem(s)" in " ".join(table.out.split())
