"""Storage regions end to end: a region in an S3 bucket, and placement by the subject's
jurisdiction (allowed regions, providers excluded by their home jurisdiction)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import S3Bucket

from sovra import check
from sovra._cli.doctor import examine
from sovra.deployment import Deployment
from sovra.errors import BadRequest, ConfigError
from sovra.keys import transport
from sovra.store import SMALL_BLOBS_NAME, FilesystemBlobStore
from sovra.store.s3 import S3BlobStore

TEXT = "Anna Kowalska, tel. +48 601 234 567"
PL = "eu-central-pl"


def _configure(root: Path, pl_regions: list[str], *, extra: str = "", pl_rules: str = "") -> None:
    """PL's regions, rules and the [regions.*] tables, edited into the deployment's file
    as ``init`` wrote it."""
    path, first = root / "sovra.toml", root / "sovra.toml.as-made"
    if not first.exists():
        first.write_text(path.read_text())
    text = first.read_text()
    old = f'regions = ["{PL}"]'
    assert old in text
    new = "regions = [" + ", ".join(f'"{r}"' for r in pl_regions) + "]" + pl_rules
    path.write_text(text.replace(old, new, 1) + extra)


def _ingest(dep: Deployment, subject: str = "anna@example.pl") -> str:
    principal = dep.store.get_principal("svc-pl")
    return dep.gateway.ingest(
        principal, subject_id=subject, jurisdiction="PL", content=TEXT
    ).record_id


def _access(dep: Deployment, rid: str) -> str:
    principal = dep.store.get_principal("svc-pl")
    return dep.gateway.access(principal, purpose="billing", record_ids=[rid]).records[rid]


def _s3_region(bucket: S3Bucket, name: str = PL, home: str = "DE") -> str:
    return (
        f'\n[regions.{name}]\nblobs = "{bucket.url}"\nendpoint = "{bucket.endpoint}"\n'
        'access_key_env = "SOVRA_PL_S3_ACCESS"\nsecret_key_env = "SOVRA_PL_S3_SECRET"\n'
        f'provider = "seaweedfs"\nprovider_home = "{home}"\n'
    )


def test_a_region_in_an_s3_bucket_serves_the_flows_and_check(
    root: Path, clock, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVRA_PL_S3_ACCESS", s3_bucket.access_key)
    monkeypatch.setenv("SOVRA_PL_S3_SECRET", s3_bucket.secret_key)
    _configure(root, [PL], extra=_s3_region(s3_bucket))
    dep = Deployment.open(root, clock=clock)
    try:
        assert isinstance(dep.gateway.blobs[PL], S3BlobStore)
        rids = [_ingest(dep, f"anna-{i}@example.pl") for i in range(3)]
        assert _access(dep, rids[1]) == TEXT
        objects = s3_bucket.objects()
        assert objects and all("/segments/" in k for k in objects)
        # Nothing of the region on the local disk.
        assert not (root / "blobs" / PL / SMALL_BLOBS_NAME).exists()
        report = check.check(
            dep.store, dep.gateway.log, dep.gateway.blobs, now_ms=int(clock() * 1000)
        )
        # Every row's blob found in the bucket with the hash its entry logged; no orphan.
        assert [f for f in report.findings if f.problem] == []
    finally:
        dep.close()
    again = Deployment.open(root, clock=clock)
    try:
        assert _access(again, rids[2]) == TEXT
    finally:
        again.close()
    # The region has no folder: doctor does not take its records' blobs for lost.
    assert [f.line() for f in examine(root) if f.problem and PL in f.line()] == []
    # The secret came from the environment and was written nowhere.
    secret = s3_bucket.secret_key.encode()
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret not in path.read_bytes(), path


def test_an_s3_region_without_its_credentials_does_not_start(
    root: Path, clock, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOVRA_PL_S3_ACCESS", raising=False)
    monkeypatch.setenv("SOVRA_PL_S3_SECRET", "x")
    _configure(root, [PL], extra=_s3_region(s3_bucket))
    with pytest.raises(ConfigError, match="SOVRA_PL_S3_ACCESS is not set"):
        Deployment.open(root, clock=clock)
    monkeypatch.setenv("SOVRA_PL_S3_ACCESS", s3_bucket.access_key)
    with pytest.raises(ConfigError, match="refused the credentials"):
        Deployment.open(root, clock=clock)


def test_credentials_in_a_file_others_can_read_are_refused(
    root: Path, clock, s3_bucket: S3Bucket
) -> None:
    creds = root / "keys" / "s3-pl.json"
    creds.write_text(
        f'{{"access_key": "{s3_bucket.access_key}", "secret_key": "{s3_bucket.secret_key}"}}'
    )
    region = (
        f'\n[regions.{PL}]\nblobs = "{s3_bucket.url}"\nendpoint = "{s3_bucket.endpoint}"\n'
        'credentials_file = "keys/s3-pl.json"\n'
    )
    _configure(root, [PL], extra=region)
    creds.chmod(0o644)
    with pytest.raises(ConfigError, match="only its owner can read"):
        Deployment.open(root, clock=clock)
    creds.chmod(0o600)
    dep = Deployment.open(root, clock=clock)
    try:
        assert _access(dep, _ingest(dep)) == TEXT
    finally:
        dep.close()


# -- placement -----------------------------------------------------------------------------

US_REGION = '\n[regions.us-east]\nprovider = "big-cloud"\nprovider_home = "US"\n'


@pytest.mark.parametrize(
    ("regions", "rules", "expected"),
    [
        (["us-east", PL], "", "us-east"),  # the first allowed region
        (["us-east", PL], '\nexclude_provider_homes = ["US"]', PL),  # its provider is excluded
        ([PL, "us-east"], '\nexclude_provider_homes = ["US"]', PL),
        ([PL, "us-east"], '\nexclude_provider_homes = ["CN"]', PL),
    ],
    ids=["first", "first-excluded", "second-excluded", "other-home-excluded"],
)
def test_the_subjects_jurisdiction_decides_the_region(
    root: Path, clock, regions: list[str], rules: str, expected: str
) -> None:
    _configure(root, regions, extra=US_REGION, pl_rules=rules)
    dep = Deployment.open(root, clock=clock)
    try:
        rid = _ingest(dep)
        assert dep.store.get_record(rid).header.region == expected
        assert dep.gateway.blobs[expected].exists(rid)
        other = next(r for r in regions if r != expected)
        assert not dep.gateway.blobs[other].exists(rid)
        assert _access(dep, rid) == TEXT
    finally:
        dep.close()


def test_by_subject_placement_keeps_a_subject_together_and_spreads_subjects(
    root: Path, clock
) -> None:
    _configure(root, [PL, "eu-west-pl"], pl_rules='\nplacement = "by-subject"')
    dep = Deployment.open(root, clock=clock)
    try:
        placed = {}
        for i in range(12):
            subject = f"subject-{i}@example.pl"
            first, second = _ingest(dep, subject), _ingest(dep, subject)
            region = dep.store.get_record(first).header.region
            assert dep.store.get_record(second).header.region == region
            placed[subject] = region
        assert set(placed.values()) == {PL, "eu-west-pl"}
    finally:
        dep.close()


def test_a_region_no_longer_allowed_is_refused_before_any_byte_is_stored(
    root: Path, clock
) -> None:
    _configure(root, ["us-east", PL], extra=US_REGION)
    dep = Deployment.open(root, clock=clock)
    principal = dep.store.get_principal("svc-pl")
    try:
        prepared = dep.gateway.prepare_sealed(
            principal, subject_id="anna@example.pl", jurisdiction="PL"
        )
    finally:
        dep.close()
    assert prepared.header.region == "us-east"
    blob, envelope = transport.seal_record(prepared.header, TEXT.encode(), prepared.custodian_key)
    # The rules change before the sealed record arrives: US providers are excluded now.
    excluded = '\nexclude_provider_homes = ["US"]'
    _configure(root, ["us-east", PL], extra=US_REGION, pl_rules=excluded)
    dep = Deployment.open(root, clock=clock)
    try:
        size = dep.gateway.log.size
        with pytest.raises(BadRequest, match="region us-east is not allowed for PL data"):
            dep.gateway.ingest_sealed(
                principal,
                header=prepared.header,
                expires_ms=prepared.expires_ms,
                ticket=prepared.ticket,
                blob=blob,
                key_envelope=envelope,
            )
        rid = prepared.header.record_id
        assert dep.store.record_log_index(rid) is None
        us = dep.gateway.blobs["us-east"]
        assert isinstance(us, FilesystemBlobStore)
        assert list(us.stored_keys()) == []
        assert not [p for p in us.directory.rglob("*") if p.is_file()]
        assert dep.gateway.log.size == size
    finally:
        dep.close()


@pytest.mark.parametrize(
    ("extra", "rules", "message"),
    [
        (US_REGION, '\nexclude_provider_homes = ["US", "DE"]', None),
        ('\n[regions.nowhere]\nprovider = "x"\n', "", "no jurisdiction lists region 'nowhere'"),
        ('\n[regions.us-east]\nblobs = "/data"\n', "", "blobs must be s3://"),
        ('\n[regions.us-east]\nsecret_key_env = "X"\n', "", "needs blobs"),
        (
            '\n[regions.us-east]\nblobs = "s3://bucket-x"\naccess_key_env = "A"\n',
            "",
            "both access_key_env and secret_key_env",
        ),
        (
            '\n[regions.us-east]\nblobs = "s3://bucket-x"\naccess_key_env = "AKIAEXAMPLE/x"\n'
            'secret_key_env = "S"\n',
            "",
            "never put a credential itself",
        ),
        ('\n[regions.us-east]\nsecret_key = "hunter2"\n', "", "unknown key"),
        ('\n[regions.us-east]\nprovider_home = "usa"\n', "", "provider_home"),
        ("", '\nexclude_provider_homes = "US"', "must be a list"),
        ("", '\nplacement = "random"', "placement must be one of"),
        (US_REGION.replace("US", "PL"), '\nexclude_provider_homes = ["PL"]', None),
    ],
)
def test_bad_region_settings_stop_the_start(
    root: Path, clock, extra: str, rules: str, message: str | None
) -> None:
    # us-east alone (with exclusions leaving none) or beside PL's own region.
    regions = ["us-east"] if message is None else ["us-east", PL]
    _configure(root, regions, extra=extra, pl_rules=rules)
    with pytest.raises(ConfigError, match=message or "every region it allows has a provider"):
        Deployment.open(root, clock=clock)
