"""Placement rules, case by case: which regions a jurisdiction's data may live in."""

from __future__ import annotations

import hashlib
import tomllib
from typing import Any

import pytest

from sovra.config import Config
from sovra.errors import BadRequest, ConfigError
from sovra.placement import Placement

REGIONS = """
[regions.us-east]
provider = "big-cloud"
provider_home = "US"

[regions.eu-de]
provider = "eu-cloud"
provider_home = "DE"
"""


def config(regions: list[str], rules: str = "", extra: str = REGIONS) -> Config:
    text = f"""
[deployment]
origin = "sovra.test/log"

[jurisdictions.PL]
regions = {regions!r}
purposes = ["billing"]
{rules}

[jurisdictions.VN]
regions = ["ap-vn", "us-east", "eu-de"]
purposes = ["billing"]
{extra}
""".replace("'", '"')
    return Config._from_dict(tomllib.loads(text))


def subject(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


CASES: list[tuple[str, list[str], str, tuple[str, ...]]] = [
    ("one region", ["eu-pl"], "", ("eu-pl",)),
    ("order kept", ["us-east", "eu-pl", "eu-de"], "", ("us-east", "eu-pl", "eu-de")),
    ("US providers out", ["us-east", "eu-pl"], 'exclude_provider_homes = ["US"]', ("eu-pl",)),
    (
        "two homes out",
        ["us-east", "eu-de", "eu-pl"],
        'exclude_provider_homes = ["US", "DE"]',
        ("eu-pl",),
    ),
    (
        "another home out",
        ["us-east", "eu-de"],
        'exclude_provider_homes = ["CN"]',
        ("us-east", "eu-de"),
    ),
    # A region without a provider_home (the deployment's own folder) is never excluded.
    ("own folder stays", ["eu-pl"], 'exclude_provider_homes = ["PL"]', ("eu-pl",)),
]


@pytest.mark.parametrize(
    ("regions", "rules", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_allowed_regions(regions: list[str], rules: str, allowed: tuple[str, ...]) -> None:
    placement = Placement(config(regions, rules))
    assert placement.allowed("PL") == allowed
    assert placement.region_for("PL", subject(1)) == allowed[0]
    for region in allowed:
        placement.check("PL", region)
    for region in set(regions) - set(allowed):
        with pytest.raises(BadRequest, match=f"region {region} is not allowed for PL data"):
            placement.check("PL", region)
    # Another jurisdiction's rules are its own.
    assert placement.allowed("VN") == ("ap-vn", "us-east", "eu-de")


def test_a_region_of_another_jurisdiction_only_is_refused() -> None:
    placement = Placement(config(["eu-pl"]))
    with pytest.raises(BadRequest, match="region ap-vn is not allowed for PL data"):
        placement.check("PL", "ap-vn")
    with pytest.raises(BadRequest, match="unknown jurisdiction"):
        placement.region_for("FR", subject(1))


def test_by_subject_spreads_subjects_and_keeps_each_in_one_region() -> None:
    placement = Placement(
        config(
            ["eu-pl", "eu-de", "us-east"],
            'placement = "by-subject"\nexclude_provider_homes = ["US"]',
        )
    )
    seen: dict[str, int] = {}
    for n in range(200):
        region = placement.region_for("PL", subject(n))
        assert region == placement.region_for("PL", subject(n))
        seen[region] = seen.get(region, 0) + 1
    assert set(seen) == {"eu-pl", "eu-de"}  # never the excluded one
    assert min(seen.values()) > 50


@pytest.mark.parametrize(
    ("regions", "rules", "message"),
    [
        (["us-east"], 'exclude_provider_homes = ["US"]', "every region it allows"),
        (["eu-pl"], 'exclude_provider_homes = ["usa"]', "two upper-case letters"),
        (["eu-pl"], 'placement = "nearest"', "placement must be one of"),
    ],
)
def test_rules_that_leave_nothing_or_make_no_sense_are_refused(
    regions: list[str], rules: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config(regions, rules)


def test_config_round_trip_of_a_region() -> None:
    extra: Any = REGIONS + '\n[regions.ap-vn]\nblobs = "s3://vn-bucket/sovra"\nsse = "AES256"\n'
    got = config(["eu-pl"], extra=extra)
    vn = got.region("ap-vn")
    assert (vn.is_s3, vn.blobs, vn.sse, vn.provider_home) == (
        True,
        "s3://vn-bucket/sovra",
        "AES256",
        None,
    )
    assert got.region("eu-pl").is_s3 is False  # no table: the folder
    assert got.region("us-east").provider_home == "US"
